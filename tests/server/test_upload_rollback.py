"""A failed upload creation must leave the uploads it would have superseded as they were.  The failure
(a full disk creating the new part file) is injected in-process: it is hard to reach over a socket."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from camroll import wire
from camroll.server.app import create_app
from camroll.server.context import Context
from camroll.server.db import make_engine, make_sessionmaker
from camroll.server.services import accounts
from camroll.server.services.partfiles import PartFiles
from camroll.server.settings import Settings
from camroll.server.storage.memory import MemoryBlobStore

from .conftest import OCTET, TUS, jpeg, meta


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    settings = Settings.for_data_dir(tmp_path / "data")
    engine = make_engine(settings.database_url)
    return Context(settings, engine, make_sessionmaker(engine), MemoryBlobStore(), PartFiles(settings.uploads_dir))


@pytest.fixture
def device(ctx: Context) -> Iterator[TestClient]:
    """A client holding a device token (superseding applies to a device's own uploads)."""
    with TestClient(create_app(ctx.settings, ctx), raise_server_exceptions=False) as client:
        accounts.add_user(ctx, "ann", "pw")
        session = client.post("/api/v1/auth/login", json={"username": "ann", "password": "pw"}).json()["token"]
        r = client.post("/api/v1/devices", json={"name": "phone", "platform": "test"},
                        headers={"Authorization": f"Bearer {session}"})
        client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield client


def _create(client: TestClient, data: bytes) -> object:
    return client.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": str(len(data)),
                                                   "Upload-Metadata": meta(data, path="/DCIM/a.jpg")})


def test_a_creation_that_fails_leaves_the_upload_it_would_supersede_whole(
        device: TestClient, ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    data = jpeg(4000, seed=801)
    r = _create(device, data)
    assert r.status_code == 201  # type: ignore[attr-defined]
    old = str(r.headers["Location"])  # type: ignore[attr-defined]
    first = device.patch(old, content=data[:1000], headers={**TUS, "Content-Type": OCTET, "Upload-Offset": "0"})
    assert first.status_code == 204

    def full_disk(upload_id: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ctx.parts, "create", full_disk)
    assert _create(device, data).status_code == 507  # type: ignore[attr-defined]
    monkeypatch.undo()
    # The transaction that would have expired the old upload rolled back: it is active, with its bytes.
    h = device.head(old, headers=TUS)
    assert h.status_code == 200, h.text
    assert h.headers["Upload-Offset"] == "1000"
    done = device.patch(old, content=data[1000:], headers={**TUS, "Content-Type": OCTET, "Upload-Offset": "1000"})
    assert done.status_code == 204, done.text
    assert wire.ASSET_ID_HEADER in done.headers


def test_a_creation_that_succeeds_removes_the_bytes_of_the_upload_it_superseded(device: TestClient,
                                                                               ctx: Context) -> None:
    data = jpeg(4000, seed=802)
    old = str(_create(device, data).headers["Location"])  # type: ignore[attr-defined]
    assert _create(device, data).status_code == 201  # type: ignore[attr-defined]
    assert device.head(old, headers=TUS).status_code == 410
    assert not ctx.parts.path(old.rsplit("/", 1)[1]).exists()


def test_a_creation_whose_part_file_vanished_before_its_body_is_gone(
        device: TestClient, ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    # As when a newer upload of the same file superseded it between its creation and its body's first
    # write: the body finds no part file.
    monkeypatch.setattr(ctx.parts, "create", lambda upload_id: None)
    data = jpeg(4000, seed=803)
    r = device.post(wire.UPLOADS_PATH, content=data,
                    headers={**TUS, "Content-Type": OCTET, "Upload-Length": str(len(data)),
                             "Upload-Metadata": meta(data)})
    assert r.status_code == 410, r.text
    assert r.json()["code"] == "gone"
