"""Interop: tuspy, a third-party tus client, uploads to camroll."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tusclient import client as tus_client

from camroll import wire

from .conftest import User, jpeg


@pytest.mark.parametrize("upload_checksum", [False, True])
def test_tuspy_upload_becomes_asset(user: User, tmp_path: Path, upload_checksum: bool) -> None:
    data = jpeg(700_000, seed=400 + upload_checksum)
    sha = hashlib.sha256(data).hexdigest()
    src = tmp_path / "clip.jpg"
    src.write_bytes(data)
    tus = tus_client.TusClient(user.server.url + wire.UPLOADS_PATH,
                               headers={"Authorization": str(user.client.headers["Authorization"])})
    uploader = tus.uploader(str(src), chunk_size=256 * 1024, upload_checksum=upload_checksum,
                            metadata={"filename": "clip.jpg", "sha256": sha, "path": str(src)})
    uploader.upload()
    assert uploader.offset == len(data)
    got = user.client.post("/api/v1/assets/check", json={"items": [{"sha256": sha}]}).json()
    asset = user.session.get(f"/api/v1/assets/{got['present'][sha]}").json()
    assert asset["sha256"] == sha
    assert asset["filename"] == "clip.jpg"
    assert asset["files"][0]["path"] == str(src)
    assert user.session.get(f"/api/v1/assets/{asset['id']}/original").content == data
