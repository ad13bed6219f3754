"""Periodic work inside the server process: clean-up of expired uploads and sessions, unreferenced
blobs, and the stall checks that alert users when backup stops (services/stalls.py).

Each task runs under its lease (server/leases.py): with several replicas on one database, the one
that holds it does the work and the others only ask, one statement per period.  A holder takes its
lease again every period, so it keeps it; if it dies, another replica takes over once the lease's
TTL (two periods and at most half a minute) has passed."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import anyio
import anyio.to_thread

from camroll.server import leases as lease_names
from camroll.server.context import Context
from camroll.server.leases import Leases
from camroll.server.services import auth, stalls, uploads
from camroll.server.services import orphans as orphan_blobs

log = logging.getLogger("camroll.server.sweeper")

# Looking for unreferenced blobs lists the whole store, so it runs at start and then this often.
ORPHAN_SWEEP_SECONDS = 3600.0


def _expired(ctx: Context) -> None:
    uploads.sweep(ctx)
    auth.forget_expired_sessions(ctx)


def _orphans(ctx: Context) -> None:
    orphan_blobs.sweep(ctx)


def sweep_once(ctx: Context, *, orphans: bool, leases: Leases | None = None) -> None:
    """One round of clean-up, each part only if this process holds (or takes) its lease; each part's
    failure (database busy, disk error) is logged, and neither stops the others nor a later round."""
    leases = leases or Leases(ctx)
    jobs: list[tuple[str, str, float, Callable[[Context], None]]] = [
        ("sweeping expired uploads and sessions", lease_names.EXPIRY_SWEEP,
         lease_names.period_ttl(ctx.settings.sweep_interval_seconds), _expired)]
    if orphans:
        jobs.append(("removing unreferenced blobs", lease_names.ORPHAN_SWEEP,
                     lease_names.period_ttl(ORPHAN_SWEEP_SECONDS), _orphans))
    for what, lease, ttl, job in jobs:
        try:
            if leases.acquire(lease, ttl):
                job(ctx)
        except Exception:
            log.exception("%s failed", what)


async def run_forever(ctx: Context, leases: Leases | None = None) -> None:
    last_orphans = ctx.clock.monotonic()
    while True:
        await anyio.sleep(ctx.settings.sweep_interval_seconds)
        due = ctx.clock.monotonic() - last_orphans >= ORPHAN_SWEEP_SECONDS
        if due:
            last_orphans = ctx.clock.monotonic()
        await anyio.to_thread.run_sync(functools.partial(sweep_once, ctx, orphans=due, leases=leases))


def check_stalls_once(ctx: Context, leases: Leases) -> int | None:
    """One stall check and its alerts if this process holds the lease; None if another one does."""
    if not leases.acquire(lease_names.STALL_CHECKS, lease_names.period_ttl(ctx.settings.stall_check_seconds)):
        return None
    return stalls.run_once(ctx)


async def run_stall_checks(ctx: Context, leases: Leases | None = None) -> None:
    leases = leases or Leases(ctx)
    while True:
        await anyio.sleep(ctx.settings.stall_check_seconds)
        try:
            # On a worker thread: the checks read every device, and sending waits on the network
            # (bounded by notify_timeout_seconds per URL).
            await anyio.to_thread.run_sync(check_stalls_once, ctx, leases)
        except Exception:
            log.exception("checking for stalled backups failed")
