"""The server side of the web UI against a real ``camroll serve``: the page and its static files, the
media cookie (accepted only on GETs of media), password change and logout."""

from __future__ import annotations

import re

import httpx
from support.server import ServerProcess

from camroll import wire

from .conftest import upload

PW = "correct horse battery"


def _static_urls(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


def test_page_and_versioned_static_files(server: ServerProcess) -> None:
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "http" not in csp  # nothing from other origins
    urls = _static_urls(page.text)
    assert any(u.endswith("/js/app.js") for u in urls)
    version = urls[0].split("/")[2]
    assert all(u.startswith(f"/static/{version}/") for u in urls)
    js = httpx.get(f"{server.url}/static/{version}/js/app.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert "immutable" in js.headers["cache-control"] and "max-age=31536000" in js.headers["cache-control"]
    # An old page asking for another version still works but is not cached for a year.
    old = httpx.get(f"{server.url}/static/000000000000/js/app.js")
    assert old.status_code == 200 and old.headers["cache-control"] == "no-cache"
    for bad in ("js/nope.js", "../app.py", "..%2F..%2Fapp.py", "index.html"):
        assert httpx.get(f"{server.url}/static/{version}/{bad}", follow_redirects=True).status_code == 404, bad
    # No page, script or style refers to another origin (no CDN, no web fonts).
    for u in urls:
        body = httpx.get(f"{server.url}{u}").text
        assert not re.search(r"""(?:src|href|url\()\s*=?\s*["']?https?://""", body), u


def test_media_cookie_only_authenticates_media_gets(server: ServerProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server.add_user("bob", PW)
    session = server.login("bob", PW)
    f = tmp_path / "a.jpg"
    f.write_bytes(b"\xff\xd8\xff\xe0" + b"x" * 1000)
    asset = upload(server.url, session, f)
    original = f"{server.url}/api/v1/assets/{asset}/original"
    assert httpx.get(original).status_code == 401

    r = httpx.post(f"{server.url}/api/v1/auth/media-cookie", headers={"Authorization": f"Bearer {session}"})
    assert r.status_code == 204
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/api/v1/assets" in cookie
    jar = {"camroll_media": session}

    got = httpx.get(original, cookies=jar)
    assert got.status_code == 200 and got.content == f.read_bytes()
    ranged = httpx.get(original, cookies=jar, headers={"Range": "bytes=0-3"})
    assert ranged.status_code == 206 and ranged.content == b"\xff\xd8\xff\xe0"
    # Anything that is not a GET of media ignores the cookie.
    assert httpx.get(f"{server.url}/api/v1/assets/{asset}", cookies=jar).status_code == 401
    assert httpx.get(f"{server.url}/api/v1/me", cookies=jar).status_code == 401
    assert httpx.post(f"{server.url}/api/v1/assets/trash", cookies=jar, json={"ids": [asset]}).status_code in (401, 404)
    # A device token is never handed out as a cookie, and a forged cookie is refused.
    device = server.device_token("bob", PW)
    assert httpx.post(f"{server.url}/api/v1/auth/media-cookie",
                      headers={"Authorization": f"Bearer {device}"}).status_code == 403
    assert httpx.get(original, cookies={"camroll_media": device}).status_code == 401
    assert httpx.get(original, cookies={"camroll_media": "crs_forged"}).status_code == 401
    # Logging out ends the session, so the cookie stops working too.
    assert httpx.post(f"{server.url}/api/v1/auth/logout",
                      headers={"Authorization": f"Bearer {session}"}).status_code == 204
    assert httpx.get(original, cookies=jar).status_code == 401
    cleared = httpx.delete(f"{server.url}/api/v1/auth/media-cookie")
    assert cleared.status_code == 204 and "Max-Age=0" in cleared.headers["set-cookie"]


def test_change_password(server: ServerProcess) -> None:
    server.add_user("carol", PW)
    here, elsewhere = server.login("carol", PW), server.login("carol", PW)
    device = server.device_token("carol", PW)

    def change(token: str, old: str, new: str) -> httpx.Response:
        return httpx.post(f"{server.url}/api/v1/me/password", json={"old": old, "new": new},
                          headers={"Authorization": f"Bearer {token}"})

    wrong = change(here, "not it", "a new long password")
    assert wrong.status_code == 403 and "wrong" in wrong.json()["detail"]
    short = change(here, PW, "short")
    assert short.status_code == 400 and "at least 8" in short.json()["detail"]
    assert change(device, PW, "a new long password").status_code == 403
    assert change(here, PW, "a new long password").status_code == 204

    def me(token: str) -> int:
        return httpx.get(f"{server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code

    assert me(here) == 200  # this session goes on
    assert me(elsewhere) == 401  # other sessions end
    assert me(device) == 200  # devices keep backing up
    assert httpx.post(f"{server.url}/api/v1/auth/login",
                      json={"username": "carol", "password": PW}).status_code == 401
    assert server.login("carol", "a new long password").startswith("crs_")


def test_logout_refuses_device_tokens(server: ServerProcess) -> None:
    server.add_user("dan", PW)
    device = server.device_token("dan", PW)
    r = httpx.post(f"{server.url}/api/v1/auth/logout", headers={"Authorization": f"Bearer {device}"})
    assert r.status_code == 403 and r.headers["content-type"] == wire.PROBLEM_CONTENT_TYPE


def test_upload_activity_per_device_and_day(server: ServerProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server.add_user("erin", PW)
    session = server.login("erin", PW)
    phone = server.device_token("erin", PW, device="phone")
    for i in range(3):
        f = tmp_path / f"p{i}.jpg"
        f.write_bytes(b"\xff\xd8\xff\xe0" + bytes([i]) * 500)
        upload(server.url, phone if i else session, f)
    r = httpx.get(f"{server.url}/api/v1/activity/uploads?days=7", headers={"Authorization": f"Bearer {session}"})
    assert r.status_code == 200
    by_device = {a["device_id"]: a["days"] for a in r.json()}
    assert len(by_device) == 2 and None in by_device  # the phone and the web page (no device)
    (phone_days,) = [d for k, d in by_device.items() if k is not None]
    assert [d["files"] for d in phone_days] == [2] and phone_days[0]["bytes"] == 2 * 504
    assert by_device[None][0]["files"] == 1
    # Another user sees nothing of erin's.
    server.add_user("frank", PW)
    other = httpx.get(f"{server.url}/api/v1/activity/uploads",
                      headers={"Authorization": f"Bearer {server.login('frank', PW)}"})
    assert other.json() == []
