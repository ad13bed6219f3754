"""Start-up recovery that survives any one bad row, the sweep for blobs nothing points to, quota for
uploads whose bytes are stored but not yet an asset, and a completing commit that is durable.

Each test runs a real ``camroll serve`` on a data dir whose database a test edits in between, the way
a crash or an older server would have left it."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from support.server import ServerProcess

from camroll import wire
from camroll.server.context import Context, build
from camroll.server.db import make_engine
from camroll.server.models import Upload, User, utcnow
from camroll.server.settings import Settings

from .conftest import TUS, assert_problem, create, jpeg, make_user, meta, patch, upload
from .conftest import User as ApiUser


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[ServerProcess]:
    s = ServerProcess(data=tmp_path / "server-data")
    s.start()
    try:
        yield s
    finally:
        s.stop()


def _ctx(srv: ServerProcess) -> Context:
    return build(Settings.for_data_dir(srv.data))


def _id(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _all_received(ctx: Context, upload_id: str, data: bytes, **values: object) -> None:
    """As if the last byte was written and fsynced and the server then died before answering."""
    ctx.parts.path(upload_id).write_bytes(data)
    with ctx.db() as db:
        db.execute(update(Upload).where(Upload.id == upload_id).values(offset=len(data), **values))


def test_startup_survives_a_bad_upload_row_and_finishes_the_others(srv: ServerProcess) -> None:
    u = make_user(srv)
    bad, huge_mtime, good = jpeg(3000, seed=1), jpeg(3000, seed=2), jpeg(3000, seed=3)
    urls = [create(u.client, d) for d in (bad, huge_mtime, good)]
    srv.stop()
    ctx = _ctx(srv)
    # Metadata that is not an object (hand-edited, or from a bug): finishing it raises TypeError.
    _all_received(ctx, _id(urls[0]), bad, meta=[1, 2])
    # An mtime past 64 bits, as servers before the metadata bounds accepted it.
    sha = hashlib.sha256(huge_mtime).hexdigest()
    _all_received(ctx, _id(urls[1]), huge_mtime, meta={"filename": "b.jpg", "sha256": sha, "mtime_ns": "9" * 30})
    _all_received(ctx, _id(urls[2]), good)
    ctx.engine.dispose()

    srv.start()  # raised "camroll serve exited" before: reconcile() let the TypeError through
    assert u.client.head(urls[0], headers=TUS).status_code == 410
    for url in urls[1:]:
        r = u.client.head(url, headers=TUS)
        assert r.status_code == 200 and r.headers.get(wire.ASSET_ID_HEADER), r.headers
        assert u.session.get(f"/api/v1/assets/{r.headers[wire.ASSET_ID_HEADER]}").status_code == 200
    log = (srv.data.parent / f"{srv.data.name}-server.log").read_text()
    assert f"upload {_id(urls[0])} could not be reconciled" in log


def _blob_path(srv: ServerProcess, sha: str) -> Path:
    return srv.data / "blobs" / sha[:2] / sha[2:4] / sha


def _put_blob(srv: ServerProcess, data: bytes, age_seconds: float) -> str:
    sha = hashlib.sha256(data).hexdigest()
    path = _blob_path(srv, sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    when = time.time() - age_seconds
    os.utime(path, (when, when))
    return sha


def test_startup_sweep_removes_only_old_blobs_nothing_points_to(srv: ServerProcess) -> None:
    u = make_user(srv)
    kept_asset = jpeg(2000, seed=10)
    upload(u.client, kept_asset)
    in_flight = jpeg(2000, seed=11)
    url = create(u.client, in_flight)
    srv.stop()
    ctx = _ctx(srv)
    two_hours = 7200.0
    orphan = _put_blob(srv, jpeg(2500, seed=12), two_hours)
    young = _put_blob(srv, jpeg(2500, seed=13), 60)
    # Hashed and in the store, asset row not yet committed: the upload row points to the blob.
    hashed = _put_blob(srv, in_flight, two_hours)
    with ctx.db() as db:
        db.execute(update(Upload).where(Upload.id == _id(url)).values(computed_sha256=hashed, offset=len(in_flight)))
    ctx.engine.dispose()
    asset_sha = hashlib.sha256(kept_asset).hexdigest()
    old = time.time() - two_hours
    os.utime(_blob_path(srv, asset_sha), (old, old))

    srv.start()
    assert not _blob_path(srv, orphan).exists()
    assert _blob_path(srv, young).exists(), "a blob younger than the grace age is left alone"
    assert _blob_path(srv, hashed).exists(), "a blob an upload is finishing is left alone"
    assert _blob_path(srv, asset_sha).exists()
    # The in-flight one still finishes into an asset (reconcile ran before the sweep, and again works).
    r = u.client.head(url, headers=TUS)
    assert r.status_code == 200


def test_orphan_sweep_runs_in_process_with_a_clock(srv: ServerProcess) -> None:
    from camroll.server.services import orphans

    u = make_user(srv)
    kept = jpeg(1500, seed=21)
    upload(u.client, kept)
    srv.stop()
    ctx = _ctx(srv)
    shas = [_put_blob(srv, jpeg(1000, seed=seed), 0) for seed in (20, 22, 23)]
    assert orphans.sweep(ctx) == 0
    # Looked up two at a time: the blob an asset needs sits in a batch with orphans and is kept.
    assert orphans.sweep(ctx, clock=lambda: time.time() + orphans.GRACE_SECONDS + 1, batch=2) == 3
    assert not any(_blob_path(srv, sha).exists() for sha in shas)
    assert _blob_path(srv, hashlib.sha256(kept).hexdigest()).exists()
    ctx.engine.dispose()
    srv.start()


def _set(ctx: Context, upload_id: str, **values: object) -> None:
    with ctx.db() as db:
        db.execute(update(Upload).where(Upload.id == upload_id).values(**values))


def test_hashed_but_unfinished_upload_counts_against_the_quota_after_its_expiry(srv: ServerProcess) -> None:
    u = make_user(srv, quota="10KB")
    first = jpeg(6000, seed=30)
    url = create(u.client, first)
    ctx = _ctx(srv)
    # Hashed (its blob may be stored), never finished, past its expiry but not yet swept.
    _set(ctx, _id(url), computed_sha256=hashlib.sha256(first).hexdigest(), offset=len(first),
         expires_at=utcnow() - timedelta(seconds=5))
    second = jpeg(5000, seed=31)
    r = u.client.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": str(len(second)),
                                                  "Upload-Metadata": meta(second)})
    assert_problem(r, 413, "quota_exceeded")
    ctx.engine.dispose()


def test_uploads_in_flight_count_at_completion(srv: ServerProcess) -> None:
    u: ApiUser = make_user(srv, quota="10KB")
    big, small = jpeg(6000, seed=40), jpeg(3000, seed=41)
    create(u.client, big)
    url = create(u.client, small)
    ctx = _ctx(srv)
    with ctx.db() as db:
        user = db.query(User).filter(User.username == u.name).one()
        user.quota_bytes = 8000  # the admin lowered it: both no longer fit
    r = patch(u.client, url, 0, small)
    body = assert_problem(r, 413, "quota_exceeded")
    assert "reserved by unfinished uploads" in str(body["detail"])
    ctx.engine.dispose()


def test_sqlite_commits_are_durable_before_the_answer(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_openapi_describes_every_error_as_a_problem(srv: ServerProcess) -> None:
    doc = httpx.get(f"{srv.url}{wire.API_PREFIX}/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["Problem"]["required"]
    options = doc["paths"][f"{wire.UPLOADS_PATH}{{upload_id}}"]["options"]
    assert [p["name"] for p in options["parameters"] if p["in"] == "path"] == ["upload_id"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            assert "default" in responses and "422" in responses, (method, path)
            for status, response in responses.items():
                if status == "default" or int(status) >= 400:
                    assert list(response["content"]) == [wire.PROBLEM_CONTENT_TYPE], (method, path, status)
