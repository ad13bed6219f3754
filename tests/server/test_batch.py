"""The batch path for small files (POST /uploads/batch) against a real ``camroll serve``: each file
verified and answered on its own, bounds refused before the body, quota inside a batch, a body cut
short keeping what arrived whole, and kill -9 during group commits leaving nothing half-committed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import blobs as stored_blobs
from support.server import ServerProcess, library_rows

from camroll import wire
from camroll.server.context import build
from camroll.server.settings import Settings

from .conftest import User, assert_problem, jpeg, make_user

CT = {"Content-Type": wire.BATCH_CONTENT_TYPE}


def body(files: list[bytes], *, declared: list[bytes] | None = None, paths: list[str] | None = None,
         extra: dict[str, object] | None = None) -> bytes:
    """A batch body; ``declared`` are the bytes whose hashes and sizes the manifest states (default: ``files``)."""
    declared = declared or files
    entries = [{"size": len(d), "sha256": hashlib.sha256(d).hexdigest(),
                "path": (paths[i] if paths else f"/photos/b{i}.jpg"), **(extra or {})} for i, d in enumerate(declared)]
    manifest = json.dumps({"files": entries}).encode()
    return wire.BATCH_MAGIC + len(manifest).to_bytes(4, "big") + manifest + b"".join(files)


def post(u: User, data: bytes, **headers: str) -> httpx.Response:
    return u.client.post(wire.BATCH_PATH, content=data, headers={**CT, **headers})


def check(u: User, files: list[bytes]) -> dict[str, int]:
    r = u.client.post(f"{wire.API_PREFIX}/assets/check",
                      json={"items": [{"sha256": hashlib.sha256(f).hexdigest()} for f in files]})
    assert r.status_code == 200, r.text
    return dict(r.json()["present"])


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(data=tmp_path_factory.mktemp("batch") / "server-data")
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_each_file_has_its_own_result_and_one_corrupted_file_fails_alone(srv: ServerProcess) -> None:
    u = make_user(srv)
    files = [jpeg(3000 + i, seed=100 + i) for i in range(6)]
    sent = list(files)
    sent[2] = sent[2][:-1] + bytes([sent[2][-1] ^ 0xFF])  # one flipped byte on the way
    sent[4] = b"not a photo".ljust(len(files[4]), b".")
    r = post(u, body(sent, declared=[*files[:4], sent[4], files[5]]))
    assert r.status_code == 200, r.text
    res = wire.BatchResponse.model_validate(r.json()).results
    assert [x.status for x in res] == ["created", "created", "refused", "created", "refused", "created"]
    assert res[2].code == "checksum_mismatch" and res[2].detail and res[2].fix
    assert res[4].code == "unsupported_media_type"
    present = check(u, files)
    assert set(present) == {hashlib.sha256(f).hexdigest() for i, f in enumerate(files) if i not in (2, 4)}
    # Only the bad one again: created; a file sent again is a duplicate of the same asset.
    r = post(u, body([files[2], files[0]]))
    res2 = wire.BatchResponse.model_validate(r.json()).results
    assert res2[0].status == "created"
    assert res2[1].status == "duplicate" and res2[1].asset_id == res[0].asset_id
    # Every stored blob holds exactly the verified bytes.
    ctx = build(Settings.for_data_dir(srv.data))
    for f in files[:4]:
        with ctx.blobs.open(hashlib.sha256(f).hexdigest()) as got:
            assert got.read() == f


def test_the_same_bytes_twice_in_a_batch_make_one_asset_with_two_paths(srv: ServerProcess) -> None:
    u = make_user(srv)
    f = jpeg(2000, seed=7)
    r = post(u, body([f, f], paths=["/a/x.jpg", "/b/x.jpg"]))
    res = wire.BatchResponse.model_validate(r.json()).results
    assert res[0].asset_id == res[1].asset_id and res[0].status == "created" and res[1].status == "duplicate"
    detail = u.session.get(f"{wire.API_PREFIX}/assets/{res[0].asset_id}").json()
    assert sorted(x["path"] for x in detail["files"]) == ["/a/x.jpg", "/b/x.jpg"]


def test_quota_inside_a_batch_refuses_only_what_does_not_fit(srv: ServerProcess) -> None:
    u = make_user(srv, quota="50KB")
    files = [jpeg(20_000, seed=200 + i) for i in range(4)]
    r = post(u, body(files))
    res = wire.BatchResponse.model_validate(r.json()).results
    assert [x.status for x in res] == ["created", "created", "refused", "refused"]
    assert {x.code for x in res[2:]} == {"quota_exceeded"}
    assert "quota" in (res[2].fix or "")
    assert len(check(u, files)) == 2
    used = u.client.get(f"{wire.API_PREFIX}/me").json()
    assert used["used_bytes"] == 40_000


@pytest.mark.parametrize(("case", "status", "code"), [
    ("magic", 400, "bad_request"),
    ("too_many", 400, "bad_request"),
    ("too_big_file", 400, "bad_request"),
    ("bad_sha", 400, "bad_request"),
    ("length", 400, "bad_request"),
    ("content_type", 415, "unsupported_media_type"),
    ("manifest_size", 413, "request_too_large"),
    ("no_token", 401, "unauthorized"),
])
def test_bounds_are_refused_with_problems_before_the_body(srv: ServerProcess, case: str, status: int,
                                                          code: str) -> None:
    u = make_user(srv)
    f = jpeg(1000, seed=300)
    data = body([f])
    headers: dict[str, str] = {}
    if case == "magic":
        data = b"XXXX" + data[4:]
    elif case == "too_many":
        data = body([f] * (wire.MAX_BATCH_FILES + 1))
    elif case == "too_big_file":
        big = jpeg(wire.MAX_BATCH_FILE_SIZE + 1, seed=301)
        data = body([big])
    elif case == "bad_sha":
        manifest = json.dumps({"files": [{"size": len(f), "sha256": "../../etc/passwd"}]}).encode()
        data = wire.BATCH_MAGIC + len(manifest).to_bytes(4, "big") + manifest + f
    elif case == "length":
        data = data + b"extra"
    elif case == "content_type":
        headers["Content-Type"] = "application/octet-stream"
    elif case == "manifest_size":
        data = wire.BATCH_MAGIC + (wire.MAX_BATCH_MANIFEST + 1).to_bytes(4, "big")
    if case == "no_token":
        r = httpx.post(srv.url + wire.BATCH_PATH, content=data, headers=CT)
    else:
        r = u.client.post(wire.BATCH_PATH, content=data, headers={**CT, **headers})
    problem = assert_problem(r, status, code)
    assert problem.get("fix")
    assert not check(u, [f])


def _raw_post(srv: ServerProcess, token: str, data: bytes, send: int) -> None:
    """POST ``data`` as a batch but send only its first ``send`` bytes, then close the connection."""
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall((f"POST {wire.BATCH_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                   f"Content-Type: {wire.BATCH_CONTENT_TYPE}\r\nContent-Length: {len(data)}\r\n\r\n").encode())
        s.sendall(data[:send])
        time.sleep(0.3)  # let the server read it before the close reaches it


def _wait_present(u: User, files: list[bytes], n: int) -> dict[str, int]:
    deadline = time.monotonic() + 10
    while True:
        present = check(u, files)
        if len(present) >= n or time.monotonic() > deadline:
            return present
        time.sleep(0.05)


def test_a_batch_cut_mid_body_keeps_every_file_that_arrived_whole(srv: ServerProcess) -> None:
    u = make_user(srv)
    files = [jpeg(5000, seed=400 + i) for i in range(5)]
    data = body(files)
    head = len(data) - sum(len(f) for f in files)
    token = u.client.headers["Authorization"].split()[1]
    _raw_post(srv, token, data, head + 3 * 5000 + 1234)  # three whole files and part of the fourth
    present = _wait_present(u, files, 3)
    assert set(present) == {hashlib.sha256(f).hexdigest() for f in files[:3]}
    ctx = build(Settings.for_data_dir(srv.data))
    assert not list((ctx.settings.data_dir / "uploads").glob("batch-*"))  # nothing staged is left behind


def _audit(data: Path) -> None:
    """Nothing half-committed: every asset's blob is stored with its bytes, every blob row counted once."""
    ctx = build(Settings.for_data_dir(data))
    assets = library_rows(data, "SELECT sha256, size FROM assets")
    blobs = library_rows(data, "SELECT sha256, size FROM blobs")
    assert len({b[0] for b in blobs}) == len(blobs)
    rows = {b[0]: b[1] for b in blobs}
    for sha, size in assets:
        assert rows.get(sha) == size, f"asset {sha} has no blob row"
        with ctx.blobs.open(sha) as got:
            assert hashlib.sha256(got.read()).hexdigest() == sha
    users = library_rows(data, "SELECT id, (SELECT COALESCE(SUM(size), 0) FROM assets a WHERE a.user_id = u.id) "
                          "FROM users u")
    assert all(used >= 0 for _, used in users)
    # A pack a kill cut off before its index rows holds no blob anyone can see, and the store's own
    # sweep takes it (no batch is running now, so every pack without rows is such a leftover).
    store = stored_blobs.store(data)
    store.sweep_leftovers(time.time() + 1)
    assert {p.name for p in (data / "blobs" / "packs").glob("*.pack")} == store.index.packs()
    store.index.close()
    for sha, _size in assets:
        assert stored_blobs.stored(data, sha) is not None, f"the sweep took asset {sha}'s blob"


def test_kill_9_during_group_commits_leaves_nothing_half_committed(tmp_path: Path) -> None:
    srv = ServerProcess(data=tmp_path / "server-data")
    srv.start()
    rng = random.Random(20261202)
    try:
        u = make_user(srv)
        files = [jpeg(rng.randrange(2000, 30_000), seed=500 + i) for i in range(600)]
        for round_ in range(3):
            data = body(files)

            def send(payload: bytes = data) -> None:
                with contextlib.suppress(httpx.HTTPError):
                    post(u, payload)  # killed under it: no answer

            t = threading.Thread(target=send)
            t.start()
            time.sleep(rng.uniform(0.05, 0.6))
            assert srv.proc is not None
            os.kill(srv.proc.pid, signal.SIGKILL)
            srv.proc.wait()
            t.join(30)
            srv.start()
            _audit(srv.data)
            assert not list((srv.data / "uploads").glob("batch-*")), f"round {round_}: staging left behind"
        # After the crashes the batch completes and every file counts once.
        r = post(u, body(files))
        res = wire.BatchResponse.model_validate(r.json()).results
        assert {x.status for x in res} <= {"created", "duplicate"}
        assert len(check(u, files)) == len(files)
        _audit(srv.data)
    finally:
        srv.stop()
