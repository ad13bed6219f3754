"""The server's disk running out: telling it apart from a damaged file or a bug, and refusing an upload
before its body when it cannot fit.

A full disk (ENOSPC, or EDQUOT on a filesystem with user quotas; SQLITE_FULL / PostgreSQL's
disk_full from the database) is a condition that clears when someone frees space, never a verdict on
the file being written: uploads answer 507 with the cause and the admin's fix, background jobs wait
and retry, and nothing partial is committed.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from camroll.media.errors import OUT_OF_SPACE_ERRNOS
from camroll.server.problems import ProblemError
from camroll.units import format_size, parse_size

log = logging.getLogger("camroll.server")

NO_SPACE_ERRNOS = OUT_OF_SPACE_ERRNOS
_SQLITE_FULL = 13
_PG_DISK_FULL = "53100"
RESERVE_ENV = "CAMROLL_DISK_RESERVE"
# What uploads leave free for the database, its write-ahead log and thumbnails: 2 % of the disk,
# at least 4 MiB and at most 256 MiB, unless $CAMROLL_DISK_RESERVE says otherwise.
_MIN_RESERVE, _MAX_RESERVE = 4 * 2**20, 256 * 2**20

FIX = ("The server's admin must free disk space on the disk holding the server's data directory, or move "
       "that directory to a larger disk.")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, the members of exception groups (anyio task groups raise those), and explicit causes."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        orig = getattr(e, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        if isinstance(orig, BaseException):
            todo.append(orig)
        if e.__cause__ is not None:
            todo.append(e.__cause__)


def is_out_of_space(exc: BaseException) -> bool:
    """True if ``exc`` (or what it wraps) says a disk or the database ran out of space."""
    for e in _causes(exc):
        if isinstance(e, OSError) and e.errno in NO_SPACE_ERRNOS:
            return True
        if isinstance(e, sqlite3.Error) and (getattr(e, "sqlite_errorcode", None) == _SQLITE_FULL
                                             or "database or disk is full" in str(e)):
            return True
        if getattr(e, "sqlstate", None) == _PG_DISK_FULL or getattr(e, "pgcode", None) == _PG_DISK_FULL:
            return True
    return False


@dataclass(frozen=True)
class DiskState:
    path: Path
    free: int
    total: int
    reserve: int

    @property
    def usable(self) -> int:
        """Bytes uploads may still fill."""
        return max(0, self.free - self.reserve)

    @property
    def full(self) -> bool:
        return self.free <= self.reserve

    def sentence(self, held: int = 0) -> str:
        """"1.2 MB free of 62.9 MB on the disk holding /srv/camroll, ..." (``held``: bytes promised to
        uploads in progress, which the free space must still take)."""
        promised = f", {format_size(held)} of it held for uploads in progress" if held else ""
        return (f"{format_size(self.free)} free of {format_size(self.total)} on the disk holding "
                f"{self.path}{promised}, {format_size(self.reserve)} kept for the database")


def reserve_for(total: int) -> int:
    raw = os.environ.get(RESERVE_ENV, "").strip()
    if raw:
        try:
            return parse_size(raw)
        except ValueError as exc:
            log.warning("%s=%r is not a size (%s); using the default reserve", RESERVE_ENV, raw, exc)
    return min(_MAX_RESERVE, max(_MIN_RESERVE, total // 50))


def measure(path: Path) -> DiskState:
    usage = shutil.disk_usage(path)
    return DiskState(path, usage.free, usage.total, reserve_for(usage.total))


def tightest(paths: Iterable[Path], home: Path | None = None) -> DiskState:
    """The least roomy of the disks holding ``paths`` (part files and local blobs may differ), named
    by ``home`` (the data dir, which the admin knows) when it is on that disk."""
    states = [measure(p) for p in dict.fromkeys(paths)]
    state = min(states, key=lambda s: s.usable)
    inside = home is not None and (home == state.path or home in state.path.parents)
    if home is not None and inside and home.stat().st_dev == state.path.stat().st_dev:
        state = DiskState(home, state.free, state.total, state.reserve)
    return state


def storage_full(state: DiskState | None = None, needed: int | None = None, held: int = 0) -> ProblemError:
    """507: the answer to a request the server's full disk refused; nothing from it was kept."""
    what = f" ({state.sentence(held)})" if state is not None else ""
    need = f"; this {format_size(needed)} file does not fit" if needed is not None else ""
    return ProblemError(507, "storage_full",
                        f"The server's disk is full{what}{need}; nothing from this request was kept.", FIX)
