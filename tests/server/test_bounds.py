"""Every number, string and list the API takes is bounded: out-of-range or oversized input is a 4xx
problem document naming the problem and the fix, never a 500 (and never stored).  Over a real socket."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
import pytest

from camroll import __version__, wire

from .conftest import TUS, User, assert_problem, create, jpeg, meta, upload

BIG = 2**63
HUGE = "9" * 5000


def _raw(value: str) -> bytes:
    # Starlette reads header bytes as Latin-1: b"\xb2" arrives as "²", which str.isdigit() accepts.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _problem(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(wire.PROBLEM_CONTENT_TYPE)
    body = r.json()
    assert body["detail"] and body.get("fix"), body
    return dict(body)


@pytest.mark.parametrize("length", ["²", "١٢", "1_0", "-1", HUGE, str(BIG)])
def test_upload_length_must_be_ascii_digits_in_range(user: User, length: str) -> None:
    r = user.client.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": _raw(length)})  # type: ignore[dict-item]
    body = _problem(r, 400)
    assert "Upload-Length" in str(body["detail"])


def test_bad_upload_length_unauthenticated_is_401_not_500(user: User) -> None:
    r = httpx.post(f"{user.server.url}{wire.UPLOADS_PATH}", headers={**TUS, "Upload-Length": b"\xb2"})  # type: ignore[dict-item]
    assert_problem(r, 401, "unauthorized")


@pytest.mark.parametrize("offset", [HUGE, "²", str(BIG)])
def test_upload_offset_must_be_ascii_digits_in_range(user: User, offset: str) -> None:
    data = jpeg(100, seed=1)
    url = create(user.client, data)
    r = user.client.patch(url, content=data, headers={**TUS, "Content-Type": "application/offset+octet-stream",
                                                      "Upload-Offset": _raw(offset)})  # type: ignore[dict-item]
    _problem(r, 400)


@pytest.mark.parametrize("mtime", [str(2**64), str(-(2**63) - 1), HUGE, "12.5", "²"])
def test_upload_metadata_mtime_outside_64_bits_is_refused_before_any_byte(user: User, mtime: str) -> None:
    data = jpeg(200, seed=2)
    r = user.client.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": str(len(data)),
                                                     "Upload-Metadata": meta(data, mtime_ns=mtime)})
    body = _problem(r, 400)
    assert "mtime_ns" in str(body["detail"])


def test_upload_metadata_extreme_but_valid_mtime_completes(user: User) -> None:
    data = jpeg(300, seed=3)
    asset_id = upload(user.client, data, mtime_ns=str(2**63 - 1))
    assert user.session.get(f"/api/v1/assets/{asset_id}").status_code == 200


def test_check_mtime_outside_64_bits_is_422(user: User) -> None:
    data = jpeg(300, seed=4)
    upload(user.client, data)
    item = {"sha256": hashlib.sha256(data).hexdigest(), "path": "/p/a.jpg", "mtime_ns": 2**64}
    assert_problem(user.client.post("/api/v1/assets/check", json={"items": [item]}), 422, "bad_request")
    item["mtime_ns"] = 2**63 - 1
    assert user.client.post("/api/v1/assets/check", json={"items": [item]}).status_code == 200


def test_upload_metadata_size_is_bounded(user: User) -> None:
    data = jpeg(100, seed=5)
    big = meta(data, path="x" * 100_000)
    r = user.client.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": "100", "Upload-Metadata": big})
    _problem(r, 400)
    many = ",".join(f"k{i} YQ==" for i in range(wire.MAX_UPLOAD_METADATA_PAIRS + 1))
    r = user.client.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": "100", "Upload-Metadata": many})
    _problem(r, 400)
    long_path = meta(data, path="p" * (wire.MAX_PATH + 1))
    r = user.client.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": "100", "Upload-Metadata": long_path})
    _problem(r, 400)


def test_client_version_header_of_5000_digits_is_400(user: User) -> None:
    _problem(user.client.get("/api/v1/me", headers={wire.CLIENT_VERSION_HEADER: HUGE}), 400)
    assert user.client.get("/api/v1/me", headers={wire.CLIENT_VERSION_HEADER: __version__}).status_code == 200


def test_range_of_5000_digits_is_416(user: User) -> None:
    asset_id = upload(user.client, jpeg(500, seed=6))
    r = user.session.get(f"/api/v1/assets/{asset_id}/original", headers={"Range": f"bytes={HUGE}-"})
    _problem(r, 416)
    r = user.session.get(f"/api/v1/assets/{asset_id}/original", headers={"Range": f"bytes=0-{HUGE}"})
    _problem(r, 416)
    assert user.session.get(f"/api/v1/assets/{asset_id}/original", headers={"Range": "bytes=0-9"}).status_code == 206


@pytest.mark.parametrize("path", ["/assets/{}", "/assets/{}/original", "/assets/{}/motion", "/assets/{}/thumbnail",
                                  "/devices/{}"])
@pytest.mark.parametrize("ident", [BIG, 2**64, 0, -1])
def test_ids_outside_64_bits_in_paths_are_422(user: User, path: str, ident: int) -> None:
    assert_problem(user.session.get("/api/v1" + path.format(ident)), 422, "bad_request")


def test_revoke_device_with_huge_id_is_422(user: User) -> None:
    assert_problem(user.session.delete(f"/api/v1/devices/{BIG}"), 422, "bad_request")
    assert_problem(user.session.delete(f"/api/v1/me/notifications/{BIG}"), 422, "bad_request")


@pytest.mark.parametrize("route", ["/api/v1/assets/zip", "/api/v1/assets/trash", "/api/v1/assets/restore"])
def test_id_lists_outside_64_bits_are_422(user: User, route: str) -> None:
    assert_problem(user.session.post(route, json={"ids": [BIG]}), 422, "bad_request")


def test_zip_link_ids_outside_64_bits_are_4xx(user: User) -> None:
    _problem(user.session.get("/api/v1/assets/zip", params={"ids": f"1,{BIG}"}), 400)
    _problem(user.session.get("/api/v1/assets/zip", params={"ids": "9" * 4000}), 400)
    _problem(user.session.get("/api/v1/assets/zip", params={"ids": "9" * 6000}), 422)


def test_timeline_filters_outside_the_range_are_4xx(user: User) -> None:
    assert_problem(user.session.get("/api/v1/timeline", params={"device": BIG}), 422, "bad_request")
    for bound in ("9999-12-31", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"):
        body = _problem(user.session.get("/api/v1/timeline", params={"to": bound}), 400)
        assert "to=" in str(body["detail"])
    assert user.session.get("/api/v1/timeline", params={"to": "9999-12-30"}).status_code == 200


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    _cursor({"before": BIG}), _cursor({"t": "2024-01-01T00:00:00+00:00", "i": BIG}),
    _cursor({"before": True}), _cursor({"t": "0001-01-01T00:00:00+05:00", "i": 1}),
    base64.urlsafe_b64encode(b"[" * 2000).decode(), "x" * 5000,
])
@pytest.mark.parametrize("route", ["/api/v1/assets", "/api/v1/timeline", "/api/v1/trash"])
def test_cursors_that_are_not_ours_are_400(user: User, route: str, cursor: str) -> None:
    body = _problem(user.session.get(route, params={"cursor": cursor}), 400)
    assert "cursor" in str(body["detail"])


def _beat(**extra: object) -> dict[str, object]:
    return {"agent_version": "0.1", "state": "idle", "headline": "Up to date", **extra}


@pytest.mark.parametrize("extra", [
    {"last_success_at": "2024-05-01T12:00:00"},
    {"pending_files": 2**64}, {"pending_bytes": -1},
    {"problems": [{"path": "/a", "state": "failed", "reason": "r", "next_retry_at": "2024-05-01T12:00:00"}]},
    {"problems": [{"path": "/a", "state": "failed", "reason": "r", "attempts": 2**63}]},
    {"headline": "h" * (wire.MAX_TEXT + 1)},
])
def test_heartbeat_values_out_of_bounds_are_422(user: User, extra: dict[str, object]) -> None:
    assert_problem(user.client.put("/api/v1/devices/current/heartbeat", json=_beat(**extra)), 422, "bad_request")


def test_heartbeat_paths_are_bounded_so_devices_stays_small(user: User) -> None:
    long = [{"path": "p" * (wire.MAX_PATH + 1), "state": "failed", "reason": "r"}]
    assert_problem(user.client.put("/api/v1/devices/current/heartbeat", json=_beat(problems=long)), 422, "bad_request")
    fits = [{"path": "p" * wire.MAX_PATH, "state": "failed", "reason": "r" * wire.MAX_TEXT}] * 100
    assert user.client.put("/api/v1/devices/current/heartbeat", json=_beat(problems=fits)).status_code == 200
    assert len(user.session.get("/api/v1/devices").content) < 2 * 2**20


def test_request_bodies_are_bounded(user: User) -> None:
    body = b'{"ids": [' + b"1," * (3 * 2**20) + b"1]}"
    _problem(user.session.post("/api/v1/assets/trash", content=body,
                              headers={"Content-Type": "application/json"}), 413)

    def chunked() -> object:
        yield b'{"ids": ['
        for _ in range(3000):
            yield b"1," * 1024
        yield b"1]}"

    _problem(user.session.post("/api/v1/assets/trash", content=chunked(),  # type: ignore[arg-type]
                              headers={"Content-Type": "application/json"}), 413)
