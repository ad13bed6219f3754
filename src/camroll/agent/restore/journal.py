"""What earlier runs of a restore into one DEST finished: ``DEST/.camroll-restore/journal.db``.

A file is recorded after it was verified, written in place and synced, so a file the journal names was
restored whole.  A crash between the placement and the record leaves a file the journal does not name;
the next run finds it identical by its SHA-256 and records it then, without writing it again.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

# ``rel``: the planned place; ``placed``: where the file went (another name when a different file held
# the planned place).
_SCHEMA = ("CREATE TABLE IF NOT EXISTS done (rel BLOB PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL, "
           "placed BLOB NOT NULL)")


class Journal:
    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self._lock = threading.Lock()
        if read_only:  # a dry run: nothing under DEST changes, not even the journal's mode
            self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            return
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)

    def done(self, rel: bytes) -> tuple[str, int, bytes] | None:
        """(sha256, size, placed) of the file an earlier run restored for ``rel``, or None."""
        with self._lock:
            row = self._db.execute("SELECT sha256, size, placed FROM done WHERE rel = ?", (rel,)).fetchone()
        return None if row is None else (str(row[0]), int(row[1]), bytes(row[2]))

    def mark(self, rel: bytes, sha256: str, size: int, placed: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO done (rel, sha256, size, placed) VALUES (?, ?, ?, ?)",
                             (rel, sha256, size, placed))

    def close(self) -> None:
        with self._lock:
            self._db.close()
