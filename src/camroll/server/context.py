"""What every request handler and background task shares: settings, database and blob store."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from camroll.server.services.partfiles import PartFiles
from camroll.server.settings import Settings
from camroll.server.storage.base import BlobStore
from camroll.server.throttles import Throttles

if TYPE_CHECKING:
    from camroll.server.jobs.queue import JobQueue


class HashCache:
    """Running whole-file SHA-256 per upload, so the final hash costs nothing extra.

    Only an optimisation: a miss (restart, another replica) means the partial file is re-read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[int, Any]] = {}

    def take(self, upload_id: str, offset: int) -> Any | None:
        """The hasher for ``upload_id`` if it has consumed exactly ``offset`` bytes; removes it."""
        with self._lock:
            item = self._items.pop(upload_id, None)
        if item is None:
            return hashlib.sha256() if offset == 0 else None
        return item[1] if item[0] == offset else None

    def put(self, upload_id: str, offset: int, hasher: Any) -> None:
        with self._lock:
            self._items[upload_id] = (offset, hasher)

    def drop(self, upload_id: str) -> None:
        with self._lock:
            self._items.pop(upload_id, None)


@dataclass
class Context:
    settings: Settings
    engine: Engine
    sessionmaker: sessionmaker[Session]
    blobs: BlobStore
    parts: PartFiles
    hashes: HashCache = field(default_factory=HashCache)
    # Uploads a request is writing to right now; a second writer is refused rather than interleaved.
    busy: set[str] = field(default_factory=set)
    # The background job queue while the server runs (None in admin commands and before start).
    jobs: JobQueue | None = None
    # Login back-off, the password-verification limit and the alert-test interval (tests swap the clock).
    throttles: Throttles = field(default_factory=Throttles)
    # SQLite has one writer at a time, and a connection that finds the database locked sleeps in
    # SQLite's busy handler (1, 2, 5, 10... ms) before it tries again.  Queueing this process's
    # transactions on a lock instead hands the database over as soon as it is free (2,000 small
    # files, several transactions each: 41 s -> 34 s on a loaded 2-core machine).  Databases with
    # real write concurrency (PostgreSQL) get no lock.
    _write_lock: threading.RLock | None = None

    def __post_init__(self) -> None:
        if self.engine.dialect.name == "sqlite":
            self._write_lock = threading.RLock()

    @contextmanager
    def db(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        if self._write_lock is None:
            with self.sessionmaker() as session, session.begin():
                yield session
            return
        with self._write_lock, self.sessionmaker() as session, session.begin():
            yield session

    @contextmanager
    def conn(self) -> Iterator[Connection]:
        """A Core connection in a transaction that commits on success and rolls back on error.

        Hot paths (auth, uploads) use this with Core statements: no ORM identity map, no unit of work."""
        if self._write_lock is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._write_lock, self.engine.begin() as conn:
            yield conn


def build(settings: Settings) -> Context:
    from camroll.server.db import make_engine, make_sessionmaker
    from camroll.server.storage.local import LocalBlobStore

    engine = make_engine(settings.database_url)
    return Context(settings, engine, make_sessionmaker(engine), LocalBlobStore(settings.blobs_dir),
                   PartFiles(settings.uploads_dir))
