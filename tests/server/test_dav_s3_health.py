"""The WebDAV door on the S3 part store (chunks become multipart parts; the last chunk's rest becomes the
last part at the MOVE), and a WebDAV device's health: its uploads drive the same silence alert as an
agent's heartbeats."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from services.s3 import S3Service
from support.server import ServerProcess

from camroll.server import migrate
from camroll.server.context import Context
from camroll.server.dav import health as dav_health
from camroll.server.db import make_engine, make_sessionmaker
from camroll.server.models import Device, Incident
from camroll.server.services import accounts, stalls
from camroll.server.services.partfiles import PartFiles
from camroll.server.settings import Settings
from camroll.server.storage.memory import MemoryBlobStore

from .conftest import make_user
from .test_dav import assets_by_sha, dav_url, original_sha
from .test_dav_chunks import MB, video

T0 = datetime(2026, 11, 21, 14, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def s3_srv(seaweedfs_s3: S3Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(data=tmp_path_factory.mktemp("dav-s3") / "server-data", env=seaweedfs_s3.env(),
                        extra_args=("--accept-other-files",))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_put_and_chunked_upload_on_s3_parts(s3_srv: ServerProcess) -> None:
    u = make_user(s3_srv, device="phone")
    auth = (u.name, u.client.headers["Authorization"].removeprefix("Bearer "))
    plain = video(10 * MB, seed=11)
    assert httpx.put(dav_url(u) + "plain.mp4", content=plain, auth=auth, timeout=60).status_code == 201
    data = video(12 * MB + 123, seed=12)
    up = f"{u.server.url}/dav/uploads/{u.name}/v2"
    assert httpx.request("MKCOL", up, auth=auth).status_code == 201
    # 5 MiB chunks against 8 MiB parts: every chunk but one ends inside a part.
    for i, start in enumerate(range(0, len(data), 5 * MB), start=1):
        r = httpx.put(f"{up}/{i}", content=data[start:start + 5 * MB], auth=auth, timeout=60)
        assert r.status_code == 201, r.text
    r = httpx.request("MOVE", f"{up}/.file", auth=auth, headers={"Destination": dav_url(u) + "v.mp4"}, timeout=60)
    assert r.status_code in (201, 204), r.text
    have = assets_by_sha(u)
    for blob in (plain, data):
        sha = hashlib.sha256(blob).hexdigest()
        assert sha in have and original_sha(u, have[sha]) == sha
    u.close()


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    settings = Settings.for_data_dir(tmp_path, stall_seconds=3600, silence_seconds=24 * 3600)
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    return Context(settings, engine, make_sessionmaker(engine), MemoryBlobStore(), PartFiles(settings.uploads_dir))


def test_a_webdav_device_that_stops_uploading_is_silent(ctx: Context) -> None:
    user = accounts.add_user(ctx, "phone-owner", "pw")
    with ctx.db() as db:
        d = Device(user_id=user.id, name="PhotoSync", platform="webdav", token_hash="h")
        db.add(d)
        db.flush()
        device_id = d.id
    dav_health.uploaded(ctx, device_id, now=T0)
    assert stalls.check(ctx, T0 + timedelta(hours=23)) == []
    messages = stalls.check(ctx, T0 + timedelta(days=2))
    assert [m.body for m in messages] == [
        "camroll on 'PhotoSync' has not been heard from since 21 Nov 14:02 UTC (2 days). Fix: open camroll on "
        "that device or check that `camroll agent` is running."]
    with ctx.db() as db:
        assert [i.key for i in db.query(Incident).all()] == [f"device:{device_id}:silent"]
    dav_health.uploaded(ctx, device_id, now=T0 + timedelta(days=2, minutes=1))
    assert [m.body for m in stalls.check(ctx, T0 + timedelta(days=2, minutes=2))] == [
        "Resolved: camroll on 'PhotoSync' is reporting again."]
