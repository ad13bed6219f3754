"""One backup pass at a time per state database: two would upload the same files twice."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from camroll.agent.errors import AgentError


@contextmanager
def pass_lock(state_db: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<state_db>.lock``; the kernel drops it if the process dies, so
    a killed agent never leaves a stale lock."""
    path = state_db.with_name(state_db.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise AgentError(
                f"Another camroll backup is already running (process {other}). "
                "Fix: wait for it to finish; it backs up the same folders."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
