"""The JSON API against a real server: accounts, devices, library, originals, problems."""

from __future__ import annotations

import hashlib

import httpx
from support.server import ServerProcess

from camroll import __version__, wire

from .conftest import User, assert_problem, jpeg, make_user, upload


def test_server_info_needs_no_token(shared_server: ServerProcess) -> None:
    info = wire.ServerInfo.model_validate(httpx.get(shared_server.url + "/api/v1/server").json())
    assert info.version == __version__
    assert info.upload.max_file_size == 100 * 10**9
    assert info.upload.chunk_size == 16 * 2**20
    assert info.upload.expiry_seconds == 24 * 3600
    assert "image/heic" in {m.mime for m in info.media_types}


def test_login_and_me(shared_server: ServerProcess) -> None:
    shared_server.add_user("carol", "pw-carol", quota="15GB", admin=True)
    r = httpx.post(shared_server.url + "/api/v1/auth/login", json={"username": "carol", "password": "pw-carol"})
    login = wire.LoginResponse.model_validate(r.json())
    assert login.token.startswith("crs_")
    assert login.user.is_admin and login.user.quota_bytes == 15 * 10**9
    me = httpx.get(shared_server.url + "/api/v1/me", headers={"Authorization": f"Bearer {login.token}"})
    assert me.json()["username"] == "carol"
    bad = httpx.post(shared_server.url + "/api/v1/auth/login", json={"username": "carol", "password": "nope"})
    assert_problem(bad, 401, "unauthorized")
    nobody = httpx.post(shared_server.url + "/api/v1/auth/login", json={"username": "zed", "password": "x"})
    assert_problem(nobody, 401, "unauthorized")


def test_devices_and_revocation(shared_server: ServerProcess, user: User) -> None:
    session = shared_server.login(user.name, user.password)
    auth = {"Authorization": f"Bearer {session}"}
    r = httpx.post(shared_server.url + "/api/v1/devices", json={"name": "phone", "platform": "android"},
                   headers=auth)
    assert r.status_code == 201
    created = wire.DeviceCreated.model_validate(r.json())
    assert created.token.startswith("crd_")
    phone = {"Authorization": f"Bearer {created.token}"}
    assert httpx.get(shared_server.url + "/api/v1/me", headers=phone).status_code == 200
    listed = [wire.DeviceInfo.model_validate(d) for d in user.session.get("/api/v1/devices").json()]
    assert {d.name for d in listed} == {"test-device", "phone"}
    assert next(d for d in listed if d.name == "phone").last_seen_at is not None

    assert user.session.delete(f"/api/v1/devices/{created.id}").status_code == 204
    body = assert_problem(httpx.get(shared_server.url + "/api/v1/me", headers=phone), 401, "unauthorized")
    assert "revoked" in str(body["detail"])
    listed = user.session.get("/api/v1/devices").json()
    assert next(d for d in listed if d["name"] == "phone")["revoked"] is True
    # Another user's device is not yours to revoke.
    other = make_user(shared_server)
    assert_problem(other.session.delete(f"/api/v1/devices/{listed[0]['id']}"), 404, "not_found")


def test_bad_tokens(shared_server: ServerProcess) -> None:
    for header in ({}, {"Authorization": "Bearer crd_nonsense"}, {"Authorization": "Basic abc"},
                   {"Authorization": "Bearer crs_nonsense"}, {"Authorization": "Bearer xyz"}):
        r = httpx.get(shared_server.url + "/api/v1/me", headers=header)
        body = assert_problem(r, 401, "unauthorized")
        assert body["fix"]


def test_client_too_old(shared_server: ServerProcess, user: User) -> None:
    r = user.client.get("/api/v1/me", headers={wire.CLIENT_VERSION_HEADER: "0.0.9"})
    body = assert_problem(r, 426, "client_too_old")
    assert body["fix"] == "Update camroll to 0.1.0 or later."
    assert user.client.get("/api/v1/me", headers={wire.CLIENT_VERSION_HEADER: __version__}).status_code == 200
    assert user.client.get("/api/v1/me", headers={wire.CLIENT_VERSION_HEADER: "0.10"}).status_code == 200
    info = user.client.get("/api/v1/server", headers={wire.CLIENT_VERSION_HEADER: "0.0.9"})
    assert info.json()["min_client_version"] == "0.1.0"


def test_framework_errors_are_problems(shared_server: ServerProcess, user: User) -> None:
    body = assert_problem(httpx.get(shared_server.url + "/nowhere"), 404, "not_found")
    assert body["fix"]
    assert_problem(user.session.put("/api/v1/me"), 405, "bad_request")
    body = assert_problem(user.session.post("/api/v1/devices", json={"name": ""}), 422, "bad_request")
    assert "name" in str(body["detail"])
    assert_problem(user.client.post("/api/v1/assets/check", content=b"{not json",
                                    headers={"Content-Type": "application/json"}), 422, "bad_request")
    assert_problem(user.session.get("/api/v1/assets/999999"), 404, "not_found")
    assert_problem(user.session.get("/api/v1/assets", params={"cursor": "garbage!"}), 400, "bad_request")


def test_check_reports_and_records_paths(user: User) -> None:
    data = jpeg(2000, seed=100)
    sha = hashlib.sha256(data).hexdigest()
    missing = "f" * 64
    asset_id = upload(user.client, data, path="/DCIM/x.jpg")
    req = {"items": [{"sha256": sha, "path": "/Other/x.jpg", "mtime_ns": 5}, {"sha256": missing}]}
    for _ in range(2):  # idempotent
        got = wire.CheckResponse.model_validate(user.client.post("/api/v1/assets/check", json=req).json())
        assert got.present == {sha: asset_id}
        assert got.missing == [missing]
    files = user.session.get(f"/api/v1/assets/{asset_id}").json()["files"]
    assert sorted(f["path"] for f in files) == ["/DCIM/x.jpg", "/Other/x.jpg"]
    assert next(f for f in files if f["path"] == "/Other/x.jpg")["filename"] == "x.jpg"


def test_assets_are_private(shared_server: ServerProcess, user: User) -> None:
    data = jpeg(1000, seed=101)
    asset_id = upload(user.client, data)
    other = make_user(shared_server)
    assert_problem(other.session.get(f"/api/v1/assets/{asset_id}"), 404, "not_found")
    assert_problem(other.session.get(f"/api/v1/assets/{asset_id}/original"), 404, "not_found")
    check = other.client.post("/api/v1/assets/check", json={"items": [{"sha256": hashlib.sha256(data).hexdigest()}]})
    assert check.json()["present"] == {}


def test_pagination_newest_first(user: User) -> None:
    ids = [upload(user.client, jpeg(500, seed=200 + i)) for i in range(5)]
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = wire.AssetPage.model_validate(user.session.get("/api/v1/assets", params=params).json())
        seen += [a.id for a in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    assert_problem(user.session.get("/api/v1/assets", params={"limit": 1001}), 422, "bad_request")


def test_original_supports_ranges(user: User) -> None:
    data = jpeg(100_000, seed=300)
    asset_id = upload(user.client, data, filename="holiday photo.jpg")
    url = f"/api/v1/assets/{asset_id}/original"
    r = user.session.get(url)
    assert r.status_code == 200 and r.content == data
    assert r.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Type"] == "image/jpeg"
    assert "holiday%20photo.jpg" in r.headers["Content-Disposition"]
    r = user.session.get(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = user.session.get(url, headers={"Range": "bytes=99990-"})
    assert r.status_code == 206 and r.content == data[99990:]
    r = user.session.get(url, headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == data[-5:]
    r = user.session.get(url, headers={"Range": "bytes=0-999999"})
    assert r.status_code == 206 and r.content == data
    r = user.session.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert_problem(r, 416, "bad_request")
    assert r.headers["Content-Range"] == f"bytes */{len(data)}"
    r = user.session.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert r.status_code == 200 and r.content == data
    r = user.session.get(url, headers={"Range": "bytes=0-1", "If-Range": '"stale"'})
    assert r.status_code == 200


def test_raw_paths_are_kept_byte_for_byte_and_bad_ones_refused(user: User) -> None:
    """A device path that is not UTF-8 arrives as ``path_raw``; the server keeps the bytes and makes the
    readable path and file name from them, whatever readable text the client sent."""
    raw = b"/DCIM/IMG_caf\xe9.jpg"
    data = jpeg(2000, seed=101)
    sha = hashlib.sha256(data).hexdigest()
    asset_id = upload(user.client, data, path="/DCIM/IMG_caf?.jpg", path_raw=wire.raw_name_to_wire(raw))
    raw2 = b"/Card/\xc9t\xe9.jpg"
    r = user.client.post("/api/v1/assets/check", json={"items": [
        {"sha256": sha, "path": "ignored", "path_raw": wire.raw_name_to_wire(raw2)}]})
    assert r.status_code == 200, r.text
    files = user.session.get(f"/api/v1/assets/{asset_id}").json()["files"]
    got = {wire.raw_name_from_wire(f["path_raw"]): (f["path"], f["filename"]) for f in files}
    assert got == {raw: ("/DCIM/IMG_caf\\xe9.jpg", "IMG_caf\\xe9.jpg"),
                   raw2: ("/Card/\\xc9t\\xe9.jpg", "\\xc9t\\xe9.jpg")}

    bad = {"items": [{"sha256": sha, "path": "/x.jpg", "path_raw": "not base64!"}]}
    assert "path_raw" in str(assert_problem(user.client.post("/api/v1/assets/check", json=bad), 400,
                                            "bad_request")["detail"])
    meta = wire.encode_upload_metadata({wire.META_SHA256: sha, wire.META_PATH_RAW: "not base64!"})
    r = user.client.post(wire.UPLOADS_PATH, headers={"Tus-Resumable": wire.TUS_VERSION, "Upload-Length": "5",
                                                     "Upload-Metadata": meta})
    assert "path_raw" in str(assert_problem(r, 400, "bad_request")["detail"])
