"""Periodic work inside the server process: clean-up of expired uploads and sessions, and the stall
checks that alert users when backup stops (services/stalls.py)."""

from __future__ import annotations

import logging

import anyio
import anyio.to_thread

from camroll.server.context import Context
from camroll.server.services import auth, stalls, uploads

log = logging.getLogger("camroll.server.sweeper")


async def run_forever(ctx: Context) -> None:
    while True:
        await anyio.sleep(ctx.settings.sweep_interval_seconds)
        try:
            await anyio.to_thread.run_sync(uploads.sweep, ctx)
            await anyio.to_thread.run_sync(auth.forget_expired_sessions, ctx)
        except Exception:
            # A failed sweep (database busy, disk error) must not stop future sweeps.
            log.exception("sweeping expired uploads failed")


async def run_stall_checks(ctx: Context) -> None:
    while True:
        await anyio.sleep(ctx.settings.stall_check_seconds)
        try:
            # On a worker thread: the checks read every device, and sending waits on the network
            # (bounded by notify_timeout_seconds per URL).
            await anyio.to_thread.run_sync(stalls.run_once, ctx)
        except Exception:
            log.exception("checking for stalled backups failed")
