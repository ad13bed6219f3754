"""Nextcloud chunking v2 through the WebDAV door: rclone's ``nextcloud`` vendor uploads a big video in
chunks over a link that is cut in the middle; its retry of the cut chunk resumes, and the assembled
file is an asset with the same SHA-256.  Also the v2 protocol by hand: numbered chunks, an early
quota refusal from OC-Total-Length, out-of-order and missing chunks, DELETE to give up."""

from __future__ import annotations

import base64
import hashlib
import random
import socket
from pathlib import Path

import httpx
from e2e.proxy import FaultPlan, Proxy
from support.server import ServerProcess

from .conftest import User, make_user
from .test_dav import assets_by_sha, dav_url, original_sha, rclone

MB = 2**20


def video(n: int, seed: int) -> bytes:
    head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    return head + random.Random(seed).randbytes(n - len(head))


def _token(u: User) -> str:
    return u.client.headers["Authorization"].removeprefix("Bearer ")


def test_rclone_nextcloud_chunked_upload_cut_and_resumed(shared_server: ServerProcess, tmp_path: Path) -> None:
    u = make_user(shared_server, device="laptop-rclone")
    data = video(40 * MB, seed=1)
    (tmp_path / "roll").mkdir()
    (tmp_path / "roll" / "VID_0001.mp4").write_bytes(data)
    plan = FaultPlan(seed=1, cut_every=0, stall_every=0)
    plan.cuts = [17 * MB]  # in the middle of the fifth chunk
    proxy = Proxy(shared_server.port, faults=plan)
    try:
        env = {"RCLONE_WEBDAV_URL": f"{proxy.url}/dav/files/{u.name}/", "RCLONE_WEBDAV_NEXTCLOUD_CHUNK_SIZE": "4M"}
        r = rclone(u, _token(u), "copy", str(tmp_path / "roll"), ":webdav:Videos", vendor="nextcloud",
                   extra_env=env)
        assert r.returncode == 0, r.stderr
        assert proxy.cuts_done == 1
        # rclone (1.75) answers a failed chunk by starting the file's chunked upload over (it purges the
        # upload folder first), so the cut costs the bytes before it, once.
        assert proxy.bytes_up < 2 * len(data), proxy.bytes_up
    finally:
        proxy.close()
    sha = hashlib.sha256(data).hexdigest()
    have = assets_by_sha(u)
    assert sha in have and original_sha(u, have[sha]) == sha
    assert "Videos/VID_0001.mp4" in u.session.get(f"/api/v1/assets/{have[sha]}").text
    # No chunked upload left behind; a second copy sends nothing.
    auth = (u.name, _token(u))
    listing = httpx.request("PROPFIND", f"{u.server.url}/dav/uploads/{u.name}/", auth=auth, headers={"Depth": "1"})
    assert listing.status_code == 207 and "rclone-chunked-upload" not in listing.text
    again = rclone(u, _token(u), "copy", str(tmp_path / "roll"), ":webdav:Videos", vendor="nextcloud")
    assert again.returncode == 0 and "Copied" not in again.stderr, again.stderr
    u.close()


def _cut_put(u: User, path: str, body: bytes, auth: tuple[str, str], keep: int) -> None:
    """A PUT whose connection closes after ``keep`` bytes of its body."""
    host, port = u.server.url.removeprefix("http://").split(":")
    creds = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {creds}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:keep])


def test_chunking_v2_by_hand(shared_server: ServerProcess) -> None:
    u = make_user(shared_server, quota="30MB", device="phone-nextcloud")
    auth = (u.name, _token(u))
    up = f"{u.server.url}/dav/uploads/{u.name}/"
    dest = dav_url(u) + "DCIM/v.mp4"
    assert httpx.request("MKCOL", dav_url(u) + "DCIM", auth=auth).status_code == 201
    # Too big for the quota: refused at MKCOL, before any chunk.
    r = httpx.request("MKCOL", up + "big", auth=auth, headers={"OC-Total-Length": str(40 * MB)})
    assert r.status_code == 507 and "Storage full" in r.text, r.text
    data = video(12 * MB, seed=2)
    parts = [data[i:i + 5 * MB] for i in range(0, len(data), 5 * MB)]
    assert httpx.request("MKCOL", up + "web-1", auth=auth, headers={"OC-Total-Length": str(len(data)),
                                                                      "Destination": dest}).status_code == 201
    # A chunk before the first is missing: refused, nothing stored.
    r = httpx.put(up + "web-1/2", content=parts[1], auth=auth)
    assert r.status_code == 409 and "missing" in r.text, r.text
    for i, p in enumerate(parts[:2], start=1):
        assert httpx.put(up + f"web-1/{i}", content=p, auth=auth, headers={"Destination": dest}).status_code == 201
    # The last chunk (2 MiB) cut after 1 MiB, then sent again whole: what arrived is kept, the rest
    # appended once.
    _cut_put(u, f"/dav/uploads/{u.name}/web-1/3", parts[2], auth, keep=MB)
    # Sent again (a lost answer): kept once.
    assert httpx.put(up + "web-1/2", content=parts[1], auth=auth).status_code in (201, 204)
    assert httpx.put(up + "web-1/3", content=parts[2], auth=auth).status_code == 201
    listing = httpx.request("PROPFIND", up + "web-1/", auth=auth, headers={"Depth": "1"})
    assert listing.status_code == 207 and "web-1/3" in listing.text
    r = httpx.request("MOVE", up + "web-1/.file", auth=auth, headers={
        "Destination": dest, "OC-Total-Length": str(len(data)), "X-OC-Mtime": "1700000000"})
    assert r.status_code in (201, 204), r.text
    assert r.headers.get("x-oc-mtime") == "accepted"
    sha = hashlib.sha256(data).hexdigest()
    have = assets_by_sha(u)
    assert sha in have and original_sha(u, have[sha]) == sha
    r = httpx.request("PROPFIND", dest, auth=auth, headers={"Depth": "0"})
    assert r.status_code == 207 and f"{len(data)}<" in r.text and "14 Nov 2023" in r.text, r.text
    # Giving up: DELETE the folder; its bytes go with the upload.
    assert httpx.request("MKCOL", up + "web-2", auth=auth).status_code == 201
    assert httpx.put(up + "web-2/1", content=parts[0], auth=auth).status_code == 201
    assert httpx.request("DELETE", up + "web-2", auth=auth).status_code == 204
    assert httpx.request("PROPFIND", up + "web-2", auth=auth).status_code == 404
    u.close()
