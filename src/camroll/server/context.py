"""What every request handler and background task shares: settings, database, blob store and clock."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from camroll.server.clock import SYSTEM_CLOCK, Clock
from camroll.server.jobs.yielding import ReceiveActivity
from camroll.server.services.partfiles import ObjectBlobs, PartFiles, PartStore
from camroll.server.services.work import NoWork, WorkQueue
from camroll.server.settings import Settings
from camroll.server.storage.base import BlobStore
from camroll.server.storage.thumbs import ThumbStore
from camroll.server.throttles import Throttles

if TYPE_CHECKING:
    from camroll.server.jobs.queue import JobQueue
    from camroll.server.metrics import Metrics


class HashCache:
    """Running whole-file SHA-256 per upload, so the final hash costs nothing extra.

    Per process, and only an optimisation: a miss (restart, another replica took the upload over)
    means the stored bytes are read back and hashed at completion.  A load balancer that routes an
    upload's requests by its id keeps the misses rare (docs/ARCHITECTURE.md, "Several replicas")."""

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
    # Where uploads in progress live: local part files, or S3 parts when the blobs are in S3.
    parts: PartStore
    hashes: HashCache = field(default_factory=HashCache)
    # Uploads a request of this process is writing to right now; a second writer is refused rather than
    # interleaved.  With a shared part store the upload row's writer lease keeps other replicas out too
    # (this set stays the cheap first check).
    busy: set[str] = field(default_factory=set)
    # The background job queue while the server runs (None in admin commands and before start).
    jobs: JobQueue | None = None
    # Where services ask for background work (services/work.py): the job queue while the server runs.
    work: WorkQueue = field(default_factory=NoWork)
    # This process's Prometheus registry (server/metrics.py), made at its first use.
    metrics: Metrics | None = None
    # Where every time-based decision reads the time (server/clock.py); tests hand in a fake one.
    clock: Clock = SYSTEM_CLOCK
    # Login back-off, the password-verification limit and the alert-test interval, on ``clock``.
    throttles: Throttles = field(init=False)
    # When this process last received upload bytes: background jobs yield to receiving (jobs/yielding.py).
    activity: ReceiveActivity = field(default_factory=ReceiveActivity)
    # Thumbnails, beside the originals (None: the local layout under the data dir; see media.thumb_store).
    thumbs: ThumbStore | None = None
    # SQLite has one writer at a time, and a connection that finds the database locked sleeps in
    # SQLite's busy handler (1, 2, 5, 10... ms) before it tries again.  Queueing this process's
    # transactions on a lock instead hands the database over as soon as it is free (2,000 small
    # files, several transactions each: 41 s -> 34 s on a loaded 2-core machine).  Databases with
    # real write concurrency (PostgreSQL) get no lock.
    _write_lock: threading.RLock | None = None

    def __post_init__(self) -> None:
        self.throttles = Throttles(clock=self.clock.monotonic)
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


def build(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> Context:
    """The context for ``settings`` on ``clock``: no request is made to the database or the store yet.  Raises
    ``StorageConfigError`` (a ``ValueError``) for a storage configuration that cannot work."""
    from camroll.server.db import make_engine, make_sessionmaker
    from camroll.server.storage.factory import open_stores

    blobs, thumbs = open_stores(settings)
    # The library folder (SQLite database, job queue, temporary copies) exists even when no local part
    # files or blobs make it as a side effect.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    return Context(settings, engine, make_sessionmaker(engine), blobs, part_store_for(settings, blobs),
                   thumbs=thumbs, clock=clock)


def part_store_for(settings: Settings, blobs: BlobStore) -> PartStore:
    """Parts follow the blobs: S3 parts beside them when the blobs are S3 objects
    (``CAMROLL_STORAGE_URL=s3://...``), so no replica keeps an upload's bytes on its own disk; local part
    files otherwise."""
    if isinstance(blobs, ObjectBlobs):
        from camroll.server.storage.s3parts import S3PartStore

        return S3PartStore.beside(blobs)
    return PartFiles(settings.uploads_dir)
