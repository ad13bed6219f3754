"""Rules that are hard to reach over a real socket, run in-process on a memory blob store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from camroll import wire
from camroll.server.app import create_app
from camroll.server.context import Context, HashCache
from camroll.server.db import make_engine, make_sessionmaker
from camroll.server.models import Upload, User, utcnow
from camroll.server.services import accounts, uploads
from camroll.server.services.partfiles import PartFiles
from camroll.server.settings import Settings
from camroll.server.storage.memory import MemoryBlobStore

from .conftest import OCTET, TUS, assert_problem, jpeg, meta


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    settings = Settings.for_data_dir(tmp_path / "data")
    engine = make_engine(settings.database_url)
    return Context(settings, engine, make_sessionmaker(engine), MemoryBlobStore(), PartFiles(settings.uploads_dir))


@pytest.fixture
def api(ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(ctx.settings, ctx)) as client:
        accounts.add_user(ctx, "ann", "pw", quota_bytes=10_000)
        token = client.post("/api/v1/auth/login", json={"username": "ann", "password": "pw"}).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def _create(api: TestClient, data: bytes) -> str:
    r = api.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta(data)})
    assert r.status_code == 201, r.text
    return str(r.headers["Location"])


def _patch(api: TestClient, url: str, offset: int, chunk: bytes) -> object:
    return api.patch(url, content=chunk, headers={**TUS, "Content-Type": OCTET, "Upload-Offset": str(offset)})


def test_quota_checked_again_at_completion(api: TestClient, ctx: Context) -> None:
    data = jpeg(6000, seed=1)
    url = _create(api, data)
    assert _patch(api, url, 0, data[:3000]).status_code == 204  # type: ignore[attr-defined]
    with ctx.db() as db:
        user = db.query(User).one()
        user.quota_bytes = 5000  # the admin lowered it meanwhile
    r = _patch(api, url, 3000, data[3000:])
    assert_problem(r, 413, "quota_exceeded")  # type: ignore[arg-type]
    assert list(ctx.blobs.list()) == []
    assert list(ctx.parts.root.glob("*.part")) == []
    assert api.head(url, headers=TUS).status_code == 404


def test_hash_recomputed_when_cache_is_cold(api: TestClient, ctx: Context) -> None:
    data = jpeg(5000, seed=2)
    url = _create(api, data)
    _patch(api, url, 0, data[:2000])
    ctx.hashes = HashCache()  # as after a restart, or on another replica
    r = _patch(api, url, 2000, data[2000:])
    assert r.status_code == 204  # type: ignore[attr-defined]
    assert ctx.blobs.exists(hashlib.sha256(data).hexdigest())


def test_crash_between_blob_and_asset_is_finished_at_startup(api: TestClient, ctx: Context) -> None:
    data = jpeg(4000, seed=3)
    sha = hashlib.sha256(data).hexdigest()
    upload_id = _create(api, data).rsplit("/", 1)[1]
    # Simulate: all bytes received and hashed, blob stored, then the process died.
    ctx.parts.path(upload_id).write_bytes(data)
    with ctx.db() as db:
        row = db.get(Upload, upload_id)
        assert row is not None
        row.offset, row.computed_sha256 = len(data), sha
    ctx.blobs.put_file(sha, ctx.parts.path(upload_id))
    uploads.reconcile(ctx)
    state = api.head(f"{wire.UPLOADS_PATH}{upload_id}", headers=TUS)
    asset_id = int(state.headers["Camroll-Asset-Id"])
    assert api.get(f"/api/v1/assets/{asset_id}").json()["sha256"] == sha


def test_sweep_removes_bytes_and_keeps_a_tombstone(api: TestClient, ctx: Context) -> None:
    data = jpeg(1000, seed=4)
    url = _create(api, data)
    upload_id = url.rsplit("/", 1)[1]
    with ctx.db() as db:
        row = db.get(Upload, upload_id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
    assert uploads.sweep(ctx) == 1
    assert not ctx.parts.path(upload_id).exists()
    assert api.head(url, headers=TUS).status_code == 410
    assert_problem(_patch(api, url, 0, data), 410, "gone")  # type: ignore[arg-type]
    with ctx.db() as db:
        row = db.get(Upload, upload_id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(days=uploads.TOMBSTONE_DAYS + 1)
    uploads.sweep(ctx)
    assert api.head(url, headers=TUS).status_code == 404


def test_files_that_are_not_media_are_refused_unless_allowed(api: TestClient, ctx: Context) -> None:
    notes = b"shopping list\n" * 10
    r = api.post(wire.UPLOADS_PATH, headers={**TUS, **{"Content-Type": OCTET}, "Upload-Length": str(len(notes)),
                                             "Upload-Metadata": meta(notes)}, content=notes)
    body = assert_problem(r, 415, "unsupported_media_type")  # type: ignore[arg-type]
    assert "--accept-other-files" in str(body["fix"])
    assert ctx.blobs.exists(hashlib.sha256(notes).hexdigest()) is False
    assert api.get("/api/v1/assets").json()["items"] == []
    # A zero-length upload is valid tus but not a photo: refused the same way.
    r = api.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": "0", "Upload-Metadata": meta(b"")})
    assert_problem(r, 415, "unsupported_media_type")  # type: ignore[arg-type]


def test_other_files_and_zero_length_upload_when_allowed(api: TestClient, ctx: Context) -> None:
    object.__setattr__(ctx.settings, "accept_other_files", True)
    r = api.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": "0", "Upload-Metadata": meta(b"")})
    assert r.status_code == 201
    assert r.headers["Upload-Offset"] == "0"
    info = api.get(f"/api/v1/assets/{r.headers['Camroll-Asset-Id']}").json()
    assert info["sha256"] == hashlib.sha256(b"").hexdigest()
    assert info["mime"] is None


def test_openapi_lists_every_endpoint(api: TestClient) -> None:
    spec = api.get("/api/v1/openapi.json").json()
    want = {"/api/v1/server", "/api/v1/auth/login", "/api/v1/me", "/api/v1/devices", "/api/v1/devices/{device_id}",
            "/api/v1/assets", "/api/v1/assets/check", "/api/v1/assets/{asset_id}",
            "/api/v1/assets/{asset_id}/original", "/api/v1/uploads/", "/api/v1/uploads/{upload_id}"}
    assert want <= set(spec["paths"])
    assert "Problem" in spec["components"]["schemas"]


def test_orphan_part_files_are_removed_at_startup(ctx: Context) -> None:
    ctx.settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    orphan = ctx.settings.uploads_dir / "AAAAAAAAAAAAAAAAAAAAAAAA.part"
    orphan.write_bytes(b"lost")
    with TestClient(create_app(ctx.settings, ctx)):
        pass
    assert not orphan.exists()


class Crash(Exception):
    """The process dying at a chosen point (no handler on the way catches it)."""


def _create_with_body(api: TestClient, data: bytes, checksum: str | None = None) -> object:
    headers = {**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta(data), "Content-Type": OCTET}
    if checksum:
        headers["Upload-Checksum"] = checksum
    return api.post(wire.UPLOADS_PATH, content=data, headers=headers)


def _only_upload(ctx: Context) -> Upload:
    with ctx.db() as db:
        return db.query(Upload).one()


def test_crash_before_the_hash_is_recorded_leaves_a_clean_reupload(api: TestClient, ctx: Context,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data = jpeg(4000, seed=20)

    def crash(*_args: object, **_kwargs: object) -> bool:
        raise Crash

    # The body is fsynced; the process dies before the offset and hash are committed.
    monkeypatch.setattr(uploads.repo, "mark_hashed", crash)
    with pytest.raises(Crash):
        _create_with_body(api, data)
    monkeypatch.undo()
    row = _only_upload(ctx)
    assert row.offset == 0 and row.computed_sha256 is None
    uploads.reconcile(ctx)
    assert ctx.parts.size(row.id) == 0  # the unacknowledged bytes are cut off again
    assert list(ctx.blobs.list()) == []
    assert api.get("/api/v1/assets").json()["items"] == []
    # The client never got an answer and simply uploads again.
    r = _create_with_body(api, data)
    assert r.status_code == 201  # type: ignore[attr-defined]
    assert ctx.blobs.exists(hashlib.sha256(data).hexdigest())


def test_crash_after_the_blob_is_stored_is_finished_at_startup(api: TestClient, ctx: Context,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    data = jpeg(4000, seed=21)
    sha = hashlib.sha256(data).hexdigest()

    def crash(*_args: object, **_kwargs: object) -> int:
        raise Crash

    monkeypatch.setattr(uploads, "_finish", crash)
    with pytest.raises(Crash):
        _create_with_body(api, data)
    monkeypatch.undo()
    assert ctx.blobs.exists(sha)
    row = _only_upload(ctx)
    assert (row.offset, row.computed_sha256, row.asset_id) == (len(data), sha, None)
    uploads.reconcile(ctx)
    r = api.head(f"{wire.UPLOADS_PATH}{row.id}", headers=TUS)
    assert api.get(f"/api/v1/assets/{r.headers['Camroll-Asset-Id']}").json()["sha256"] == sha


def test_crash_between_hash_and_blob_store_is_finished_at_startup(api: TestClient, ctx: Context,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data = jpeg(4000, seed=22)
    sha = hashlib.sha256(data).hexdigest()

    def crash(*_args: object, **_kwargs: object) -> None:
        raise Crash

    monkeypatch.setattr(ctx.blobs, "put_file", crash)
    with pytest.raises(Crash):
        _create_with_body(api, data)
    monkeypatch.undo()
    assert not ctx.blobs.exists(sha)
    assert api.get("/api/v1/assets").json()["items"] == []  # no asset without its blob
    row = _only_upload(ctx)
    assert (row.offset, row.computed_sha256) == (len(data), sha)
    uploads.reconcile(ctx)
    assert ctx.blobs.exists(sha)
    r = api.head(f"{wire.UPLOADS_PATH}{row.id}", headers=TUS)
    assert api.get(f"/api/v1/assets/{r.headers['Camroll-Asset-Id']}").json()["sha256"] == sha
