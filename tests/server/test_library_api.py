"""The library API against a real server with real photos and a real video: jobs, timeline, details,
thumbnails, trash and restore, zip downloads, storage figures."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import time
import zipfile
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from PIL import Image
from services.redis import RedisService
from sqlalchemy import text
from support.media import photo, video, wait_for_jobs
from support.server import ServerProcess, camroll_cmd, database_env
from support.wait import wait_until

from camroll import wire
from camroll.media import thumbs
from camroll.server.db import make_engine
from camroll.server.settings import Settings

from .conftest import User, assert_problem, make_user, upload

NS = 10**9


def _timeline(client: httpx.Client, **params: object) -> wire.TimelinePage:
    r = client.get("/api/v1/timeline", params=params)
    assert r.status_code == 200, r.text
    return wire.TimelinePage.model_validate(r.json())


def _ids(page: wire.TimelinePage) -> list[int]:
    return [i.id for d in page.days for i in d.items]


def test_timeline_orders_by_capture_time_with_details_and_filters(shared_server: ServerProcess, user: User,
                                                                  tmp_path: Path) -> None:
    c, s = user.client, user.session
    # Uploaded in an order unrelated to when they were taken.
    mid = upload(c, photo(datetime(2021, 6, 1, 10, 0)), filename="mid.jpg")
    new = upload(c, photo(datetime(2023, 1, 15, 9, 0), offset="+02:00", color=(10, 20, 30), model="EOS R6"),
                 filename="new.jpg")
    # No EXIF time: the device's mtime is the capture time.
    old = upload(c, photo(None, color=(90, 90, 90)), filename="old.jpg",
                 mtime_ns=str(int(datetime(2019, 2, 3, 4, 5, 6).timestamp()) * NS))
    clip = upload(c, video(tmp_path, "2022-12-25T12:00:00Z"), filename="clip.mp4")
    details = wait_for_jobs(s, [mid, new, old, clip])
    assert all(d.has_thumbnail and d.job_error is None for d in details.values())

    page = _timeline(s)
    assert _ids(page) == [new, clip, mid, old]
    assert page.total == 4 and page.next_cursor is None
    assert [d.date for d in page.days] == ["2023-01-15", "2022-12-25", "2021-06-01", "2019-02-03"]
    first = page.days[0].items[0]
    assert first.capture_time_source == "exif" and first.capture_time.utcoffset() is not None
    assert first.capture_time.isoformat() == "2023-01-15T09:00:00+02:00"
    by_id = {i.id: i for d in page.days for i in d.items}
    assert by_id[clip].kind == "video" and by_id[clip].capture_time_source == "quicktime"
    assert by_id[clip].duration_s == pytest.approx(1.0, abs=0.2)
    assert by_id[old].capture_time_source == "mtime"
    assert (by_id[mid].width, by_id[mid].height) == (640, 480)

    detail = details[new]
    assert detail.metadata.camera_make == "Canon" and detail.metadata.camera_model == "EOS R6"
    assert detail.kind == "image" and detail.sha256 and detail.files[0].device_name == "test-device"
    assert details[clip].metadata.video_codec == "h264"

    # Cursor pagination walks the same order without gaps or repeats.
    seen: list[int] = []
    cursor: str | None = None
    while True:
        p = _timeline(s, limit=1, **({"cursor": cursor} if cursor else {}))
        seen += _ids(p)
        cursor = p.next_cursor
        if cursor is None:
            break
    assert seen == [new, clip, mid, old]

    assert _ids(_timeline(s, kind="video")) == [clip]
    assert _ids(_timeline(s, kind="image")) == [new, mid, old]
    assert _ids(_timeline(s, camera="eos r6")) == [new]
    assert _ids(_timeline(s, camera="Canon EOS R5")) == [mid, old]
    assert _ids(_timeline(s, **{"from": "2021-06-01", "to": "2022-12-25"})) == [clip, mid]
    assert_problem(s.get("/api/v1/timeline", params={"cursor": "nonsense"}), 400, "bad_request")
    assert_problem(s.get("/api/v1/timeline", params={"from": "last tuesday"}), 400, "bad_request")

    devices = s.get("/api/v1/devices").json()
    assert _ids(_timeline(s, device=devices[0]["id"])) == [new, clip, mid, old]
    other = make_user(shared_server, device="other-phone")
    assert _timeline(other.session).total == 0
    assert_problem(other.session.get(f"/api/v1/assets/{new}"), 404, "not_found")
    assert_problem(other.session.get(f"/api/v1/assets/{new}/thumbnail"), 404, "not_found")


def test_thumbnails_are_cacheable_and_sized(user: User) -> None:
    c, s = user.client, user.session
    asset = upload(c, photo(datetime(2020, 1, 1), size=(3000, 2000)), filename="big.jpg")
    sha = wait_for_jobs(s, [asset])[asset].sha256
    for size, box in (("grid", 250), ("preview", 1440)):
        r = s.get(f"/api/v1/assets/{asset}/thumbnail", params={"size": size})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/webp"
        assert r.headers["etag"] == f'"{sha}-{size}-v{thumbs.VERSION}"'
        assert r.headers["cache-control"] == "private, max-age=31536000, immutable"
        im = Image.open(io.BytesIO(r.content))
        assert max(im.size) == box and im.size[0] > im.size[1]
        again = s.get(f"/api/v1/assets/{asset}/thumbnail", params={"size": size},
                      headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    assert s.get(f"/api/v1/assets/{asset}/thumbnail", headers={"If-None-Match": '"other"'}).status_code == 200
    # A thumbnail file that went missing (or was made by an older recipe) is made again on request.
    grid = user.data / "thumbs" / sha[:2] / f"{sha}-grid-v{thumbs.VERSION}.webp"
    assert grid.is_file()
    grid.unlink()
    assert_problem(s.get(f"/api/v1/assets/{asset}/thumbnail"), 404, "not_found")
    wait_until(lambda: s.get(f"/api/v1/assets/{asset}/thumbnail").status_code == 200, what="the thumbnail is made")
    assert s.get(f"/api/v1/assets/{asset}/thumbnail", params={"size": "huge"}).status_code == 422
    # Bytes that are neither photo nor video never get a thumbnail, and say so.
    other = upload(c, b"just some notes\n" * 10, filename="notes.txt")
    assert s.get(f"/api/v1/assets/{other}").json()["kind"] == "other"
    body = assert_problem(s.get(f"/api/v1/assets/{other}/thumbnail"), 404, "not_found")
    assert "not a photo or video" in str(body["detail"])


def test_trash_restore_zip_and_storage(user: User) -> None:
    c, s = user.client, user.session
    blobs = [photo(datetime(2022, 5, i + 1), color=(i * 40, 10, 10)) for i in range(3)]
    # Two files of the same name from different folders: the zip must keep both.
    ids = [upload(c, blobs[0], filename="IMG_0001.JPG", path="DCIM/100/IMG_0001.JPG"),
           upload(c, blobs[1], filename="IMG_0001.JPG", path="DCIM/101/IMG_0001.JPG"),
           upload(c, blobs[2], filename="IMG_0002.JPG")]
    wait_for_jobs(s, ids)
    total = sum(len(b) for b in blobs)

    storage = wire.StorageInfo.model_validate(s.get("/api/v1/storage").json())
    assert storage.used_bytes == total and storage.trashed_bytes == 0 and storage.quota_bytes is None
    assert {u.kind: (u.files, u.bytes) for u in storage.by_kind}["image"] == (3, total)

    r = s.post("/api/v1/assets/zip", json={"ids": ids})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert zf.namelist() == ["IMG_0001.JPG", "IMG_0001 (1).JPG", "IMG_0002.JPG"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        assert [hashlib.sha256(zf.read(n)).hexdigest() for n in zf.namelist()] == \
            [hashlib.sha256(b).hexdigest() for b in blobs]
        assert zf.testzip() is None
    link = s.get("/api/v1/assets/zip", params={"ids": f"{ids[2]},{ids[0]}"})
    with zipfile.ZipFile(io.BytesIO(link.content)) as zf:
        assert [hashlib.sha256(zf.read(n)).hexdigest() for n in zf.namelist()] == \
            [hashlib.sha256(blobs[2]).hexdigest(), hashlib.sha256(blobs[0]).hexdigest()]
    assert_problem(s.get("/api/v1/assets/zip", params={"ids": "1,x"}), 400, "bad_request")
    assert_problem(s.post("/api/v1/assets/zip", json={"ids": [ids[0], 10**9]}), 404, "not_found")

    r = s.post("/api/v1/assets/trash", json={"ids": [ids[1], 10**9]})
    assert wire.TrashResult.model_validate(r.json()) == wire.TrashResult(changed=1, purge_after_days=30)
    assert s.post("/api/v1/assets/trash", json={"ids": [ids[1]]}).json()["changed"] == 0
    page = _timeline(s)
    assert ids[1] not in _ids(page) and page.total == 2
    trashed = wire.TimelinePage.model_validate(s.get("/api/v1/trash").json())
    assert _ids(trashed) == [ids[1]] and trashed.total == 1
    assert trashed.days[0].items[0].trashed_at is not None
    assert all(i.trashed_at is None for d in _timeline(s).days for i in d.items)
    detail = s.get(f"/api/v1/assets/{ids[1]}").json()
    assert detail["trashed_at"] is not None
    storage = wire.StorageInfo.model_validate(s.get("/api/v1/storage").json())
    assert storage.trashed_bytes == len(blobs[1]) and storage.used_bytes == total

    assert s.post("/api/v1/assets/restore", json={"ids": [ids[1]]}).json()["changed"] == 1
    assert _ids(_timeline(s)) == [ids[2], ids[1], ids[0]]
    assert wire.TimelinePage.model_validate(s.get("/api/v1/trash").json()).total == 0
    assert_problem(s.post("/api/v1/assets/trash", json={"ids": []}), 422, "bad_request")


def test_corrupt_image_is_recorded_without_blocking_a_good_one(shared_server: ServerProcess, user: User) -> None:
    c, s = user.client, user.session
    bad = upload(c, b"\xff\xd8\xff\xe0" + b"\x00" * 4000, filename="broken.jpg")
    good = upload(c, photo(datetime(2024, 2, 29, 12, 0), color=(5, 200, 5)), filename="good.jpg")
    details = wait_for_jobs(s, [bad, good])
    assert details[good].has_thumbnail and details[good].job_error is None
    assert not details[bad].has_thumbnail and details[bad].job_error
    body = assert_problem(s.get(f"/api/v1/assets/{bad}/thumbnail"), 404, "not_found")
    assert details[bad].job_error in str(body["detail"])
    # The original is still there and listed.
    assert s.get(f"/api/v1/assets/{bad}/original").status_code == 200
    assert bad in _ids(_timeline(s))

    out = shared_server.run_admin("jobs", "--json")
    report = json.loads(out.stdout)
    assert report["failed"] >= 1 and report["done"] >= 1
    assert any(f["asset_id"] == bad and f["reason"] == details[bad].job_error for f in report["recent_failures"])
    text = shared_server.run_admin("jobs").stdout
    assert "broken.jpg" in text

    # --retry queues it again from another process; the server's workers run it and it fails the same way.
    assert "Queued" in shared_server.run_admin("jobs", "--retry").stdout
    again = wait_for_jobs(s, [bad])[bad]
    assert again.job_error == details[bad].job_error


def test_a_restart_finishes_assets_whose_jobs_never_ran(server: ServerProcess) -> None:
    u = make_user(server)
    ids = [upload(u.client, photo(datetime(2018, 8, i + 1), color=(i, 50, 50)), filename=f"{i}.jpg")
           for i in range(3)]
    wait_for_jobs(u.session, ids)
    server.stop()
    # As if the server had died with its queue lost before any job ran.
    engine = make_engine(Settings.for_data_dir(server.data).database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE assets SET metadata_at = NULL, thumbs_at = NULL, taken_source = 'upload'"))
    engine.dispose()
    for thumb in (server.data / "thumbs").rglob("*.webp"):
        thumb.unlink()
    server.start()
    details = wait_for_jobs(u.session, ids)
    assert all(d.has_thumbnail and d.metadata.capture_time_source == "exif" for d in details.values())
    assert len(list((server.data / "thumbs").rglob("*.webp"))) == 6


def test_trash_is_purged_after_retention(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a retention of zero days and a fast purge, trashed assets go; a blob another user still
    has stays until that user's copy goes too; used bytes fall with each purge."""
    monkeypatch.setenv("CAMROLL_TRASH_DAYS", "0")
    monkeypatch.setenv("CAMROLL_PURGE_INTERVAL", "0.2")
    srv = ServerProcess(data=tmp_path / "server-data")
    srv.start()
    try:
        alice, bob = make_user(srv), make_user(srv)
        shared = photo(datetime(2022, 1, 1), color=(1, 1, 1))
        only_alice = photo(datetime(2022, 1, 2), color=(2, 2, 2))
        a1 = upload(alice.client, shared, filename="shared.jpg")
        a2 = upload(alice.client, only_alice, filename="mine.jpg")
        b1 = upload(bob.client, shared, filename="shared.jpg")
        wait_for_jobs(alice.session, [a1, a2])
        wait_for_jobs(bob.session, [b1])
        sha_shared = hashlib.sha256(shared).hexdigest()
        sha_mine = hashlib.sha256(only_alice).hexdigest()
        blob = srv.data / "blobs" / sha_shared[:2] / sha_shared[2:4] / sha_shared
        mine_blob = srv.data / "blobs" / sha_mine[:2] / sha_mine[2:4] / sha_mine
        assert blob.is_file() and mine_blob.is_file()

        assert alice.session.post("/api/v1/assets/trash", json={"ids": [a1, a2]}).json()["changed"] == 2
        wait_until(lambda: alice.session.get(f"/api/v1/assets/{a1}").status_code == 404, what="the first is purged")
        wait_until(lambda: alice.session.get(f"/api/v1/assets/{a2}").status_code == 404, what="the second is purged")
        assert alice.session.get("/api/v1/storage").json()["used_bytes"] == 0
        # The purge deletes the rows first, then the blob, then its thumbnails (services/trash.py): the
        # files go moments after the 404.
        mine_grid = srv.data / "thumbs" / sha_mine[:2] / f"{sha_mine}-grid-v{thumbs.VERSION}.webp"
        wait_until(lambda: not mine_blob.exists() and not mine_grid.exists(), 10, what="the blob and thumbnails gone")
        # Bob still has the shared bytes.
        assert blob.is_file()
        assert bob.session.get(f"/api/v1/assets/{b1}/original").content == shared

        bob.session.post("/api/v1/assets/trash", json={"ids": [b1]})
        wait_until(lambda: not blob.exists(), what="the blob is removed")
        assert bob.session.get("/api/v1/storage").json()["used_bytes"] == 0
    finally:
        srv.stop()


def test_live_photo_shows_as_one_item(user: User, tmp_path: Path) -> None:
    from media import files as media_files
    from support.env import require

    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed: apt-get install ffmpeg")
    still = media_files.jpeg(tmp_path / "IMG_0001.JPG", (800, 600), ex=media_files.exif(content_id="CID-LIVE-1"))
    clip = media_files.video(tmp_path / "IMG_0001.MOV", seconds=1,
                             metadata={"com.apple.quicktime.content.identifier": "CID-LIVE-1"})
    c, s = user.client, user.session
    mov = upload(c, clip.read_bytes(), filename="IMG_0001.MOV")
    photo_id = upload(c, still.read_bytes(), filename="IMG_0001.JPG")
    wait_for_jobs(s, [mov, photo_id])
    page = _timeline(s)
    assert _ids(page) == [photo_id] and page.total == 1
    assert page.days[0].items[0].live_video_id == mov
    assert wire.AssetDetail.model_validate(s.get(f"/api/v1/assets/{photo_id}").json()).live_video_id == mov
    assert s.get(f"/api/v1/assets/{mov}/original").content == clip.read_bytes()

    assert s.post("/api/v1/assets/trash", json={"ids": [photo_id]}).json()["changed"] == 1
    assert s.get(f"/api/v1/assets/{mov}").json()["trashed_at"] is not None
    assert _ids(wire.TimelinePage.model_validate(s.get("/api/v1/trash").json())) == [photo_id]
    s.post("/api/v1/assets/restore", json={"ids": [photo_id]})
    assert s.get(f"/api/v1/assets/{mov}").json()["trashed_at"] is None


def test_jobs_run_through_redis_when_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                request: pytest.FixtureRequest) -> None:
    """CAMROLL_REDIS_URL moves the queue to Redis; the server's workers still do the work."""
    redis: RedisService = request.getfixturevalue("redis_service")
    monkeypatch.setenv("CAMROLL_REDIS_URL", redis.fresh_url())
    srv = ServerProcess(data=tmp_path / "server-data")
    srv.start()
    try:
        u = make_user(srv)
        asset = upload(u.client, photo(datetime(2017, 7, 7, 7, 7)), filename="r.jpg")
        assert wait_for_jobs(u.session, [asset])[asset].has_thumbnail
        report = json.loads(srv.run_admin("jobs", "--json").stdout)
        assert report["backend"] == "redis" and report["done"] == 1 and report["queued"] == 0
        assert not (srv.data / "jobs.db").exists()
    finally:
        srv.stop()


def test_capture_time_from_the_device_file_name(user: User) -> None:
    """A screenshot has no EXIF: its name states when it was taken, and beats the file's mtime."""
    buf = io.BytesIO()
    Image.new("RGB", (300, 600), (30, 60, 90)).save(buf, "PNG")
    shot = upload(user.client, buf.getvalue(), filename="Screenshot_20240315-101112.png",
                  path="Pictures/Screenshots/Screenshot_20240315-101112.png",
                  mtime_ns=str(int(datetime(2019, 1, 1).timestamp()) * NS))
    detail = wait_for_jobs(user.session, [shot])[shot]
    assert detail.has_thumbnail
    assert detail.metadata.capture_time_source == "filename"
    assert detail.metadata.capture_time is not None
    assert detail.metadata.capture_time.replace(tzinfo=None) == datetime(2024, 3, 15, 10, 11, 12)
    assert _timeline(user.session).days[0].date == "2024-03-15"


def test_a_separate_worker_does_the_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CAMROLL_JOB_WORKERS=0 leaves the work to 'camroll worker' processes on the same queue (here the
    embedded one; on Redis the same holds across machines).  SIGTERM stops the worker cleanly."""
    monkeypatch.setenv("CAMROLL_JOB_WORKERS", "0")
    srv = ServerProcess(data=tmp_path / "server-data")
    srv.start()
    worker: subprocess.Popen[str] | None = None
    try:
        u = make_user(srv)
        asset = upload(u.client, photo(datetime(2015, 5, 5)), filename="w.jpg")
        time.sleep(1.5)
        assert not u.session.get(f"/api/v1/assets/{asset}").json()["has_thumbnail"]
        assert json.loads(srv.run_admin("jobs", "--json").stdout)["queued"] == 1

        worker = subprocess.Popen(camroll_cmd("worker", "--workers", "1", "--data", str(srv.data)),
                                  env={**os.environ, **database_env(srv.data)}, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        assert wait_for_jobs(u.session, [asset])[asset].has_thumbnail
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=20)
        assert worker.returncode == 0, out
        assert "1 thread on the embedded queue" in out
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        srv.stop()


def test_motion_photo_video_is_served_with_ranges(user: User, tmp_path: Path) -> None:
    from media import files as media_files
    from support.env import require

    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed: apt-get install ffmpeg")
    clip = media_files.video(tmp_path / "clip.mp4", seconds=1).read_bytes()
    still = media_files.jpeg(tmp_path / "PXL_20240101_123456789.MP.jpg", (640, 480),
                             xmp=media_files.motion_photo_xmp(len(clip))).read_bytes()
    c, s = user.client, user.session
    asset_id = upload(c, still + clip, filename="PXL_20240101_123456789.MP.jpg")
    plain = upload(c, photo(None, color=(1, 2, 3)), filename="plain.jpg")
    details = wait_for_jobs(s, [asset_id, plain])
    d = details[asset_id]
    assert (d.motion_video_offset, d.motion_video_length) == (len(still), len(clip))

    whole = s.get(f"/api/v1/assets/{asset_id}/motion")
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.content == clip and whole.headers["accept-ranges"] == "bytes"
    part = s.get(f"/api/v1/assets/{asset_id}/motion", headers={"Range": "bytes=4-11"})
    assert part.status_code == 206 and part.content == clip[4:12]
    assert part.headers["content-range"] == f"bytes 4-11/{len(clip)}"
    tail = s.get(f"/api/v1/assets/{asset_id}/motion", headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == clip[-100:]
    past = s.get(f"/api/v1/assets/{asset_id}/motion", headers={"Range": f"bytes={len(clip)}-"})
    assert past.status_code == 416
    # The original is unchanged by the refactor: still the whole file, still ranged.
    assert s.get(f"/api/v1/assets/{asset_id}/original", headers={"Range": "bytes=0-1"}).content == still[:2]
    assert_problem(s.get(f"/api/v1/assets/{plain}/motion"), 404, "not_found")
