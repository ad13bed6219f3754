from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import httpx
import pytest

from camroll import wire
from camroll.agent.api import make_client
from camroll.agent.backup.tus import FileRange, SourceChanged, TusClient, UploadGone


def test_file_range_checksum_and_pieces(tmp_path: Path) -> None:
    p = tmp_path / "f"
    data = os.urandom(3 * 1024 * 1024 + 5)
    p.write_bytes(data)
    fd = os.open(p, os.O_RDONLY)
    try:
        r = FileRange(fd, 100, 2 * 1024 * 1024 + 1)
        want = base64.b64encode(hashlib.sha256(data[100:100 + r.length]).digest()).decode()
        assert r.checksum_header() == f"sha256 {want}"
        pieces = list(r)
        assert b"".join(pieces) == data[100:100 + r.length]
        assert max(len(x) for x in pieces) <= 1024 * 1024
        with pytest.raises(SourceChanged):
            FileRange(fd, len(data) - 10, 20).checksum_header()
    finally:
        os.close(fd)


def test_patch_sends_plain_body_with_length_and_checksum(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"x" * 5000)
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        req.read()
        seen.append(req)
        if req.method == "HEAD":
            return httpx.Response(404)
        return httpx.Response(204, headers={"Upload-Offset": "5000", "Camroll-Asset-Id": "9"})

    client = make_client("http://s", "tok", transport=httpx.MockTransport(handler))
    tus = TusClient(client)
    fd = os.open(p, os.O_RDONLY)
    try:
        res = tus.patch("/api/v1/uploads/abc", 0, FileRange(fd, 0, 5000))
    finally:
        os.close(fd)
    assert (res.offset, res.asset_id) == (5000, 9)
    req = seen[0]
    assert req.headers["Content-Length"] == "5000" and "Transfer-Encoding" not in req.headers
    assert req.headers["Tus-Resumable"] == wire.TUS_VERSION
    assert req.headers["Upload-Checksum"].startswith("sha256 ")
    assert req.headers[wire.CLIENT_VERSION_HEADER]
    assert req.headers["Authorization"] == "Bearer tok"
    assert req.headers["User-Agent"].startswith("camroll-agent/")
    assert req.content == b"x" * 5000
    with pytest.raises(UploadGone):
        tus.head("/api/v1/uploads/abc")


def test_location_keeps_only_the_path() -> None:
    tus = TusClient(make_client("http://proxy:1"))
    assert tus._url("http://127.0.0.1:8420/api/v1/uploads/xyz") == "/api/v1/uploads/xyz"
    assert tus._url("/api/v1/uploads/xyz?a=1") == "/api/v1/uploads/xyz?a=1"
    assert tus._url("xyz") == "/api/v1/uploads/xyz"
