"""Periodic work inside the server process: clean-up of expired uploads and sessions, and the stall
checks that alert users when backup stops (services/stalls.py)."""

from __future__ import annotations

import functools
import logging
import time

import anyio
import anyio.to_thread

from camroll.server.context import Context
from camroll.server.services import auth, stalls, uploads
from camroll.server.services import orphans as orphan_blobs

log = logging.getLogger("camroll.server.sweeper")

# Looking for unreferenced blobs lists the whole store, so it runs at start and then this often.
ORPHAN_SWEEP_SECONDS = 3600.0


def sweep_once(ctx: Context, *, orphans: bool) -> None:
    """One round of clean-up; each part's failure (database busy, disk error) is logged, and neither
    stops the others nor a later round."""
    jobs = [("sweeping expired uploads", uploads.sweep), ("forgetting expired sessions", auth.forget_expired_sessions)]
    if orphans:
        jobs.append(("removing unreferenced blobs", _orphans))
    for what, job in jobs:
        try:
            job(ctx)
        except Exception:
            log.exception("%s failed", what)


def _orphans(ctx: Context) -> None:
    orphan_blobs.sweep(ctx)


async def run_forever(ctx: Context) -> None:
    last_orphans = time.monotonic()
    while True:
        await anyio.sleep(ctx.settings.sweep_interval_seconds)
        due = time.monotonic() - last_orphans >= ORPHAN_SWEEP_SECONDS
        if due:
            last_orphans = time.monotonic()
        await anyio.to_thread.run_sync(functools.partial(sweep_once, ctx, orphans=due))


async def run_stall_checks(ctx: Context) -> None:
    while True:
        await anyio.sleep(ctx.settings.stall_check_seconds)
        try:
            # On a worker thread: the checks read every device, and sending waits on the network
            # (bounded by notify_timeout_seconds per URL).
            await anyio.to_thread.run_sync(stalls.run_once, ctx)
        except Exception:
            log.exception("checking for stalled backups failed")
