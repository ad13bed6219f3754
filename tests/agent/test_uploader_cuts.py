"""The uploader on a link that cuts connections: PATCH bodies go without a chunk checksum (so the
server keeps what arrived before a cut) and resume from the server's offset; after the server finds
damage they carry their chunk's checksum; after a cut, a file over 1 MiB is created before its body."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
from support.media import mp4_bytes, write

from camroll.agent.api import make_client
from camroll.agent.backup.tus import TusClient
from camroll.agent.backup.uploader import Uploader
from camroll.agent.state.db import StateDB

from .fakeserver import FakeServer
from .test_engine import _job

MIB = 1024 * 1024


def _run(tmp_path: Path, srv: FakeServer, data: bytes, chunk: int) -> list[tuple[str, str | None, bool]]:
    """Upload ``data`` through ``srv``; returns each request's (method, Upload-Offset, has a checksum)."""
    seen: list[tuple[str, str | None, bool]] = []

    def handle(req: httpx.Request) -> httpx.Response:
        seen.append((req.method, req.headers.get("Upload-Offset"), "Upload-Checksum" in req.headers))
        return srv.handle(req)

    p = write(tmp_path / "v.mp4", data)
    client = make_client("http://camroll.test", "t", transport=httpx.MockTransport(handle))
    with StateDB(tmp_path / "state.db") as db:
        up = Uploader(TusClient(client), db, chunk_size=chunk, base_url="http://camroll.test",
                      check_present=lambda job: None, sleep=lambda s: None,
                      may_send_body=lambda size: True)  # as when the server's room is known to fit it
        done = up.upload(_job(p, hashlib.sha256(data).hexdigest()))
    assert srv.blobs[done.asset_id] == data
    return seen


def test_a_cut_patch_resumes_from_the_servers_offset_without_checksums(tmp_path: Path) -> None:
    srv = FakeServer()
    srv.drop_after_bytes = MIB // 2  # the first PATCH: half arrives, then the connection breaks
    seen = _run(tmp_path, srv, mp4_bytes(3 * MIB, seed=21), MIB)
    patches = [(off, ck) for m, off, ck in seen if m == "PATCH"]
    assert patches == [("0", False), (str(MIB // 2), False), (str(MIB), False), (str(2 * MIB), False)]
    assert srv.bytes_received == 3 * MIB  # nothing the server had went again
    assert ("HEAD", None, False) in seen


def test_after_a_refused_chunk_every_chunk_is_checksummed(tmp_path: Path) -> None:
    srv = FakeServer()
    srv.corrupt_next_patch = True
    seen = _run(tmp_path, srv, mp4_bytes(3 * MIB, seed=22), MIB)
    assert [ck for m, _, ck in seen if m == "PATCH"] == [False, True, True, True]


def test_after_a_cut_creation_a_larger_file_is_created_before_its_body(tmp_path: Path) -> None:
    srv = FakeServer()
    srv.drop_after_bytes = MIB  # the creation-with-upload request is cut: its URL never arrives
    seen = _run(tmp_path, srv, mp4_bytes(2 * MIB, seed=23), 4 * MIB)
    assert [m for m, _, _ in seen] == ["POST", "POST", "PATCH"]
    assert seen[2] == ("PATCH", "0", False)
