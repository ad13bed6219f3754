"""Locks on a state database, each an exclusive ``flock`` with the holder's pid inside; the kernel drops
it if the process dies, so a killed agent never leaves a stale lock.

- ``<state_db>.lock``: one backup pass at a time (two would upload the same files twice).
- ``<state_db>.agent.lock``: one ``camroll agent`` loop (or ``camroll up --watch``) per state database,
  held for the loop's whole life: a second loop would fight the first over the same files and settings.
- ``imports.lock`` beside the state database: one ``camroll import`` per device (two would send the same
  items and resume each other's uploads).
- ``DEST/.camroll-restore/lock``: one ``camroll restore`` per destination (two would write the same names).
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from camroll.agent.errors import AgentError


@dataclass(frozen=True)
class Holder:
    """A live process holding a lock; ``pid`` is None in the moment before it wrote it."""

    pid: int | None


class PassBusy(AgentError):
    """Another process runs a backup pass on the same state database; ``pid`` is its process id."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        super().__init__(
            f"Another camroll backup is already running (process {pid if pid is not None else '?'}). "
            "Fix: wait for it to finish; it backs up the same folders."
        )


class AgentRunning(AgentError):
    """A ``camroll agent`` loop already runs on this state database."""

    def __init__(self, pid: int | None, state_db: Path) -> None:
        self.pid = pid
        who = holder(pid)
        stop = f"kill {pid}" if pid is not None else "stop it"
        super().__init__(
            f"camroll agent is already running on this device's backup ({who}, state {state_db}); it backs up "
            f"the same folders and picks up new ones by itself. Fix: use that one (camroll status shows what it "
            f"does), or stop it first ({stop})."
        )


def holder(pid: int | None) -> str:
    """The process holding a lock, as a person reads it."""
    return f"process {pid}" if pid is not None else "another process"


def _lock_file(state_db: Path, suffix: str) -> Path:
    return state_db.with_name(state_db.name + suffix)


def _pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


@contextmanager
def exclusive(path: Path, busy: Callable[[int | None], Exception]) -> Iterator[None]:
    """Hold ``path``'s lock for the block, with this process's pid in the file; while another process
    holds it, raise ``busy(its pid)`` at once (never wait: the person is told who has it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Never through a link: the pid is written into the file, and a link could point at anything.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise AgentError(f"{path} is a link, not camroll's lock file. Fix: remove it (camroll makes it "
                         "again); camroll never writes through links.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(_pid(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _holder(path: Path) -> Holder | None:
    """Who holds ``path``'s lock, or None when nobody does (a file left by a dead process included)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return Holder(_pid(fd))
        return None
    finally:
        os.close(fd)  # closing drops a lock we may have just taken


@contextmanager
def pass_lock(state_db: Path) -> Iterator[None]:
    """Hold the pass lock; raises :class:`PassBusy` while another pass holds it."""
    with exclusive(_lock_file(state_db, ".lock"), PassBusy):
        yield


def pass_holder(state_db: Path) -> Holder | None:
    """Who runs a backup pass on ``state_db`` now, or None."""
    return _holder(_lock_file(state_db, ".lock"))


@contextmanager
def agent_lock(state_db: Path) -> Iterator[None]:
    """Hold the loop lock for a ``camroll agent`` run; raises :class:`AgentRunning` if one already runs."""
    with exclusive(_lock_file(state_db, ".agent.lock"), lambda pid: AgentRunning(pid, state_db)):
        yield


def agent_holder(state_db: Path) -> Holder | None:
    """Who runs the ``camroll agent`` loop on ``state_db`` now, or None."""
    return _holder(_lock_file(state_db, ".agent.lock"))
