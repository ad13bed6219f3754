"""Pack files for the local blob store: many small blobs in one file, found through an index beside them.

Why: a batch of 500 photos of 10 KB as 500 files costs 500 creates, 500 renames and shard directories
on the server's disk, more CPU than receiving and hashing them (bench/README.md).  As one file it costs
one create, one rename and one index transaction.

Layout, under ``<blobs>/packs/``:

* ``<token>.pack``: the blobs' bytes one after another, then a trailer (JSON: every member's
  SHA-256, offset and size), then 8 bytes of trailer length and the magic ``CRPACK01``.  The trailer
  makes a pack self-describing, so a lost index is rebuilt from the packs alone (``PackIndex.rebuild``).
* ``index.sqlite``: ``sha256 -> pack, offset, size, modified`` for every live member (WAL,
  ``synchronous=FULL``: a committed row survives power loss).

Invariants:

* A row is committed only after its pack is durable under its final name (fsync of the file, rename,
  fsync of the folder), so a row never points at bytes that may be missing.
* Rows are only ever added for a pack that was just written (a unique name), so deciding that a pack
  has no rows left is final: nothing will add one.
* A pack with no rows is garbage: after a crash between a pack's rename and its index commit, or after
  a repack moved its members away.  ``sweep`` removes those older than a grace age.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import sqlite3
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from camroll.server.storage.base import Span, StorageFailure

MAGIC = b"CRPACK01"
_FOOTER = struct.Struct(">Q8s")  # trailer length, magic
SUFFIX = ".pack"
INDEX_NAME = "index.sqlite"
# The most a trailer may be: a 1,000-file batch needs ~100 KB; a larger one is not a pack we wrote.
MAX_TRAILER = 16 * 2**20
# Rows looked up or changed per statement (under SQLite's host-parameter limit on every build).
_CHUNK = 500
_SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    sha256 TEXT PRIMARY KEY,
    pack TEXT NOT NULL,
    "offset" INTEGER NOT NULL,
    size INTEGER NOT NULL,
    modified REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_pack ON members (pack);
"""


class PackError(Exception):
    """A file in the packs folder is not a whole pack (skipped by a rebuild)."""


class IndexUnreadable(StorageFailure):
    """The pack index cannot be opened or read: the blobs in packs cannot be found until it is rebuilt."""


@dataclass(frozen=True)
class Member:
    """Where one packed blob's bytes are."""

    sha256: str
    pack: str
    offset: int
    size: int
    modified: float


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_trailer(f: BinaryIO, spans: Sequence[Span]) -> None:
    """Append the trailer naming ``spans`` to a pack open for writing at its end."""
    body = json.dumps({"v": 1, "blobs": [[s.sha256, s.offset, s.size] for s in spans]},
                      separators=(",", ":")).encode()
    f.write(body)
    f.write(_FOOTER.pack(len(body), MAGIC))


def read_trailer(path: Path) -> list[Span]:
    """The members a pack's trailer names; raises ``PackError`` for a file that is not a whole pack."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        if end < _FOOTER.size:
            raise PackError(f"{path} is too short to be a pack")
        f.seek(end - _FOOTER.size)
        length, magic = _FOOTER.unpack(f.read(_FOOTER.size))
        if magic != MAGIC or length > min(MAX_TRAILER, end - _FOOTER.size):
            raise PackError(f"{path} does not end in a pack trailer")
        f.seek(end - _FOOTER.size - length)
        try:
            doc = json.loads(f.read(length))
            spans = [Span(str(s), int(o), int(n)) for s, o, n in doc["blobs"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise PackError(f"{path} has a trailer that cannot be read ({exc})") from None
    data_end = end - _FOOTER.size - length
    for s in spans:
        if s.offset < 0 or s.size < 0 or s.offset + s.size > data_end:
            raise PackError(f"{path} names a member outside its data ({s.sha256})")
    return spans


def new_pack_name() -> str:
    return secrets.token_hex(12) + SUFFIX


class PackIndex:
    """The SQLite index of the packs in ``folder``.  Thread-safe; several processes on one machine may
    share it (SQLite's locking).  Nothing is created on disk until the first ``add``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / INDEX_NAME
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    # -- connection -----------------------------------------------------------------------------------
    def _open(self, create: bool) -> sqlite3.Connection | None:
        """The connection, opened on first need; None while there is no index and ``create`` is False."""
        if self._db is not None:
            return self._db
        if not create and not self._present():
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        # One process builds a missing index at a time; the others wait and then find it.
        with open(self.folder / ".index-lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            fresh = not self.path.exists()
            try:
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(_SCHEMA)
            except sqlite3.DatabaseError as exc:
                raise IndexUnreadable(
                    f"The pack index {self.path} cannot be read ({exc}).",
                    f"Stop camroll, move {self.path} (and any {INDEX_NAME}-wal beside it) aside and start "
                    "again: camroll rebuilds the index from the packs' own trailers.") from None
            if fresh:
                fsync_dir(self.folder)
                self._rebuild(db)
        self._db = db
        return db

    def _present(self) -> bool:
        """An index to read: open, on disk, or to be rebuilt from packs whose index was lost."""
        if self._db is not None or self.path.exists():
            return True
        return self.folder.is_dir() and next(self.folder.glob(f"*{SUFFIX}"), None) is not None

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._open(create=True)
            assert db is not None
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            db = self._open(create=False)
            if db is None:
                return []
            return db.execute(sql, args).fetchall()

    # -- queries --------------------------------------------------------------------------------------
    def lookup(self, sha256: str) -> Member | None:
        rows = self._read('SELECT sha256, pack, "offset", size, modified FROM members WHERE sha256 = ?', (sha256,))
        return _member(rows[0]) if rows else None

    def members(self) -> Iterator[Member]:
        """Every live member, by key, read in pages so memory stays flat however many there are."""
        after = ""
        while True:
            rows = self._read('SELECT sha256, pack, "offset", size, modified FROM members WHERE sha256 > ? '
                              "ORDER BY sha256 LIMIT 1000", (after,))
            if not rows:
                return
            yield from (_member(r) for r in rows)
            after = str(rows[-1][0])

    def in_pack(self, pack: str) -> list[Member]:
        return [_member(r) for r in self._read(
            'SELECT sha256, pack, "offset", size, modified FROM members WHERE pack = ? ORDER BY "offset"', (pack,))]

    def packs(self) -> set[str]:
        return {str(r[0]) for r in self._read("SELECT DISTINCT pack FROM members")}

    # -- changes --------------------------------------------------------------------------------------
    def touch(self, shas: Sequence[str], now: float) -> set[str]:
        """Give the members among ``shas`` a new ``modified``; returns the ones that are members."""
        if not self._present():
            return set()
        found: set[str] = set()
        with self._write() as db:
            for i in range(0, len(shas), _CHUNK):
                part = list(shas[i:i + _CHUNK])
                marks = ",".join("?" * len(part))
                found.update(str(r[0]) for r in db.execute(f"SELECT sha256 FROM members WHERE sha256 IN ({marks})",
                                                           part))
                db.execute(f"UPDATE members SET modified = ? WHERE sha256 IN ({marks})", [now, *part])
        return found

    def add(self, pack: str, spans: Sequence[Span], now: float) -> None:
        """Record the members of a pack that is already durable.  A key another writer recorded
        meanwhile keeps its row (the same bytes, by their hash)."""
        with self._write() as db:
            db.executemany('INSERT OR IGNORE INTO members (sha256, pack, "offset", size, modified) '
                           "VALUES (?, ?, ?, ?, ?)", [(s.sha256, pack, s.offset, s.size, now) for s in spans])

    def remove(self, sha256: str) -> str | None:
        """Drop a member's row; returns the pack it was in."""
        if not self._present():
            return None
        with self._write() as db:
            row = db.execute("SELECT pack FROM members WHERE sha256 = ?", (sha256,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM members WHERE sha256 = ?", (sha256,))
            return str(row[0])

    def move(self, old: str, new: str, spans: Sequence[Span]) -> None:
        """Point the members of ``old`` that are still live at their copies in ``new``, in one transaction."""
        with self._write() as db:
            db.executemany('UPDATE members SET pack = ?, "offset" = ? WHERE sha256 = ? AND pack = ?',
                           [(new, s.offset, s.sha256, old) for s in spans])

    def _rebuild(self, db: sqlite3.Connection) -> None:
        """Fill a new, empty index from the packs' trailers (the index was lost, or this is the first
        start of a store whose packs came from a copy).  A member deleted since its pack was written comes
        back as a blob nothing points to, for the orphan sweep; a pack that is not whole is left alone."""
        db.execute("BEGIN IMMEDIATE")
        try:
            for path in sorted(self.folder.glob(f"*{SUFFIX}")):
                try:
                    spans = read_trailer(path)
                    modified = path.stat().st_mtime
                except (OSError, PackError):
                    continue
                db.executemany('INSERT OR IGNORE INTO members (sha256, pack, "offset", size, modified) '
                               "VALUES (?, ?, ?, ?, ?)", [(s.sha256, path.name, s.offset, s.size, modified)
                                                          for s in spans])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _member(row: tuple[object, ...]) -> Member:
    sha, pack, offset, size, modified = row
    return Member(str(sha), str(pack), cast(int, offset), cast(int, size), cast(float, modified))
