"""The agent's local state database (plain SQLite, WAL): one row per file with exactly one state and a
reason a person can read, plus a small key/value table.

It is a cache of what the server already holds, so it can be rebuilt from the server without
re-uploading anything; it never holds file contents.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from camroll.agent.fsnames import from_db, shown, to_db

SCHEMA_VERSION: Final = 2

# ``hashing`` and ``uploading`` are the in-progress substates a person sees as "uploading" (``uploading``
# also holds hashed files queued for the server check); ``waiting`` has a reason that clears by itself
# (still being written, quota full); ``vanished`` files are no longer on the device and ``ignored`` ones
# were excluded by ``camroll ignore``: neither counts as "not backed up".
FileState = Literal["pending", "hashing", "uploading", "waiting", "backed_up", "skipped", "failed", "vanished",
                    "ignored"]
STATES: Final[tuple[FileState, ...]] = (
    "pending", "hashing", "uploading", "waiting", "backed_up", "skipped", "failed", "vanished", "ignored",
)
# States with work left for a backup pass.
WORK_STATES: Final = ("pending", "hashing", "uploading", "waiting", "failed")
# Events kept per file for ``camroll why`` (older ones are pruned at the end of a pass).
EVENTS_PER_FILE: Final = 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    folder TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    sha256 TEXT,
    mime TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    reason TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_retry_at REAL,
    asset_id INTEGER,
    upload_url TEXT,
    upload_offset INTEGER,
    first_seen_at REAL NOT NULL,
    backed_up_at REAL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_state ON files(state);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Version 2: a machine reason code and the sentence saying what would change the state, a warning kept
# even when the file is backed up (a truncated photo), and a short per-file history for ``camroll why``.
_V2 = """
ALTER TABLE files ADD COLUMN code TEXT NOT NULL DEFAULT '';
ALTER TABLE files ADD COLUMN fix TEXT NOT NULL DEFAULT '';
ALTER TABLE files ADD COLUMN warning TEXT NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS file_events (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS file_events_file ON file_events(file_id, id)
"""

# filepolicy.LEFT_OUT_CODES as SQL (state.py stays free of the rules module's imports).
_LEFT_OUT_SQL: Final = "('excluded', 'hidden', 'trashed')"

# Stat identity of a file: a change in any of these means its bytes may have changed.
StatKey = tuple[int, int, int]  # (size, mtime_ns, inode)


@dataclass(slots=True)
class FileRow:
    id: int
    path: str
    folder: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str | None
    mime: str | None
    state: FileState
    reason: str
    attempts: int
    next_retry_at: float | None
    asset_id: int | None
    upload_url: str | None
    upload_offset: int | None
    code: str = ""
    fix: str = ""
    warning: str = ""
    first_seen_at: float = 0.0
    backed_up_at: float | None = None
    updated_at: float = 0.0

    @property
    def stat_key(self) -> StatKey:
        return (self.size, self.mtime_ns, self.inode)


def _row(r: tuple[object, ...]) -> FileRow:
    """A row as read from the DB; a path stored as a BLOB (not UTF-8) becomes the ``os.fsdecode`` string
    that opens the file (see ``agent/fsnames.py``)."""
    row = FileRow(*r)  # type: ignore[arg-type]
    if isinstance(row.path, bytes):
        row.path = from_db(row.path)
    return row


_ROW_COLS = ("id, path, folder, size, mtime_ns, inode, sha256, mime, state, reason, attempts, "
             "next_retry_at, asset_id, upload_url, upload_offset, code, fix, warning, first_seen_at, backed_up_at,"
             " updated_at")


@dataclass(frozen=True)
class FileEvent:
    at: float
    kind: str
    detail: str


@dataclass(frozen=True)
class NewFile:
    path: str
    folder: str
    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True)
class StateCounts:
    files: dict[str, int]
    bytes: dict[str, int]


def _upgrade_v1_rows(c: sqlite3.Connection) -> None:
    """Give version-1 rows the reason codes version 2 would have written for them."""
    c.execute("UPDATE files SET code='empty' WHERE state='skipped' AND reason LIKE 'empty file%'")
    c.execute("UPDATE files SET code='unsupported_type' WHERE state='skipped' AND reason LIKE 'not a photo%'")
    c.execute("UPDATE files SET code='unreadable' WHERE state='failed' AND reason LIKE 'cannot read%'")
    c.execute("UPDATE files SET code='gone' WHERE state='vanished'")
    # Version 1 parked quota-blocked files as 'uploading' with a "waiting: ..." reason.
    c.execute("UPDATE files SET state='waiting', code='quota' WHERE state='uploading' AND reason LIKE 'waiting:%'")


class StateDB:
    """Thread-safe access to the state database: one connection guarded by a lock, because writes are
    tiny and SQLite allows one writer at a time anyway."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.RLock()
        self._batch_depth = 0
        self._events_written = False
        c = self._conn
        c.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (the case we care about); only power loss can
        # drop the last commits, and the server is the source of truth for those anyway.
        c.execute("PRAGMA synchronous=NORMAL")
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            with self._tx():
                # executescript() would commit on its own; keep schema changes in our transaction, so an
                # interrupted upgrade leaves the old version intact.
                scripts = ([_SCHEMA] if version == 0 else []) + ([_V2] if version < 2 else [])
                for script in scripts:
                    for stmt in script.split(";"):
                        if stmt.strip():
                            c.execute(stmt)
                if version == 1:
                    _upgrade_v1_rows(c)
                c.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                c.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif version > SCHEMA_VERSION:
            from camroll.agent.errors import AgentError

            raise AgentError(
                f"The state database {path} was written by a newer camroll (schema {version}). "
                "Fix: upgrade camroll, or delete the file to rebuild it from the server."
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> StateDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the updates made inside into one transaction (one commit instead of hundreds).  Other
        threads' updates wait until it ends, so keep it short."""
        with self._lock:
            if self._batch_depth:
                self._batch_depth += 1
                try:
                    yield
                finally:
                    self._batch_depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._batch_depth = 1
            try:
                yield
            finally:
                # Each update inside is valid on its own, so keep them even if the caller fails
                # half-way (e.g. the pass is aborted after some files were recorded as backed up).
                self._batch_depth = 0
                self._conn.execute("COMMIT")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._batch_depth:
                yield self._conn
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # --- meta ---------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- scanning -----------------------------------------------------------------------------------
    def index(self) -> dict[str, tuple[int, int, int, int, str, str]]:
        """path -> (id, size, mtime_ns, inode, state, folder) for every known file."""
        with self._lock:
            cur = self._conn.execute("SELECT path, id, size, mtime_ns, inode, state, folder FROM files")
            return {from_db(r[0]): r[1:] for r in cur}

    def stat_index(self) -> dict[str, str]:
        """path -> "size:mtime_ns:inode:V" (V is 1 for vanished files) for every known file, in one
        query built by SQLite and turned into a dict in C: the scanner formats the same string from
        each ``stat`` and compares, which keeps a no-change scan of 100,000 files well under a
        second."""
        key = "size || ':' || mtime_ns || ':' || inode || ':' || (state = 'vanished')"
        with self._lock:
            out: dict[str, str] = dict(self._conn.execute(f"SELECT path, {key} FROM files"))
            # Paths that are not UTF-8 are BLOBs (see agent/fsnames.py): key them as the scanner sees them.
            for raw, value in self._conn.execute(f"SELECT path, {key} FROM files WHERE typeof(path) = 'blob'"):
                del out[raw]
                out[from_db(raw)] = value
            return out

    def lookup(self, path: str) -> tuple[int, int, int, int, str, str] | None:
        """(id, size, mtime_ns, inode, state, folder) of one known file."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, size, mtime_ns, inode, state, folder FROM files WHERE path=?", (to_db(path),)
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3], row[4], row[5])

    def apply_scan(self, new: Iterable[NewFile], changed: Iterable[tuple[int, int, int, int]],
                   vanished: Iterable[tuple[int, str]], reappeared: Iterable[int]) -> None:
        """Record one scan's findings in one transaction.  ``changed`` holds (id, size, mtime_ns,
        inode); their hash and any unfinished upload no longer describe the file, so the hash is
        cleared while the upload URL is kept for the engine to terminate."""
        now = time.time()
        with self._tx() as c:
            c.executemany(
                "INSERT INTO files (path, folder, size, mtime_ns, inode, state, reason, first_seen_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, 'pending', 'new file', ?, ?)",
                ((to_db(f.path), f.folder, f.size, f.mtime_ns, f.inode, now, now) for f in new),
            )
            c.executemany(
                "UPDATE files SET size=?, mtime_ns=?, inode=?, sha256=NULL, mime=NULL,"
                " state=CASE state WHEN 'ignored' THEN 'ignored' ELSE 'pending' END,"
                " reason=CASE state WHEN 'ignored' THEN reason ELSE 'changed since last backup' END,"
                " code=CASE state WHEN 'ignored' THEN code ELSE '' END,"
                " fix=CASE state WHEN 'ignored' THEN fix ELSE '' END, warning='',"
                " asset_id=NULL, attempts=0, next_retry_at=NULL,"
                " upload_offset=NULL, backed_up_at=NULL, updated_at=? WHERE id=?",
                ((size, mtime, ino, now, fid) for fid, size, mtime, ino in changed),
            )
            c.executemany(
                "UPDATE files SET state='vanished', reason=?, code='gone', fix='', updated_at=? WHERE id=?",
                ((reason, now, fid) for fid, reason in vanished),
            )
            c.executemany(
                "UPDATE files SET state='pending', reason='found again', code='', fix='', sha256=NULL,"
                " asset_id=NULL, attempts=0, next_retry_at=NULL, updated_at=? WHERE id=?",
                ((now, fid) for fid in reappeared),
            )

    # --- work ---------------------------------------------------------------------------------------
    def work_items(self, now: float, *, include_parked: bool = False) -> list[FileRow]:
        """Files a pass should handle: fresh work (never failed) first, then retries, each oldest first;
        failed files wait for their ``next_retry_at`` unless ``include_parked``."""
        with self._lock:
            cur = self._conn.execute(
                f"SELECT {_ROW_COLS} FROM files WHERE state IN ('pending','hashing','uploading','waiting')"
                " OR (state='failed' AND (? OR next_retry_at IS NULL OR next_retry_at <= ?))"
                " ORDER BY (state='failed' OR attempts > 0), id",
                (1 if include_parked else 0, now),
            )
            return [_row(r) for r in cur]

    WORK_STATES: Final = ("pending", "hashing", "uploading", "waiting", "failed")

    def work_page(self, now: float, *, retries: bool, state: FileState, after_id: int, limit: int,
                  include_parked: bool = False) -> list[FileRow]:
        """One page of :meth:`work_items` in one of ``WORK_STATES``, in id order after ``after_id``: fresh
        work (never failed) when not ``retries``, else the retries; so a pass reads its work a page at a
        time.  One state per query, so each page is a range of the state index, not a sort of all of it."""
        if state == "failed":
            if not retries:
                return []
            return self._select("state='failed' AND (? OR next_retry_at IS NULL OR next_retry_at <= ?) AND id > ?",
                                (1 if include_parked else 0, now, after_id), limit)
        attempts = "attempts > 0" if retries else "attempts = 0"
        return self._select(f"state=? AND {attempts} AND id > ?", (state, after_id), limit)

    def parked_count(self, now: float) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM files WHERE state='failed' AND next_retry_at > ?", (now,)
            ).fetchone()
        return int(row[0])

    def get(self, file_id: int) -> FileRow:
        with self._lock:
            row = self._conn.execute(f"SELECT {_ROW_COLS} FROM files WHERE id=?", (file_id,)).fetchone()
        return _row(row)

    def _update(self, file_id: int, **cols: object) -> None:
        for k in ("reason", "fix", "warning"):
            v = cols.get(k)
            if isinstance(v, str):
                # A sentence may quote a path that is not UTF-8; SQLite TEXT needs it readable.
                cols[k] = shown(v)
        cols["updated_at"] = time.time()
        sets = ", ".join(f"{k}=?" for k in cols)
        with self._tx() as c:
            c.execute(f"UPDATE files SET {sets} WHERE id=?", (*cols.values(), file_id))

    def add_event(self, file_id: int, kind: str, detail: str = "") -> None:
        """Append to the file's history (``camroll why``); pruned to ``EVENTS_PER_FILE`` by
        :meth:`prune_events`, so a pass pays one small insert per step and nothing per unchanged file."""
        with self._tx() as c:
            c.execute("INSERT INTO file_events (file_id, at, kind, detail) VALUES (?, ?, ?, ?)",
                      (file_id, time.time(), kind, shown(detail)))
            self._events_written = True

    def prune_events(self) -> None:
        if not self._events_written:
            return
        with self._tx() as c:
            c.execute(
                "DELETE FROM file_events WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER"
                " (PARTITION BY file_id ORDER BY id DESC) AS n FROM file_events) WHERE n > ?)",
                (EVENTS_PER_FILE,),
            )
        self._events_written = False

    def events(self, file_id: int) -> list[FileEvent]:
        with self._lock:
            cur = self._conn.execute(
                "SELECT at, kind, detail FROM file_events WHERE file_id=? ORDER BY id", (file_id,))
            return [FileEvent(*r) for r in cur]

    def set_state(self, file_id: int, state: FileState, reason: str, code: str = "", fix: str = "") -> None:
        self._update(file_id, state=state, reason=reason, code=code, fix=fix)
        if state in ("waiting", "vanished", "skipped", "ignored"):
            self.add_event(file_id, state, reason)

    def set_waiting(self, file_id: int, reason: str, code: str, fix: str, *, clear_hash: bool = False) -> None:
        if clear_hash:
            self._update(file_id, state="waiting", reason=reason, code=code, fix=fix, sha256=None, mime=None)
        else:
            self._update(file_id, state="waiting", reason=reason, code=code, fix=fix)
        self.add_event(file_id, "waiting", reason)

    def set_hashed(self, file_id: int, sha256: str, mime: str, stat_key: StatKey, warning: str = "") -> None:
        size, mtime_ns, inode = stat_key
        self._update(file_id, sha256=sha256, mime=mime, size=size, mtime_ns=mtime_ns, inode=inode,
                     state="uploading", reason="hashed; waiting to upload", code="", fix="", warning=warning)
        self.add_event(file_id, "hashed", f"sha256 {sha256}, {mime}" + (f"; warning: {warning}" if warning else ""))

    def set_pending(self, file_id: int, reason: str, *, clear_hash: bool) -> None:
        if clear_hash:
            self._update(file_id, state="pending", reason=reason, code="", fix="", sha256=None, mime=None)
        else:
            self._update(file_id, state="pending", reason=reason, code="", fix="")

    def set_skipped(self, file_id: int, reason: str, stat_key: StatKey | None = None, *, code: str = "",
                    fix: str = "") -> None:
        if stat_key is None:
            self._update(file_id, state="skipped", reason=reason, code=code, fix=fix)
        else:
            size, mtime_ns, inode = stat_key
            self._update(file_id, state="skipped", reason=reason, code=code, fix=fix, size=size, mtime_ns=mtime_ns,
                         inode=inode)
        self.add_event(file_id, "skipped", reason)

    def set_upload(self, file_id: int, url: str | None, offset: int | None) -> None:
        """Remember the tus upload as soon as it exists, so a killed agent resumes it."""
        self._update(file_id, upload_url=url, upload_offset=offset)

    def set_upload_offset(self, file_id: int, offset: int) -> None:
        self._update(file_id, upload_offset=offset)

    def set_backed_up(self, file_id: int, asset_id: int, reason: str) -> None:
        self._update(file_id, state="backed_up", reason=reason, code="", fix="", asset_id=asset_id, upload_url=None,
                     upload_offset=None, attempts=0, next_retry_at=None, backed_up_at=time.time())
        self.add_event(file_id, "verified", f"{reason} (asset {asset_id})")

    def set_failed(self, file_id: int, reason: str, next_retry_at: float | None, *, code: str = "failed",
                   fix: str = "") -> int:
        """Mark a failure and return the file's attempt count (used to grow its back-off)."""
        with self._tx() as c:
            c.execute(
                "UPDATE files SET state='failed', reason=?, code=?, fix=?, attempts=attempts+1, next_retry_at=?,"
                " updated_at=? WHERE id=?",
                (shown(reason), code, shown(fix), next_retry_at, time.time(), file_id),
            )
            row = c.execute("SELECT attempts FROM files WHERE id=?", (file_id,)).fetchone()
        self.add_event(file_id, "failed", reason)
        return int(row[0])

    def find(self, path: str) -> FileRow | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_ROW_COLS} FROM files WHERE path=?", (to_db(path),)).fetchone()
        return None if row is None else _row(row)

    def add_file(self, f: NewFile, state: FileState, reason: str, code: str, fix: str) -> int:
        """Record a file the scanner has not seen yet directly in ``state`` (``camroll ignore``)."""
        now = time.time()
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO files (path, folder, size, mtime_ns, inode, state, reason, code, fix, first_seen_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (to_db(f.path), f.folder, f.size, f.mtime_ns, f.inode, state, shown(reason), code, shown(fix), now,
                 now),
            )
            fid = int(cur.lastrowid or 0)
        self.add_event(fid, state, reason)
        return fid

    def make_eligible(self, file_id: int, reason: str) -> None:
        """Retry a failed or skipped file on the next pass (behind fresh work, see :meth:`work_items`)."""
        with self._tx() as c:
            c.execute(
                "UPDATE files SET state=CASE WHEN state='failed' THEN 'failed' ELSE 'pending' END,"
                " attempts=CASE WHEN state='failed' THEN attempts ELSE MAX(attempts, 1) END,"
                " next_retry_at=NULL, reason=?, updated_at=? WHERE id=?",
                (reason, time.time(), file_id),
            )
        self.add_event(file_id, "retry", reason)

    def reopen_codes(self, codes: Iterable[str], reason: str) -> int:
        """Make skipped files with these reason codes pending again (the policy that skipped them
        changed); returns how many."""
        codes = list(codes)
        marks = ",".join("?" * len(codes))
        with self._tx() as c:
            cur = c.execute(
                f"UPDATE files SET state='pending', reason=?, code='', fix='', updated_at=? WHERE state='skipped'"
                f" AND code IN ({marks})", (reason, time.time(), *codes))
            return int(cur.rowcount)

    def reset_for_new_server(self) -> None:
        """Forget what a previous server held: every file must be checked (not re-hashed) again."""
        with self._tx() as c:
            c.execute(
                "UPDATE files SET state='pending', reason='new server or account', code='', fix='', asset_id=NULL,"
                " upload_url=NULL, upload_offset=NULL, attempts=0, next_retry_at=NULL, backed_up_at=NULL"
                " WHERE state IN ('backed_up','uploading','hashing','failed','waiting')"
            )
            c.execute("UPDATE files SET state='uploading' WHERE state='pending' AND sha256 IS NOT NULL")

    # --- status -------------------------------------------------------------------------------------
    def counts(self) -> StateCounts:
        with self._lock:
            cur = self._conn.execute(
                "SELECT state, COUNT(*), COALESCE(SUM(size), 0) FROM files GROUP BY state")
            rows = cur.fetchall()
        return StateCounts(files={s: int(n) for s, n, _ in rows}, bytes={s: int(b) for s, _, b in rows})

    def failed(self, limit: int = 20) -> list[FileRow]:
        with self._lock:
            cur = self._conn.execute(
                f"SELECT {_ROW_COLS} FROM files WHERE state='failed' ORDER BY updated_at DESC LIMIT ?",
                (limit,),
            )
            return [_row(r) for r in cur]

    def rows_in_state(self, state: FileState, limit: int = 20) -> list[FileRow]:
        with self._lock:
            cur = self._conn.execute(
                f"SELECT {_ROW_COLS} FROM files WHERE state=? ORDER BY id LIMIT ?", (state, limit)
            )
            return [_row(r) for r in cur]

    def problem_files(self, limit: int, *, excluded: bool = True) -> list[FileRow]:
        """Files not backed up for a reason a person should see: failed first, then waiting, then skipped;
        the most recently changed first within each.  ``excluded=False`` leaves out files left out by
        choice (include/exclude globs, hidden, Android's trash: ``filepolicy.LEFT_OUT_CODES``)."""
        skip_excluded = "" if excluded else f" AND NOT (state='skipped' AND code IN {_LEFT_OUT_SQL})"
        with self._lock:
            cur = self._conn.execute(
                f"SELECT {_ROW_COLS} FROM files WHERE state IN ('failed','waiting','skipped'){skip_excluded}"
                " ORDER BY CASE state WHEN 'failed' THEN 0 WHEN 'waiting' THEN 1 ELSE 2 END, updated_at DESC"
                " LIMIT ?", (limit,))
            return [_row(r) for r in cur]

    def left_out_count(self) -> int:
        """Files skipped by choice (``filepolicy.LEFT_OUT_CODES``): counted, never problems."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT COUNT(*) FROM files WHERE state='skipped' AND code IN {_LEFT_OUT_SQL}").fetchone()
        return int(row[0])

    def _select(self, where: str, params: tuple[object, ...], limit: int) -> list[FileRow]:
        # Private: callers use the named queries below, so every SQL fragment stays in this module.
        with self._lock:
            cur = self._conn.execute(f"SELECT {_ROW_COLS} FROM files WHERE {where} ORDER BY id LIMIT ?",
                                     (*params, limit))
            return [_row(r) for r in cur]

    def waiting(self, limit: int = 20) -> list[FileRow]:
        """Files held back for a reason (still being written, a storage stop, ...), oldest first."""
        return self._select("state='waiting'", (), limit)

    def skipped_by_rule(self, limit: int = 20) -> list[FileRow]:
        """Files skipped by a rule a person should see (not those left out by choice)."""
        return self._select(f"state='skipped' AND code NOT IN {_LEFT_OUT_SQL}", (), limit)

    def backed_up_with_warning(self, limit: int = 20) -> list[FileRow]:
        """Files backed up although something looked wrong with them (a photo without its end marker)."""
        return self._select("warning != '' AND state='backed_up'", (), limit)

    def unreadable_parked(self, now: float, limit: int = 1000) -> list[FileRow]:
        """Files that could not be read and wait for their back-off time."""
        return self._select("state='failed' AND code='unreadable' AND next_retry_at > ?", (now,), limit)

    def retryable(self, skip_codes: Iterable[str], limit: int = 100_000) -> list[FileRow]:
        """Failed files and files skipped with one of ``skip_codes`` (rules that may have changed)."""
        codes = tuple(skip_codes)
        marks = ", ".join("?" * len(codes)) or "''"
        return self._select(f"state='failed' OR (state='skipped' AND code IN ({marks}))", codes, limit)
