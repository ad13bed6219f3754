"""Which ``camroll up`` runs on a folder: ``<folder>/up.lock`` holds an exclusive ``flock`` for the whole
run, with the run's pid, whether it watches (``--watch``) and the URL of the server it backs up to.

A second ``camroll up`` reads it to decide: a watching run keeps its server until it is stopped, so a
one-shot ``up`` backs up through that server; a one-shot run stops its server when its pass ends, so a
second ``up`` waits for it.  The kernel drops the lock when the process dies: a crashed run leaves a
file nobody holds, which counts as no run.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class UpRun:
    pid: int | None
    watch: bool
    url: str | None


class UpBusy(Exception):
    def __init__(self, other: UpRun) -> None:
        self.other = other
        super().__init__(f"camroll up is running (process {other.pid})")


def _read(fd: int) -> UpRun:
    try:
        raw = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        raw = {}
    pid, url = raw.get("pid"), raw.get("url")
    return UpRun(pid if isinstance(pid, int) else None, raw.get("watch") is True,
                 url if isinstance(url, str) else None)


def current(path: Path) -> UpRun | None:
    """The live run holding ``path``, or None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd)
        return None
    finally:
        os.close(fd)


class Held:
    """The lock of this run; :meth:`set_url` tells later runs where its server is."""

    def __init__(self, fd: int, watch: bool) -> None:
        self._fd, self._watch = fd, watch

    def set_url(self, url: str) -> None:
        body = json.dumps({"pid": os.getpid(), "watch": self._watch, "url": url}).encode()
        # Readers use pread without a lock: write the longer record first, then cut, so a reader sees
        # either the old record, the new one, or the new one with a tail it ignores (json fails: retried).
        os.pwrite(self._fd, body, 0)
        os.ftruncate(self._fd, len(body))


@contextmanager
def hold(path: Path, *, watch: bool) -> Iterator[Held]:
    """Hold ``path`` for this run; raises :class:`UpBusy` with the other run while one holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UpBusy(_read(fd)) from None
        os.ftruncate(fd, 0)
        body = json.dumps({"pid": os.getpid(), "watch": watch, "url": None}).encode()
        os.pwrite(fd, body, 0)
        yield Held(fd, watch)
    finally:
        os.close(fd)
