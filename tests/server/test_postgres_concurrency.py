"""What two server replicas race on, raced for real: two contexts (two engines with their own pools, as two
``camroll serve`` processes have) on one PostgreSQL database, sharing one blob store.

Where the outcome depends on who waits for whom, a test does not hope for a bad interleaving: it holds
one side at the dangerous moment and lets the other go until PostgreSQL shows it waiting on a lock
(``pg_locks``), then releases the first.  Without the lock or conditional statement under test, the
second side does not wait, the bad interleaving happens, and the test fails.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from services import postgres
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError
from support.env import require

from camroll import wire
from camroll.server.context import Context, build
from camroll.server.models import Asset, Blob, Upload
from camroll.server.problems import ProblemError
from camroll.server.repositories import assets as asset_repo
from camroll.server.repositories import uploads as upload_repo
from camroll.server.services import accounts, trash, uploads
from camroll.server.services.auth import Principal
from camroll.server.settings import Settings
from camroll.server.storage.base import BlobStat, BlobStore
from camroll.server.storage.local import LocalBlobStore

JPEG = b"\xff\xd8\xff\xe0"


@pytest.fixture(scope="module")
def database() -> str:
    require(postgres.missing_reason() is None, str(postgres.missing_reason()))
    return postgres.fresh_url()


@pytest.fixture
def replicas(database: str, tmp_path: Path) -> Iterator[tuple[Context, Context]]:
    """Two replicas of one server: each its own engine and pool, one database, one blob store."""
    settings = Settings(data_dir=tmp_path / "data", database_url=database, accept_other_files=True)
    pair = (build(settings), build(settings))
    try:
        yield pair
    finally:
        for ctx in pair:
            ctx.engine.dispose()


def _user(ctx: Context, quota: int | None = None) -> Principal:
    name = f"u{time.monotonic_ns()}"
    user = accounts.add_user(ctx, name, "correct horse battery", quota_bytes=quota)
    return Principal(user_id=user.id, username=name, is_admin=False, device_id=None)


def _data(seed: int, n: int = 4096) -> bytes:
    return (JPEG + str(seed).encode() * n)[:n]


def _received(ctx: Context, who: Principal, data: bytes, name: str = "a.jpg") -> str:
    """An upload whose bytes all arrived (its part file is full); completing it is the caller's."""
    state = uploads.create(ctx, who, len(data), {wire.META_FILENAME: name})
    ctx.parts.path(state.id).write_bytes(data)
    with ctx.conn() as conn:
        assert upload_repo.advance(conn, state.id, 0, len(data), datetime.now(UTC), state.expires_at)
    return state.id


def _waiters(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")) or 0)


def _until_blocked(engine: Engine, done: Callable[[], bool] = lambda: False, timeout: float = 20) -> bool:
    """Wait until some transaction waits on a lock (True), or ``done()`` (False: it never had to)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _waiters(engine):
            return True
        if done():
            return False
        time.sleep(0.01)
    raise AssertionError("neither blocked nor finished in time")


class _Thread(threading.Thread):
    """A thread that keeps what its target returned or raised."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._fn = target
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._fn()
        except BaseException as exc:
            self.error = exc

    def outcome(self, timeout: float = 30) -> Any:
        self.join(timeout)
        assert not self.is_alive(), "the thread is still running"
        if self.error is not None:
            raise self.error
        return self.result


def test_concurrent_creations_admit_exactly_what_the_quota_holds(replicas: tuple[Context, Context]) -> None:
    a, b = replicas
    size, fits, tries = 1000, 3, 10
    who = _user(a, quota=fits * size + size // 2)
    start = threading.Barrier(tries)

    def create(ctx: Context) -> str:
        start.wait()
        return uploads.create(ctx, who, size, {wire.META_FILENAME: "x.jpg"}).id

    threads = [_Thread(lambda ctx=(a, b)[i % 2]: create(ctx)) for i in range(tries)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    refused = [t.error for t in threads if t.error is not None]
    assert all(isinstance(e, ProblemError) and e.code == "quota_exceeded" for e in refused), refused
    assert tries - len(refused) == fits
    with a.db() as db:
        assert len(db.scalars(select(Upload.id).where(Upload.user_id == who.user_id)).all()) == fits


def test_quota_check_waits_for_the_other_replicas_admission(replicas: tuple[Context, Context]) -> None:
    """The same, with the interleaving forced: replica A has admitted an upload but not committed yet;
    replica B's check must wait for it and then count it."""
    from camroll.server.services import quota

    a, b = replicas
    who = _user(a, quota=1500)
    admitted, release = threading.Event(), threading.Event()

    def first() -> None:
        with a.conn() as conn:
            quota.ensure_fits(conn, who.user_id, 1000)
            upload_repo.insert_row(conn, {
                "id": secrets.token_urlsafe(24), "user_id": who.user_id, "device_id": None, "length": 1000, "offset": 0,
                "metadata": {}, "declared_sha256": None, "state": upload_repo.ACTIVE,
                "created_at": datetime.now(UTC), "updated_at": datetime.now(UTC),
                "expires_at": datetime.now(UTC) + timedelta(hours=1)})
            admitted.set()
            assert release.wait(20)

    ta = _Thread(first)
    ta.start()
    assert admitted.wait(20)
    tb = _Thread(lambda: uploads.create(b, who, 1000, {wire.META_FILENAME: "y.jpg"}))
    tb.start()
    blocked = _until_blocked(a.engine, lambda: not tb.is_alive())
    release.set()
    ta.outcome()
    assert blocked, "replica B decided without waiting for replica A's uncommitted admission"
    with pytest.raises(ProblemError) as refused:
        tb.outcome()
    assert refused.value.code == "quota_exceeded"


def test_one_asset_and_one_blob_when_two_replicas_complete_the_same_bytes(replicas: tuple[Context, Context]) -> None:
    a, b = replicas
    who = _user(a)
    data = _data(1)
    ids = [_received(a, who, data, "one.jpg"), _received(b, who, data, "two.jpg")]
    start = threading.Barrier(2)

    def complete(ctx: Context, upload_id: str) -> int:
        start.wait()
        return uploads.complete(ctx, upload_id, None)

    threads = [_Thread(lambda: complete(a, ids[0])), _Thread(lambda: complete(b, ids[1]))]
    for t in threads:
        t.start()
    assets = {t.outcome() for t in threads}
    assert len(assets) == 1
    with a.db() as db:
        rows = db.scalars(select(Asset).where(Asset.user_id == who.user_id)).all()
        assert [r.id for r in rows] == list(assets)
        sha = rows[0].sha256
        assert db.scalars(select(Blob.sha256).where(Blob.sha256 == sha)).all() == [sha]
        done = db.scalars(select(Upload).where(Upload.id.in_(ids))).all()
        assert {(u.state, u.asset_id) for u in done} == {(upload_repo.COMPLETE, rows[0].id)}
    assert a.blobs.exists(sha)


def test_same_asset_inserted_by_two_transactions_at_once(replicas: tuple[Context, Context]) -> None:
    """The insert itself decides (ON CONFLICT): the second transaction waits for the first's row and gets
    its id; a read-then-insert would have read nothing and then hit the unique index."""
    a, b = replicas
    who = _user(a)
    sha = "ab" * 32
    with a.conn() as conn:
        asset_repo.ensure_blob(conn, sha, 10)
    inserted, release = threading.Event(), threading.Event()

    def first() -> int:
        with a.conn() as conn:
            asset_id = asset_repo.get_or_create(conn, who.user_id, sha, 10, "image/jpeg", "a.jpg")
            inserted.set()
            assert release.wait(20)
        return asset_id

    def second() -> int:
        with b.conn() as conn:
            return asset_repo.get_or_create(conn, who.user_id, sha, 10, "image/jpeg", "a.jpg")

    ta = _Thread(first)
    ta.start()
    assert inserted.wait(20)
    tb = _Thread(second)
    tb.start()
    assert _until_blocked(a.engine, lambda: not tb.is_alive()), "the second insert did not wait for the first"
    release.set()
    first_id = ta.outcome()
    try:
        assert tb.outcome() == first_id
    except IntegrityError as exc:  # pragma: no cover - what check-then-insert does
        raise AssertionError(f"the second transaction hit the unique index: {exc}") from exc


class _HeldDelete(BlobStore):
    """A blob store whose ``delete`` stops until released: the trash purge is then between its
    "nobody needs this blob" check and the commit of its delete."""

    def __init__(self, inner: LocalBlobStore) -> None:
        self.inner = inner
        self.deleting = threading.Event()
        self.release = threading.Event()

    def put_file(self, sha256: str, source: Path) -> BlobStat:
        return self.inner.put_file(sha256, source)

    def open(self, sha256: str, offset: int = 0, length: int | None = None) -> Any:
        return self.inner.open(sha256, offset, length)

    def stat(self, sha256: str) -> BlobStat:
        return self.inner.stat(sha256)

    def exists(self, sha256: str) -> bool:
        return self.inner.exists(sha256)

    def delete(self, sha256: str) -> None:
        self.deleting.set()
        assert self.release.wait(20)
        self.inner.delete(sha256)

    def list(self) -> Iterator[BlobStat]:
        return self.inner.list()


def test_trash_purge_against_an_upload_completing_the_same_bytes(replicas: tuple[Context, Context]) -> None:
    """Replica A purges the last asset of some bytes while replica B completes an upload of the same
    bytes.  B must either be seen by the purge (which keeps the blob) or store the bytes after the
    purge deleted them: never store them just before the purge's delete and keep an asset without bytes."""
    a, b = replicas
    ann, bob = _user(a), _user(a)
    data = _data(2)
    first = uploads.complete(a, _received(a, ann, data), None)
    trash.trash(a, ann, [first])
    with a.db() as db:
        sha = db.scalar(select(Asset.sha256).where(Asset.id == first))
    assert sha is not None and a.blobs.exists(sha)
    pending = _received(b, bob, data)

    assert isinstance(a.blobs, LocalBlobStore)
    held = _HeldDelete(a.blobs)
    a.blobs = held
    purge = _Thread(lambda: trash.purge(a, days=0, now=datetime.now(UTC) + timedelta(seconds=1)))
    purge.start()
    assert held.deleting.wait(20)
    complete = _Thread(lambda: uploads.complete(b, pending, None))
    complete.start()
    # B waits either for the purge's blob lock (before it stores anything) or, without that lock, on
    # the blob row the purge is deleting (after it stored the bytes the purge is about to delete).
    _until_blocked(a.engine, lambda: not complete.is_alive())
    held.release.set()
    assert purge.outcome() == 1
    asset = complete.outcome()
    with a.db() as db:
        assert db.scalar(select(Asset.sha256).where(Asset.id == asset)) == sha
        assert db.scalar(select(Blob.sha256).where(Blob.sha256 == sha)) == sha
    assert b.blobs.exists(sha), "the purge deleted the bytes of an asset that was just completed"
    with b.blobs.open(sha) as f:
        assert f.read() == data


def test_offset_moved_by_two_writers_at_once_moves_once(replicas: tuple[Context, Context]) -> None:
    a, b = replicas
    who = _user(a)
    state = uploads.create(a, who, 100, {wire.META_FILENAME: "o.jpg"})
    now = datetime.now(UTC)
    moved, release = threading.Event(), threading.Event()

    def first() -> bool:
        with a.conn() as conn:
            ok = upload_repo.advance(conn, state.id, 0, 60, now, state.expires_at)
            moved.set()
            assert release.wait(20)
        return ok

    ta = _Thread(first)
    ta.start()
    assert moved.wait(20)

    def second() -> bool:
        with b.conn() as conn:
            return upload_repo.advance(conn, state.id, 0, 40, now, state.expires_at)

    tb = _Thread(second)
    tb.start()
    assert _until_blocked(a.engine, lambda: not tb.is_alive()), "the second writer did not wait for the row"
    release.set()
    assert ta.outcome() is True
    assert tb.outcome() is False
    with a.conn() as conn:
        assert upload_repo.get_row(conn, state.id).offset == 60
        # mark_hashed from a stale offset loses the same way.
        assert not upload_repo.mark_hashed(conn, state.id, "ef" * 32, None, 100, 0, now, state.expires_at)
