"""Periodic clean-up of expired uploads and sessions, run inside the server process."""

from __future__ import annotations

import logging

import anyio
import anyio.to_thread

from camroll.server.context import Context
from camroll.server.services import auth, uploads

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
