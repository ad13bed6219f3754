"""tus 1.0 compliance against a real ``camroll serve`` on loopback."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from support.clock import FakeClock
from support.server import ServerProcess
from support.wait import wait_until

from camroll import wire
from camroll.server import sweeper
from camroll.server.context import Context
from camroll.server.services.accounts import add_user

from .conftest import (
    OCTET,
    TUS,
    User,
    assert_problem,
    b64digest,
    create,
    jpeg,
    make_user,
    meta,
    patch,
    upload,
)


def blob_files(data: Path) -> list[Path]:
    root = data / "blobs"
    return [p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts] if root.exists() else []


def part_files(data: Path) -> list[Path]:
    return list((data / "uploads").glob("*.part"))


def test_options_advertises_the_protocol(user: User) -> None:
    r = user.client.options(wire.UPLOADS_PATH)
    assert r.status_code == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    assert set(r.headers["Tus-Extension"].split(",")) == set(wire.TUS_EXTENSIONS)
    assert int(r.headers["Tus-Max-Size"]) == 100 * 10**9
    assert set(r.headers["Tus-Checksum-Algorithm"].split(",")) == {"sha1", "sha256"}
    assert r.headers["Tus-Resumable"] == "1.0.0"


def test_chunked_upload_becomes_an_asset(user: User) -> None:
    data = jpeg(300_000, seed=1)
    url = create(user.client, data, path="/DCIM/a.jpg")
    assert url.startswith(wire.UPLOADS_PATH)
    h = user.client.head(url, headers=TUS)
    assert h.status_code == 200
    assert h.headers["Upload-Offset"] == "0"
    assert h.headers["Upload-Length"] == str(len(data))
    assert h.headers["Cache-Control"] == "no-store"
    assert h.headers["Tus-Resumable"] == "1.0.0"
    assert "GMT" in h.headers["Upload-Expires"]
    assert wire.decode_upload_metadata(h.headers["Upload-Metadata"])["path"] == "/DCIM/a.jpg"

    r = patch(user.client, url, 0, data[:100_000])
    assert r.status_code == 204
    assert r.headers["Upload-Offset"] == "100000"
    assert "Upload-Expires" in r.headers
    assert "Camroll-Asset-Id" not in r.headers
    assert user.client.head(url, headers=TUS).headers["Upload-Offset"] == "100000"

    r = patch(user.client, url, 100_000, data[100_000:])
    assert r.status_code == 204, r.text
    asset_id = int(r.headers["Camroll-Asset-Id"])

    info = user.session.get(f"/api/v1/assets/{asset_id}").json()
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["size"] == len(data)
    assert info["mime"] == "image/jpeg"
    assert info["filename"] == "a.jpg"
    assert [f["path"] for f in info["files"]] == ["/DCIM/a.jpg"]
    assert info["files"][0]["device_name"] == "test-device"
    assert user.session.get(f"/api/v1/assets/{asset_id}/original").content == data
    # A client whose last response was lost learns the outcome from HEAD.
    h = user.client.head(url, headers=TUS)
    assert h.headers["Upload-Offset"] == str(len(data))
    assert h.headers["Camroll-Asset-Id"] == str(asset_id)


def test_creation_with_upload(user: User) -> None:
    data = jpeg(5000, seed=2)
    r = user.client.post(wire.UPLOADS_PATH, content=data, headers={
        **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta(data), "Content-Type": OCTET,
        "Upload-Checksum": b64digest("sha256", data)})
    assert r.status_code == 201, r.text
    assert r.headers["Upload-Offset"] == str(len(data))
    assert "Location" in r.headers and "Upload-Expires" in r.headers
    asset_id = int(r.headers["Camroll-Asset-Id"])
    assert user.session.get(f"/api/v1/assets/{asset_id}").json()["size"] == len(data)


def test_creation_with_partial_body_then_patch(user: User) -> None:
    data = jpeg(5000, seed=3)
    r = user.client.post(wire.UPLOADS_PATH, content=data[:2000], headers={
        **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta(data), "Content-Type": OCTET})
    assert r.status_code == 201
    assert r.headers["Upload-Offset"] == "2000"
    r = patch(user.client, r.headers["Location"], 2000, data[2000:])
    assert r.status_code == 204 and "Camroll-Asset-Id" in r.headers


def test_wrong_offset_is_409(user: User) -> None:
    data = jpeg(1000, seed=4)
    url = create(user.client, data)
    assert patch(user.client, url, 0, data[:400]).status_code == 204
    r = patch(user.client, url, 0, data[:400])
    body = assert_problem(r, 409, "offset_mismatch")
    assert "400" in str(body["detail"])
    assert r.headers["Tus-Resumable"] == "1.0.0"
    assert user.client.head(url, headers=TUS).headers["Upload-Offset"] == "400"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_bad_chunk_checksum_is_460_and_discarded(user: User, algorithm: str) -> None:
    data = jpeg(1000, seed=5)
    url = create(user.client, data)
    assert patch(user.client, url, 0, data[:500], b64digest(algorithm, data[:500])).status_code == 204
    r = patch(user.client, url, 500, data[500:], b64digest(algorithm, b"something else"))
    assert_problem(r, 460, "checksum_mismatch")
    assert user.client.head(url, headers=TUS).headers["Upload-Offset"] == "500"
    r = patch(user.client, url, 500, data[500:], b64digest(algorithm, data[500:]))
    assert r.status_code == 204
    info = user.session.get(f"/api/v1/assets/{r.headers['Camroll-Asset-Id']}").json()
    assert info["sha256"] == hashlib.sha256(data).hexdigest()


def test_unsupported_checksum_algorithm_is_400(user: User) -> None:
    data = jpeg(100, seed=6)
    url = create(user.client, data)
    r = patch(user.client, url, 0, data, "md5 AAAA")
    assert_problem(r, 400, "bad_request")
    assert user.client.head(url, headers=TUS).headers["Upload-Offset"] == "0"


def test_whole_file_mismatch_stores_nothing(user: User) -> None:
    data = jpeg(4000, seed=7)
    blobs_before = blob_files(user.data)
    url = create(user.client, data, sha256=hashlib.sha256(b"other").hexdigest())
    assert patch(user.client, url, 0, data[:2000]).status_code == 204
    r = patch(user.client, url, 2000, data[2000:])
    body = assert_problem(r, 460, "checksum_mismatch")
    assert hashlib.sha256(data).hexdigest() in str(body["detail"])
    assert "agent retries" in str(body["fix"])
    assert blob_files(user.data) == blobs_before
    assert user.session.get("/api/v1/assets").json()["items"] == []
    assert user.client.head(url, headers=TUS).status_code == 404
    assert not (user.data / "uploads" / (url.rsplit("/", 1)[1] + ".part")).exists()


def test_upload_without_declared_hash_uses_computed_hash(user: User) -> None:
    data = jpeg(3000, seed=8)
    r = user.client.post(wire.UPLOADS_PATH, headers={
        **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": wire.encode_upload_metadata({"filename": "x.jpg"})})
    r = patch(user.client, r.headers["Location"], 0, data)
    info = user.session.get(f"/api/v1/assets/{r.headers['Camroll-Asset-Id']}").json()
    assert info["sha256"] == hashlib.sha256(data).hexdigest()


def test_termination(user: User) -> None:
    data = jpeg(1000, seed=9)
    url = create(user.client, data)
    patch(user.client, url, 0, data[:10])
    part = user.data / "uploads" / (url.rsplit("/", 1)[1] + ".part")
    assert part.exists()
    assert user.client.delete(url, headers=TUS).status_code == 204
    assert not part.exists()
    assert user.client.head(url, headers=TUS).status_code == 404
    assert_problem(patch(user.client, url, 10, data[10:]), 404, "not_found")


def test_protocol_errors(user: User) -> None:
    data = jpeg(100, seed=10)
    url = create(user.client, data)
    r = user.client.patch(url, content=data, headers={"Tus-Resumable": "0.2.2", "Content-Type": OCTET,
                                                      "Upload-Offset": "0"})
    assert_problem(r, 412, "tus_version")
    assert r.headers["Tus-Version"] == "1.0.0"
    r = user.client.patch(url, content=data, headers={**TUS, "Content-Type": "text/plain", "Upload-Offset": "0"})
    assert_problem(r, 415, "unsupported_media_type")
    r = user.client.post(wire.UPLOADS_PATH, headers=TUS)
    assert_problem(r, 400, "bad_request")
    r = user.client.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": "10", "Upload-Metadata": "bad pair x"})
    assert_problem(r, 400, "bad_request")


def test_body_past_upload_length_is_refused(user: User) -> None:
    data = jpeg(100, seed=11)
    url = create(user.client, data)
    r = patch(user.client, url, 0, data + b"extra")
    assert_problem(r, 413, "bad_request")
    assert user.client.head(url, headers=TUS).headers["Upload-Offset"] == "0"


def test_file_over_max_size_is_413(user: User) -> None:
    r = user.client.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": str(101 * 10**9)})
    body = assert_problem(r, 413, "file_too_large")
    assert "100.0 GB" in str(body["detail"])


def test_quota_exceeded_at_creation_leaves_nothing(shared_server: ServerProcess) -> None:
    u = make_user(shared_server, quota="1MB")
    parts_before = part_files(u.data)
    r = u.client.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": str(2 * 10**6)})
    body = assert_problem(r, 413, "quota_exceeded")
    assert "Storage full: 0 B of 1.0 MB used; this 2.0 MB file does not fit." in str(body["detail"])
    assert body["fix"]
    assert part_files(u.data) == parts_before
    # Unfinished uploads reserve their length.
    create(u.client, b"x" * 10, length=600_000)
    r = u.client.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": "600000"})
    assert_problem(r, 413, "quota_exceeded")
    assert u.client.get("/api/v1/me").json()["quota_bytes"] == 10**6


def test_same_content_twice_is_one_asset_with_two_paths(user: User) -> None:
    data = jpeg(20_000, seed=12)
    first = upload(user.client, data, path="/DCIM/one.jpg")
    second = upload(user.client, data, path="/Backup/one-copy.jpg", filename="one-copy.jpg")
    assert first == second
    info = user.session.get(f"/api/v1/assets/{first}").json()
    assert sorted(f["path"] for f in info["files"]) == ["/Backup/one-copy.jpg", "/DCIM/one.jpg"]
    assert len(user.session.get("/api/v1/assets").json()["items"]) == 1
    assert user.client.get("/api/v1/me").json()["used_bytes"] == len(data)


def _raw_patch(srv: ServerProcess, token: str, url: str, offset: int, declared: int, body: bytes,
               extra: str = "") -> None:
    """Send a PATCH that promises ``declared`` bytes but delivers only ``body`` and hangs up."""
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        head = (f"PATCH {url} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTET}\r\nUpload-Offset: {offset}\r\n"
                f"Content-Length: {declared}\r\n{extra}\r\n")
        s.sendall(head.encode() + body)
        time.sleep(0.3)


def _wait_offset(user: User, url: str, want: int) -> None:
    wait_until(lambda: user.client.head(url, headers=TUS).headers["Upload-Offset"] == str(want), 5,
               what=f"the offset is {want}", describe=lambda: user.client.head(url, headers=TUS).headers)


def test_disconnect_keeps_received_bytes(user: User) -> None:
    data = jpeg(50_000, seed=13)
    url = create(user.client, data)
    token = str(user.client.headers["Authorization"]).split()[1]
    _raw_patch(user.server, token, url, 0, len(data), data[:20_000])
    _wait_offset(user, url, 20_000)
    r = patch(user.client, url, 20_000, data[20_000:])
    assert r.status_code == 204
    info = user.session.get(f"/api/v1/assets/{r.headers['Camroll-Asset-Id']}").json()
    assert info["sha256"] == hashlib.sha256(data).hexdigest()


def test_disconnect_with_checksum_drops_the_chunk(user: User) -> None:
    data = jpeg(50_000, seed=14)
    url = create(user.client, data)
    token = str(user.client.headers["Authorization"]).split()[1]
    _raw_patch(user.server, token, url, 0, len(data), data[:20_000],
               extra=f"Upload-Checksum: {b64digest('sha1', data)}\r\n")
    time.sleep(0.3)
    _wait_offset(user, url, 0)
    part = user.data / "uploads" / (url.rsplit("/", 1)[1] + ".part")
    assert part.stat().st_size == 0


def test_head_after_restart_returns_persisted_offset(server: ServerProcess) -> None:
    u = make_user(server)
    data = jpeg(100_000, seed=15)
    url = create(u.client, data)
    assert patch(u.client, url, 0, data[:30_000]).status_code == 204
    server.restart()
    assert u.client.head(url, headers=TUS).headers["Upload-Offset"] == "30000"
    r = patch(u.client, url, 30_000, data[30_000:])
    assert r.status_code == 204, r.text
    info = u.session.get(f"/api/v1/assets/{r.headers['Camroll-Asset-Id']}").json()
    assert info["sha256"] == hashlib.sha256(data).hexdigest()


def test_startup_truncates_unacknowledged_bytes(server: ServerProcess) -> None:
    u = make_user(server)
    data = jpeg(10_000, seed=16)
    url = create(u.client, data)
    assert patch(u.client, url, 0, data[:3000]).status_code == 204
    server.kill()
    part = server.data / "uploads" / (url.rsplit("/", 1)[1] + ".part")
    with part.open("ab") as f:
        f.write(b"garbage not acknowledged")
    server.start()
    assert part.stat().st_size == 3000
    r = patch(u.client, url, 3000, data[3000:])
    assert r.status_code == 204
    info = u.session.get(f"/api/v1/assets/{r.headers['Camroll-Asset-Id']}").json()
    assert info["sha256"] == hashlib.sha256(data).hexdigest()


def test_expired_upload_is_gone_and_swept(clocked_ctx: Context, clocked_app: TestClient, clock: FakeClock) -> None:
    """Expiry on the context's clock: the upload lives until ``upload_expiry_seconds`` of inactivity, then
    answers 410, is swept with its part file and reserves no quota.  Nothing sleeps."""
    ctx, api = clocked_ctx, clocked_app
    add_user(ctx, "ann", "pw")
    session = api.post("/api/v1/auth/login", json={"username": "ann", "password": "pw"}).json()["token"]
    r = api.post("/api/v1/devices", json={"name": "phone", "platform": "test"},
                 headers={"Authorization": f"Bearer {session}"})
    api.headers["Authorization"] = f"Bearer {r.json()['token']}"
    data = jpeg(1000, seed=17)
    url = create(api, data)
    r = patch(api, url, 0, data[:100])
    assert "GMT" in r.headers["Upload-Expires"]
    part = ctx.settings.uploads_dir / (url.rsplit("/", 1)[1] + ".part")
    assert part.exists()
    clock.advance(ctx.settings.upload_expiry_seconds - 1)
    assert api.head(url, headers=TUS).headers["Upload-Offset"] == "100"  # HEAD does not renew it
    clock.advance(2)
    assert api.head(url, headers=TUS).status_code == 410
    assert_problem(patch(api, url, 100, data[100:]), 410, "gone")
    sweeper.sweep_once(ctx, orphans=False)
    assert not part.exists()
    assert api.head(url, headers=TUS).status_code == 410
    # An expired upload no longer reserves quota and a fresh one works.
    assert upload(api, data) > 0


def test_other_users_upload_is_not_found(shared_server: ServerProcess, user: User) -> None:
    data = jpeg(100, seed=18)
    url = create(user.client, data)
    other = make_user(shared_server)
    assert other.client.head(url, headers=TUS).status_code == 404
    assert_problem(patch(other.client, url, 0, data), 404, "not_found")
    assert_problem(other.client.delete(url, headers=TUS), 404, "not_found")


def test_uploads_need_a_token(shared_server: ServerProcess) -> None:
    r = httpx.post(shared_server.url + wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": "1"})
    assert_problem(r, 401, "unauthorized")
    assert r.headers["Tus-Resumable"] == "1.0.0"


def test_concurrent_uploads(user: User) -> None:
    from concurrent.futures import ThreadPoolExecutor

    files = [jpeg(400_000, seed=500 + i) for i in range(4)]
    same = jpeg(300_000, seed=600)
    jobs = [*files, same, same]
    with ThreadPoolExecutor(len(jobs)) as pool:
        ids = list(pool.map(lambda i_d: upload(user.client, i_d[1], chunk=50_000, path=f"/p/{i_d[0]}"),
                            enumerate(jobs)))
    assert len(set(ids)) == 5
    assert ids[4] == ids[5]
    for data, asset_id in zip(jobs, ids, strict=True):
        assert user.session.get(f"/api/v1/assets/{asset_id}").json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(user.session.get(f"/api/v1/assets/{ids[4]}").json()["files"]) == 2


def test_sigterm_mid_patch_keeps_received_bytes(server: ServerProcess) -> None:
    u = make_user(server)
    data = jpeg(2_000_000, seed=700)
    url = create(u.client, data)
    token = str(u.client.headers["Authorization"]).split()[1]
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall((f"PATCH {url} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                   f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTET}\r\nUpload-Offset: 0\r\n"
                   f"Content-Length: {len(data)}\r\n\r\n").encode() + data[:700_000])
        time.sleep(0.5)
        server.stop()  # SIGTERM while the PATCH is still open
    server.start()
    assert u.client.head(url, headers=TUS).headers["Upload-Offset"] == "700000"
    r = patch(u.client, url, 700_000, data[700_000:])
    assert r.status_code == 204
    info = u.session.get(f"/api/v1/assets/{r.headers['Camroll-Asset-Id']}").json()
    assert info["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [5000, 5 * 2**20])  # one block, and the streaming path
def test_whole_file_sha256_as_chunk_checksum(user: User, size: int) -> None:
    """A single-chunk upload's sha256 Upload-Checksum is the file's SHA-256 (computed once)."""
    data = jpeg(size, seed=800 + size)
    # Creation-with-upload, checksum right: stored.
    r = user.client.post(wire.UPLOADS_PATH, content=data, headers={
        **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta(data), "Content-Type": OCTET,
        "Upload-Checksum": b64digest("sha256", data)})
    assert r.status_code == 201, r.text
    info = user.session.get(f"/api/v1/assets/{r.headers['Camroll-Asset-Id']}").json()
    assert info["sha256"] == hashlib.sha256(data).hexdigest()

    # A PATCH of the whole file from offset 0 whose checksum is wrong: only that chunk is dropped.
    other = jpeg(size, seed=900 + size)
    url = create(user.client, other)
    r = patch(user.client, url, 0, other, b64digest("sha256", data))
    assert_problem(r, 460, "checksum_mismatch")
    assert r.headers["Upload-Offset"] == "0"
    assert user.client.head(url, headers=TUS).headers["Upload-Offset"] == "0"
    r = patch(user.client, url, 0, other, b64digest("sha256", other))
    assert r.status_code == 204, r.text
    info = user.session.get(f"/api/v1/assets/{r.headers['Camroll-Asset-Id']}").json()
    assert info["sha256"] == hashlib.sha256(other).hexdigest()


def test_chunk_checksum_right_but_declared_hash_wrong_discards_the_upload(user: User) -> None:
    data = jpeg(6000, seed=810)
    blobs_before = blob_files(user.data)
    url = create(user.client, data, sha256=hashlib.sha256(b"not this file").hexdigest())
    r = patch(user.client, url, 0, data, b64digest("sha256", data))
    body = assert_problem(r, 460, "checksum_mismatch")
    assert hashlib.sha256(data).hexdigest() in str(body["detail"])
    assert blob_files(user.data) == blobs_before
    assert user.client.head(url, headers=TUS).status_code == 404


def test_a_new_upload_of_the_same_file_replaces_the_abandoned_one(shared_server: ServerProcess) -> None:
    """A device killed during a small file's creation-with-upload never learns the upload's URL; its
    next pass creates another.  The abandoned upload must not hold its part file and reserve the
    file's size until it expires: on an account with room for the file once, that refused the file."""
    u = make_user(shared_server, quota="1MB")
    data = jpeg(600_000, seed=31)
    first = create(u.client, data, path="/DCIM/a.jpg")
    assert u.client.patch(first, headers={**TUS, "Content-Type": OCTET, "Upload-Offset": "0"},
                          content=data[:100_000]).status_code == 204
    parts = part_files(u.data)
    second = create(u.client, data, path="/DCIM/a.jpg")  # refused as over quota before the fix
    assert part_files(u.data) != parts and len(part_files(u.data)) == len(parts)
    assert u.client.head(first, headers=TUS).status_code == 410
    # Another file's unfinished upload is kept, and the replaced one is stored normally.
    other = jpeg(1000, seed=32)
    third = create(u.client, other, path="/DCIM/b.jpg")
    offset = 0
    for i in range(0, len(data), 200_000):
        r = patch(u.client, second, offset, data[i:i + 200_000])
        assert r.status_code == 204, r.text
        offset = int(r.headers["Upload-Offset"])
    assert u.client.get("/api/v1/me").json()["used_bytes"] == len(data)
    assert u.client.head(third, headers=TUS).status_code == 200


def test_head_after_a_cut_reports_the_bytes_that_arrived(user: User) -> None:
    """A client asks HEAD at once after its connection broke, while the server is still writing what
    arrived: the answer must be the offset after those bytes, or the client resends a whole body
    from an older offset only to be answered 409."""
    data = jpeg(6 * 2**20, seed=33)
    url = create(user.client, data)
    token = str(user.client.headers["Authorization"]).split()[1]
    sock = socket.create_connection(("127.0.0.1", user.server.port))
    head = (f"PATCH {url} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: {OCTET}\r\nUpload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n")
    sock.sendall(head.encode() + data[:5 * 2**20])
    time.sleep(0.5)  # the server is inside the request, waiting for the rest of the body

    answers: list[str] = []

    def ask() -> None:
        answers.append(user.client.head(url, headers=TUS).headers["Upload-Offset"])

    t = threading.Thread(target=ask)
    t.start()
    time.sleep(0.3)  # HEAD arrives while the writer still holds the upload...
    sock.close()  # ...then the connection breaks
    t.join(10)
    assert answers == [str(5 * 2**20)]
