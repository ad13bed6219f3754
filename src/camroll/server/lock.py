"""One library, one server: ``<data>/server.lock`` holds an exclusive lock for as long as a
``camroll serve`` runs on that data dir, with its pid and URL inside.

The kernel drops the lock when its process dies, so a crashed server never leaves a stale lock: the
file stays, but nobody holds it, and the next server takes it.  Readers (a second ``serve``, ``camroll
up``) tell a live server from a stale file by trying the lock themselves, never by trusting the pid.
It is a POSIX record lock (``lockf``), not a ``flock``: a process forked by the server (a media job)
does not inherit it, so a server killed with ``kill -9`` frees its library at once even while such a
child finishes.  (The catch of record locks, that closing any descriptor of the file drops them, does
not bite: the server process never opens the file again.)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from camroll.server.datadir import LOCK_FILE


@dataclass(frozen=True)
class RunningServer:
    """The server that holds a data dir's lock: its process id and the URL it serves on."""

    pid: int | None
    url: str | None

    def describe(self) -> str:
        return f"process {self.pid if self.pid is not None else '?'}, {self.url or 'address not known yet'}"


class ServerRunning(Exception):
    def __init__(self, data_dir: Path, other: RunningServer) -> None:
        self.data_dir, self.other = data_dir, other
        super().__init__(f"a camroll server is already running on the library in {data_dir} ({other.describe()})")


def lock_path(data_dir: Path) -> Path:
    return data_dir / LOCK_FILE


def local_url(host: str, port: int) -> str:
    """A URL that reaches a server listening on ``host`` from this machine (all interfaces: loopback)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _read(fd: int, settle_s: float) -> RunningServer:
    """What the lock holder wrote; it writes just after taking the lock, so wait up to ``settle_s`` for it."""
    deadline = time.monotonic() + settle_s
    while True:
        try:
            data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except ValueError:
            data = {}
        pid, url = data.get("pid"), data.get("url")
        if isinstance(url, str) or time.monotonic() >= deadline:
            return RunningServer(pid if isinstance(pid, int) else None, url if isinstance(url, str) else None)
        time.sleep(0.05)


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.lockf(fd, kind | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise
    return True


def running(data_dir: Path, *, settle_s: float = 1.0) -> RunningServer | None:
    """The live server on ``data_dir``, or None."""
    try:
        fd = os.open(lock_path(data_dir), os.O_RDONLY)
    except OSError:
        return None
    try:
        if _try_lock(fd, fcntl.LOCK_SH):
            return None
        return _read(fd, settle_s)
    finally:
        os.close(fd)  # also drops the shared lock we may have taken


@contextlib.contextmanager
def hold(data_dir: Path, url: str) -> Iterator[None]:
    """Hold the data dir's server lock with this process's pid and ``url``; raises
    :class:`ServerRunning` when a live server holds it."""
    path = lock_path(data_dir)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(fd, fcntl.LOCK_EX):
            raise ServerRunning(data_dir, _read(fd, 1.0))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "url": url}).encode(), 0)
        yield
    finally:
        os.close(fd)
