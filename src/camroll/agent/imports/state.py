"""What earlier runs of an import did, so a re-run after an interruption imports nothing twice.

A small SQLite file next to the agent's state DB (``imports.db``), separate from it because an import
is not a backup folder: the engine's scanner must never see archive members.  Contract:
- ``done(key)`` is written only after the server answered with the asset id (or said it had the
  hash), in its own transaction; a killed run loses at most the answer it was waiting for, and the
  re-run's check finds that asset by hash.
- ``upload_url`` is written before the first byte is sent, so a re-run resumes that upload at the
  server's offset instead of sending its start again.
Keys name a member by part file name, member name and size, never by absolute path: moving the parts
to another folder keeps their progress.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from camroll.agent.imports.archive import Member

_SCHEMA = """
CREATE TABLE IF NOT EXISTS imported (
    key TEXT PRIMARY KEY, sha256 TEXT NOT NULL, asset_id INTEGER, outcome TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hashed (key TEXT PRIMARY KEY, sha256 TEXT NOT NULL, mime TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (key TEXT PRIMARY KEY, sha256 TEXT NOT NULL, url TEXT NOT NULL);
"""


def member_key(m: Member) -> str:
    return f"{os.path.basename(m.part)}\x00{m.name}\x00{m.size}"


@dataclass(frozen=True)
class Done:
    sha256: str
    asset_id: int | None
    outcome: str


class ImportState:
    def __init__(self, path: Path, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self.clock = clock

    def close(self) -> None:
        self.db.close()

    def done(self, key: str) -> Done | None:
        row = self.db.execute("SELECT sha256, asset_id, outcome FROM imported WHERE key = ?", (key,)).fetchone()
        return Done(row[0], row[1], row[2]) if row else None

    def mark_done(self, key: str, sha256: str, asset_id: int | None, outcome: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO imported VALUES (?, ?, ?, ?, ?)",
                            (key, sha256, asset_id, outcome, self.clock().isoformat()))
            self.db.execute("DELETE FROM uploads WHERE key = ?", (key,))

    def hashed(self, key: str) -> tuple[str, str] | None:
        row = self.db.execute("SELECT sha256, mime FROM hashed WHERE key = ?", (key,)).fetchone()
        return (row[0], row[1]) if row else None

    def mark_hashed(self, key: str, sha256: str, mime: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO hashed VALUES (?, ?, ?)", (key, sha256, mime))

    def upload_url(self, key: str, sha256: str) -> str | None:
        row = self.db.execute("SELECT url FROM uploads WHERE key = ? AND sha256 = ?", (key, sha256)).fetchone()
        return row[0] if row else None

    def set_upload_url(self, key: str, sha256: str, url: str | None) -> None:
        if url is None:
            self.db.execute("DELETE FROM uploads WHERE key = ?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO uploads VALUES (?, ?, ?)", (key, sha256, url))
