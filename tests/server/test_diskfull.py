"""A full disk on the server is a condition that clears, never a verdict on a file: uploads answer 507
``storage_full`` (before the body when the file cannot fit, and without keeping a partial write when the
disk fills mid-body), background jobs wait and retry without recording a failure on the asset.

The disks are small tmpfs filesystems the tests mount (root only; see tests/smallfs.py)."""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import socket
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy.exc
from smallfs import fill, server_on_small_filesystem, small_filesystem
from support.media import photo
from support.server import ServerProcess

from camroll import wire
from camroll.media import thumbs
from camroll.server.context import Context
from camroll.server.diskspace import is_out_of_space
from camroll.server.jobs import status as job_status
from camroll.server.jobs.config import thumbs_dir
from camroll.server.jobs.queue import JobQueue
from camroll.server.models import User
from camroll.server.repositories import assets as repo

MIB = 2**20
TUS = {"Tus-Resumable": wire.TUS_VERSION}


# --- telling a full disk apart ---------------------------------------------------------------------------------
def test_a_full_disk_is_recognised_inside_groups_and_database_errors() -> None:
    enospc = OSError(errno.ENOSPC, "No space left on device")
    assert is_out_of_space(enospc)
    assert is_out_of_space(OSError(errno.EDQUOT, "Disk quota exceeded"))
    # anyio task groups wrap what their tasks raised (the receive path's write + hash jobs).
    assert is_out_of_space(ExceptionGroup("unhandled errors in a TaskGroup", [ExceptionGroup("x", [enospc])]))
    full = sqlite3.OperationalError("database or disk is full")
    assert is_out_of_space(sqlalchemy.exc.OperationalError("INSERT ...", {}, full))
    wrapped = RuntimeError("while storing")
    wrapped.__cause__ = enospc
    assert is_out_of_space(wrapped)
    for other in (OSError(errno.EIO, "I/O error"), sqlite3.OperationalError("database is locked"),
                  ExceptionGroup("g", [ValueError("x")])):
        assert not is_out_of_space(other)


def test_a_thumbnail_that_cannot_be_written_for_lack_of_space_is_not_a_damaged_file(tmp_path: Path) -> None:
    src = tmp_path / "p.jpg"
    src.write_bytes(photo(datetime(2022, 5, 1, 10, 0), size=(640, 480)))
    # Every write to /dev/full fails with ENOSPC.
    with open("/dev/full", "wb", buffering=0) as full, pytest.raises(OSError) as caught:
        thumbs.make_thumbnail(src, full, size=thumbs.GRID)
    assert caught.value.errno == errno.ENOSPC and not isinstance(caught.value, thumbs.MediaError)


# --- uploads ---------------------------------------------------------------------------------------------------
@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real ``camroll serve`` whose data dir is a 40 MB filesystem (its log stays outside)."""
    with server_on_small_filesystem(tmp_path / "server-data", 40) as srv:
        yield srv


def _token(srv: ServerProcess) -> dict[str, str]:
    pw = srv.add_user("ann")
    return {"Authorization": f"Bearer {srv.device_token('ann', pw)}"}


def _create(srv: ServerProcess, auth: dict[str, str], data: bytes) -> httpx.Response:
    meta = {wire.META_FILENAME: "VID.mp4", wire.META_SHA256: hashlib.sha256(data).hexdigest()}
    return httpx.post(f"{srv.url}{wire.UPLOADS_PATH}", timeout=30, headers={
        **TUS, **auth, "Upload-Length": str(len(data)), "Upload-Metadata": wire.encode_upload_metadata(meta)})


def _patch(srv: ServerProcess, auth: dict[str, str], url: str, offset: int, body: bytes) -> httpx.Response:
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return httpx.patch(f"{srv.url}{url}", content=body, timeout=60, headers={
        **TUS, **auth, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset),
        "Upload-Checksum": f"sha256 {digest}"})


def _offset(srv: ServerProcess, auth: dict[str, str], url: str) -> int:
    return int(httpx.head(f"{srv.url}{url}", headers={**TUS, **auth}).headers["Upload-Offset"])


def _is_storage_full(r: httpx.Response) -> None:
    assert r.status_code == 507, (r.status_code, r.text)
    p = wire.Problem.model_validate_json(r.content)
    assert p.code == "storage_full" and "disk is full" in p.detail and p.fix and "free disk space" in p.fix, p


def _mp4(size: int) -> bytes:
    head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    return head + os.urandom(size - len(head))


def test_a_disk_that_fills_mid_body_answers_507_and_keeps_no_partial_bytes(small_server: ServerProcess) -> None:
    auth = _token(small_server)
    data = _mp4(8 * MIB)
    created = _create(small_server, auth, data)
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    part = next((small_server.data / "uploads").glob("*.part"))
    # Something else fills the disk after the upload was accepted.
    filler = small_server.data / "filler.bin"
    fill(filler, leave=512 * 1024)
    # A long body (written by task-group workers: the ExceptionGroup path) and a short one (one call).
    for body in (data, data[:2 * MIB]):
        _is_storage_full(_patch(small_server, auth, url, 0, body))
        assert _offset(small_server, auth, url) == 0
        assert part.stat().st_size == 0  # nothing partial kept, the offset never advanced
    room = httpx.post(f"{small_server.url}/api/v1/assets/check", json={"items": []}, headers=auth).json()["room"]
    assert room["disk_left"] == 0, room
    # Space comes back: the same upload finishes from offset 0.
    filler.unlink()
    done = _patch(small_server, auth, url, 0, data)
    assert done.status_code == 204, done.text
    asset = int(done.headers[wire.ASSET_ID_HEADER])
    session = {"Authorization": f"Bearer {small_server.login('ann', 'correct horse battery')}"}
    got = httpx.get(f"{small_server.url}/api/v1/assets/{asset}/original", headers=session, timeout=30)
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()


def test_a_file_that_cannot_fit_is_refused_before_its_body(small_server: ServerProcess) -> None:
    auth = _token(small_server)
    fill(small_server.data / "filler.bin", leave=6 * MIB)  # below the 4 MiB reserve + this file
    size = 5 * MIB
    room = httpx.post(f"{small_server.url}/api/v1/assets/check", json={"items": []}, headers=auth).json()["room"]
    assert room["disk_left"] < size, room
    # creation-with-upload: the headers go, the body does not; the answer must come anyway.
    meta = wire.encode_upload_metadata({wire.META_FILENAME: "VID.mp4"})
    head = (f"POST {wire.UPLOADS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: {wire.TUS_VERSION}\r\n"
            f"Authorization: {auth['Authorization']}\r\nUpload-Length: {size}\r\nUpload-Metadata: {meta}\r\n"
            f"Content-Type: application/offset+octet-stream\r\nContent-Length: {size}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", small_server.port), timeout=20) as s:
        s.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(65536)
            assert chunk, "the server closed without answering"
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert b" 507 " in status_line, answer[:400]
    assert not list((small_server.data / "uploads").glob("*.part"))
    # The same refusal as a plain bodiless creation, with the cause in words.
    _is_storage_full(_create(small_server, auth, _mp4(size)))


# --- background jobs (defect 12) -------------------------------------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now



def test_a_thumbnail_job_on_a_full_disk_waits_and_is_retried_with_back_off(ctx: Context,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMROLL_JOB_RETRY_DELAY", "2")
    data = photo(datetime(2021, 7, 4, 8, 30), size=(800, 600))
    sha = hashlib.sha256(data).hexdigest()
    src = ctx.settings.data_dir / "p.jpg"
    src.write_bytes(data)
    ctx.blobs.put_file(sha, src)
    with ctx.db() as db:
        user = User(username="ann", password_hash="x")
        db.add(user)
        db.flush()
        user_id = user.id
    with ctx.conn() as conn:
        repo.ensure_blob(conn, sha, len(data))
        asset_id = repo.get_or_create(conn, user_id, sha, len(data), "image/jpeg", "IMG_1.jpg")
    clock = _Clock()
    with small_filesystem(thumbs_dir(ctx.settings.data_dir), 8) as tdir:
        filler = tdir / "filler.bin"
        fill(filler)
        queue = JobQueue(ctx, clock=clock)
        assert queue._run(asset_id) == "waiting_for_disk"
        with ctx.db() as db:
            a = repo.by_id(db, user_id, asset_id)
            assert a is not None and a.job_error is None and a.thumbs_at is None
            assert repo.needing_jobs(db, 0, 10) == [asset_id]  # a restart queues it again
            assert repo.job_counts(db) == {"done": 0, "waiting": 1, "failed": 0}
        report = job_status.report(ctx)
        assert report.failed == 0 and report.disk_full and "disk is full" in report.disk_full, report
        assert queue.waiting_for_disk == 1
        # Back-off: nothing before the delay, then queued again; still full: twice the delay.
        assert queue.requeue_parked() == 0
        clock.now += 2.1
        assert queue.requeue_parked() == 1 and queue.waiting_for_disk == 0
        assert queue._run(asset_id) == "waiting_for_disk"
        clock.now += 2.1
        assert queue.requeue_parked() == 0
        clock.now += 2.0
        assert queue.requeue_parked() == 1
        # Space freed: the next try makes the thumbnails and nothing is left recorded as failed.
        filler.unlink()
        assert queue._run(asset_id) == "done"
        with ctx.db() as db:
            a = repo.by_id(db, user_id, asset_id)
            assert a is not None and a.thumbs_at is not None and a.job_error is None
        assert job_status.report(ctx).disk_full is None
        queue.huey.flush()
