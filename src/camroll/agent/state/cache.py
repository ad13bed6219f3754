"""The local state DB as a cache: opened with a damage check, moved aside and rebuilt when damaged, and
rebuilt on request by ``camroll reset-cache`` (``backup.reset``).

The state DB only remembers what the server already holds, so a fresh one loses nothing: the next pass
hashes every file and asks the server in batches which hashes it has (``backup.run.run_backup``), and uploads
only what is missing.  Old files are never deleted: a damaged DB is kept as ``state.db.corrupt-<time>``
and a reset one as ``state.db.bak-<time>``, next to the new one.

Cost of the damage check: ``PRAGMA quick_check`` reads every page, about 40 ms for 100,000 files
(a 23-34 MB DB, warm cache, quiet 2-core machine; about 100 ms with the machine loaded; a full
``integrity_check``, which ``camroll doctor`` runs, costs about twice that), next to about 0.5 s for a
no-change pass over the same 100,000 files (bench/README.md): under 10 %.  So it runs on every open
while the DB is at most :data:`QUICK_CHECK_MAX_BYTES`; above that, once a day and whenever the cheap signs
(opening fails, or the header's page count and the file's size disagree) say something is wrong.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from camroll.agent.log import logger
from camroll.agent.paths import AgentPaths
from camroll.agent.service.lock import pass_lock
from camroll.agent.state.db import StateDB

# Meta keys in the new DB saying it was rebuilt, when, why and where the old file went.
META_REBUILT_AT = "state_db_rebuilt_at"
META_REBUILT_KIND = "state_db_rebuilt_kind"  # "damaged" or "reset"
META_REBUILT_WHY = "state_db_rebuilt_why"
META_REBUILT_OLD = "state_db_rebuilt_old_file"
META_LAST_CHECK = "state_db_checked_at"

QUICK_CHECK_MAX_BYTES = 64 * 1024 * 1024
QUICK_CHECK_EVERY_S = 24 * 3600.0
SIDE_FILES = ("-wal", "-shm")


def _stamp(ts: float) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(ts))


def when_text(ts: float) -> str:
    """"24 Nov at 21:40" in local time."""
    d = datetime.fromtimestamp(ts)
    return f"{d.day} {d:%b} at {d:%H:%M}"


def is_damage(exc: BaseException) -> bool:
    """Whether an SQLite error means the file is damaged (not merely locked, missing or unwritable)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _header_pages_fit(path: Path) -> bool:
    """The header's page count times page size fits in the file (a cheap sign of truncation).  The
    count is only trusted when the header says it is valid (bytes 24-27 equal bytes 92-95)."""
    try:
        with open(path, "rb") as f:
            head = f.read(100)
        size = path.stat().st_size
    except OSError:
        return True  # let SQLite report what it cannot open
    if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
        return len(head) == 0
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    if head[24:28] != head[92:96] or pages == 0:
        return True
    return pages * page_size <= size


def _read_only(path: Path) -> sqlite3.Connection:
    # Read-only, so that closing it never checkpoints or deletes a -wal that belongs with a damaged file.
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30)


def damage(path: Path, *, force_check: bool = False) -> str | None:
    """Why the DB at ``path`` is damaged, or None if it is fine (or absent).  Runs ``quick_check`` when
    ``force_check``, when the DB is small enough (see the module docstring) or when cheap signs say so."""
    if not path.exists():
        return None
    try:
        size = path.stat().st_size
    except OSError:
        return None
    check = force_check or size <= QUICK_CHECK_MAX_BYTES or not _header_pages_fit(path)
    try:
        conn = _read_only(path)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            if not check:
                return None
            rows = conn.execute("PRAGMA quick_check(5)").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return str(exc)
        raise
    msgs = [str(r[0]) for r in rows]
    if msgs == ["ok"]:
        return None
    return "; ".join(msgs)[:300]


def _move_aside(path: Path, suffix: str) -> Path:
    """Rename ``path`` and its -wal/-shm to ``<name>.<suffix>`` (never deleting anything)."""
    target = path.with_name(f"{path.name}.{suffix}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{suffix}-{n}")
    os.replace(path, target)
    for side in SIDE_FILES:
        src = path.with_name(path.name + side)
        if src.exists():
            os.replace(src, target.with_name(target.name + side))
    return target


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _record(db: StateDB, kind: str, why: str, old: Path, at: float) -> None:
    db.set_meta(META_REBUILT_AT, f"{at:.3f}")
    db.set_meta(META_REBUILT_KIND, kind)
    db.set_meta(META_REBUILT_WHY, why)
    db.set_meta(META_REBUILT_OLD, str(old))


def open_state_db(paths: AgentPaths, *, notify: Callable[[str], None] | None = _stderr,
                  now: Callable[[], float] = time.time) -> StateDB:
    """Open the state DB; if it is damaged (not a database, malformed, failing ``quick_check``), move it
    and its -wal/-shm aside as ``state.db.corrupt-<time>``, start a fresh one, record that in its meta
    table (see :func:`rebuild_notice`), tell ``notify`` (stderr by default; None for silence) and
    return the fresh DB.  The next backup pass rebuilds its rows by hash and server check, uploading
    nothing the server already has.  Errors that are not damage (locked, unwritable) are raised."""
    path = paths.state_db
    last_check: float | None = None
    why = None
    if path.exists():
        force = False
        if path.stat().st_size > QUICK_CHECK_MAX_BYTES:
            last_check = _last_check(path)
            force = last_check is None or now() - last_check > QUICK_CHECK_EVERY_S
        why = damage(path, force_check=force)
        if why is None:
            try:
                db = StateDB(path)
            except sqlite3.DatabaseError as exc:
                if not is_damage(exc):
                    raise
                why = str(exc)
            else:
                if path.stat().st_size > QUICK_CHECK_MAX_BYTES and force:
                    with contextlib.suppress(sqlite3.Error):
                        db.set_meta(META_LAST_CHECK, f"{now():.3f}")
                return db
    if why is None:
        return StateDB(path)
    at = now()
    old = _move_aside(path, f"corrupt-{_stamp(at)}")
    db = StateDB(path)
    _record(db, "damaged", why, old, at)
    logger.warning("state DB damaged (%s): moved to %s and started afresh", why, old)
    if notify is not None:
        notify(rebuild_notice(db) or "")
    return db


def _last_check(path: Path) -> float | None:
    try:
        conn = _read_only(path)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key=?", (META_LAST_CHECK,)).fetchone()
        finally:
            conn.close()
        return float(row[0]) if row else None
    except (sqlite3.Error, ValueError):
        return None


@dataclass(frozen=True)
class Rebuilt:
    at: float
    kind: str
    why: str
    old_file: str


def rebuilt_info(db: StateDB) -> Rebuilt | None:
    """What :func:`open_state_db` or ``reset-cache`` recorded in this DB, if anything."""
    at = db.get_meta(META_REBUILT_AT)
    if not at:
        return None
    try:
        ts = float(at)
    except ValueError:
        return None
    return Rebuilt(ts, db.get_meta(META_REBUILT_KIND) or "", db.get_meta(META_REBUILT_WHY) or "",
                   db.get_meta(META_REBUILT_OLD) or "")


def notice_for(info: Rebuilt) -> str:
    when = when_text(info.at)
    if info.kind == "reset":
        return (f"The local state database was reset on {when} (camroll reset-cache) and rebuilt from the "
                f"folders and the server; nothing was re-uploaded. The old copy is {info.old_file}.")
    return (f"The local state database was damaged ({info.why}) and was rebuilt on {when}; nothing was "
            f"re-uploaded: files already on the server are only checked by hash. The damaged copy is kept as "
            f"{info.old_file}.")


def rebuild_notice(db: StateDB) -> str | None:
    """The sentence telling the user their state DB was rebuilt, or None if it never was."""
    info = rebuilt_info(db)
    return None if info is None else notice_for(info)


def move_aside_for_reset(paths: AgentPaths, *, now: Callable[[], float] = time.time) -> Path | None:
    """Move the state DB to ``state.db.bak-<time>`` (after folding its WAL into it, so the copy is
    complete) and create a fresh one that records the reset.  Holds the pass lock so no backup writes
    meanwhile.  Returns where the old DB went, or None if there was none."""
    path = paths.state_db
    with pass_lock(path):
        old: Path | None = None
        at = now()
        if path.exists():
            with contextlib.suppress(sqlite3.Error):
                conn = sqlite3.connect(path, timeout=30)
                try:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    conn.close()
            old = _move_aside(path, f"bak-{_stamp(at)}")
        with StateDB(path) as db:
            _record(db, "reset", "camroll reset-cache", old or path, at)
    return old
