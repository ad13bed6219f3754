"""Requests that race on one upload, and who may touch whose upload, against a real ``camroll serve``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx

from camroll import wire

from .conftest import OCTET, TUS, User, assert_problem, create, jpeg, patch


def _slow_patch(client: httpx.Client, url: str, first: bytes, rest: bytes,
                release: threading.Event, result: list[httpx.Response]) -> threading.Thread:
    """A PATCH whose body stalls after ``first`` until ``release`` is set: the upload is busy meanwhile."""

    def body() -> Iterator[bytes]:
        yield first
        release.wait(20)
        yield rest

    def run() -> None:
        result.append(client.patch(url, headers={**TUS, "Content-Type": OCTET, "Upload-Offset": "0",
                                                 "Content-Length": str(len(first) + len(rest))},
                                   content=body()))

    t = threading.Thread(target=run)
    t.start()
    return t


def test_delete_of_an_upload_a_request_is_writing_is_refused(user: User) -> None:
    data = jpeg(200_000, seed=701)
    url = create(user.client, data)
    release = threading.Event()
    result: list[httpx.Response] = []
    with httpx.Client(base_url=user.server.url, headers=dict(user.client.headers), timeout=30) as writer:
        t = _slow_patch(writer, url, data[:1000], data[1000:], release, result)
        try:
            time.sleep(0.5)
            r = user.client.delete(url, headers=TUS)
            body = assert_problem(r, 409, "conflict")
            assert "retry" in str(body["fix"]).lower()
        finally:
            release.set()
            t.join(30)
    assert result[0].status_code == 204, result[0].text
    assert wire.ASSET_ID_HEADER in result[0].headers
    # Once the writer ended, the DELETE goes through.
    assert user.client.delete(url, headers=TUS).status_code == 204
    assert user.client.head(url, headers=TUS).status_code == 404



def test_patch_of_an_upload_whose_part_file_vanished_is_gone(user: User) -> None:
    # As when a newer upload of the same file superseded it (or it expired) between the PATCH's
    # checks and its first write: the bytes are gone, the client starts a new upload.
    data = jpeg(5000, seed=702)
    url = create(user.client, data)
    (user.data / "uploads" / f"{url.rsplit('/', 1)[1]}.part").unlink()
    assert_problem(patch(user.client, url, 0, data), 410, "gone")
    big = jpeg(6 * 2**20, seed=703)  # more than one block: the streaming path
    url = create(user.client, big)
    (user.data / "uploads" / f"{url.rsplit('/', 1)[1]}.part").unlink()
    assert_problem(patch(user.client, url, 0, big), 410, "gone")


def test_a_device_token_reaches_only_its_own_devices_uploads(user: User) -> None:
    data = jpeg(5000, seed=704)
    url = create(user.client, data)
    assert patch(user.client, url, 0, data[:1000]).status_code == 204
    token = user.server.device_token(user.name, user.password, "other-device")
    with httpx.Client(base_url=user.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as other:
        # The same user's other device: as if the upload did not exist.
        assert other.head(url, headers=TUS).status_code == 404  # a HEAD answer has no body
        assert_problem(patch(other, url, 1000, data[1000:]), 404, "not_found")
        assert_problem(other.delete(url, headers=TUS), 404, "not_found")
        # Nor does it reach an upload made with a login session (the web UI's).
        web = create(user.session, data, path="/web/a.jpg")
        assert other.head(web, headers=TUS).status_code == 404
    # The device that made it resumes it (HEAD, then PATCH); a session reaches both uploads.
    h = user.client.head(url, headers=TUS)
    assert h.status_code == 200 and h.headers["Upload-Offset"] == "1000"
    assert user.session.head(url, headers=TUS).status_code == 200
    assert user.session.head(web, headers=TUS).status_code == 200
    r = patch(user.client, url, 1000, data[1000:])
    assert r.status_code == 204 and wire.ASSET_ID_HEADER in r.headers
    assert user.session.delete(web, headers=TUS).status_code == 204
