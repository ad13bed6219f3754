"""The viewer plays a Live Photo's MOV and a Motion Photo's embedded video over the still, and shows a
HEIC through its preview (with a placeholder while that preview is still being made)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from media import files as media_files
from support.env import require
from support.server import ServerProcess

from .conftest import PASSWORD, PHONE, USER, Library, login, upload


def _when(taken: datetime) -> Any:
    return media_files.exif(when=taken.strftime("%Y:%m:%d %H:%M:%S"))


@pytest.fixture(scope="module")
def motion_library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed: apt-get install ffmpeg")
    root = tmp_path_factory.mktemp("web-motion")
    clip = media_files.video(root / "clip.mp4", seconds=2).read_bytes()
    motion = media_files.jpeg(root / "PXL_20240102_101010000.MP.jpg", (640, 480), ex=_when(datetime(2024, 1, 2, 10)),
                              xmp=media_files.motion_photo_xmp(len(clip)))
    with open(motion, "ab") as f:
        f.write(clip)
    live = media_files.jpeg(root / "IMG_0003.JPG", (640, 480),
                            ex=media_files.exif(when="2024:01:03 10:00:00", content_id="CID-VIEWER-1"))
    mov = media_files.video(root / "IMG_0003.MOV", seconds=1,
                            metadata={"com.apple.quicktime.content.identifier": "CID-VIEWER-1"})
    heic = media_files.heic(root / "IMG_0002.HEIC", (640, 480), ex=_when(datetime(2024, 1, 1, 10)))
    srv = ServerProcess(data=root / "server-data")
    srv.start()
    try:
        srv.add_user(USER, PASSWORD, quota="1GB")
        device = srv.device_token(USER, PASSWORD, device=PHONE)
        lib = Library(srv, srv.login(USER, PASSWORD), device, [])
        for path in (mov, live, motion, heic):
            lib.asset_ids[path.name] = upload(srv.url, device, path)
        deadline = time.monotonic() + 60
        for asset_id in lib.asset_ids.values():
            while not (d := lib.get(f"/assets/{asset_id}"))["has_thumbnail"] and time.monotonic() < deadline:
                time.sleep(0.2)
            assert d["has_thumbnail"], d
        yield lib
    finally:
        srv.stop()


def test_live_and_motion_photos_play_and_heic_shows_its_preview(browser: Any, motion_library: Library) -> None:
    lib = motion_library
    motion_id, heic_id = lib.asset_ids["PXL_20240102_101010000.MP.jpg"], lib.asset_ids["IMG_0002.HEIC"]
    assert lib.get(f"/assets/{motion_id}")["motion_video_length"] > 0
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        login(page, lib.url)
        live_id, mov_id = lib.asset_ids["IMG_0003.JPG"], lib.asset_ids["IMG_0003.MOV"]
        assert lib.get(f"/assets/{live_id}")["live_video_id"] == mov_id
        page.locator(f"#timeline .tile[data-id='{live_id}']").click()
        page.get_by_role("button", name="Play live").click()
        page.wait_for_function("() => document.querySelector('#viewer video.motion')?.currentTime > 0.2")
        assert page.evaluate("document.querySelector('#viewer video.motion').src").endswith(f"/{mov_id}/original")
        page.keyboard.press("ArrowRight")
        assert page.locator("#viewer video.motion").count() == 0

        assert page.locator("#viewer").get_attribute("data-id") == str(motion_id)
        play = page.get_by_role("button", name="Play motion")
        play.focus()
        page.keyboard.press("Enter")  # keyboard accessible, not only clickable
        page.wait_for_function("() => document.querySelector('#viewer video.motion')?.currentTime > 0.3")
        assert page.evaluate("document.querySelector('#viewer video.motion').error") is None
        assert page.evaluate("document.querySelector('#viewer video.motion').src").endswith(f"/{motion_id}/motion")
        # At the end the still comes back and the button can play it again.
        page.wait_for_selector("#viewer video.motion", state="detached", timeout=8_000)
        assert page.locator("#viewer .stage img").is_visible() and play.is_enabled()

        # The HEIC's first preview request is answered 404, as while the thumbnail job is running.
        misses: list[str] = []

        def not_yet(route: Any) -> None:
            misses.append(route.request.url)
            route.fulfill(status=404, body="")

        page.route(f"**/api/v1/assets/{heic_id}/thumbnail*", not_yet)
        page.keyboard.press("ArrowRight")
        assert page.locator("#viewer").get_attribute("data-id") == str(heic_id)
        page.get_by_text("Preview being made…").wait_for()
        assert not page.get_by_role("button", name="Play motion").is_visible()
        page.unroute(f"**/api/v1/assets/{heic_id}/thumbnail*")
        page.wait_for_function("() => document.querySelector('#viewer .stage img')?.naturalWidth > 0")
        assert misses and "size=preview" in misses[0]
        assert "/thumbnail?size=preview" in page.evaluate("document.querySelector('#viewer .stage img').src")
        assert page.get_by_text("Preview being made…").count() == 0
        assert page.locator("#viewer a[download]").get_attribute("href") == f"/api/v1/assets/{heic_id}/original"
        r = httpx.get(f"{lib.url}/api/v1/assets/{heic_id}/original", headers=lib.headers(), timeout=10)
        assert r.status_code == 200 and r.content[4:8] == b"ftyp"
    finally:
        context.close()
