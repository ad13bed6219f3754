"""The web UI in Debian's Chromium against a real ``camroll serve`` holding real photos and a video.

Each page is screenshotted into docs/screenshots/ (shown in the README)."""

from __future__ import annotations

import hashlib
import zipfile
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx

from camroll import wire

from . import media
from .conftest import DESKTOP, PASSWORD, PHONE, PHONE_SIZE, USER, Library, login, shot

TILE_IDS = "els => els.map(e => Number(e.dataset.id))"


def tile_ids(page: Any) -> list[int]:
    return list(page.eval_on_selector_all("#timeline .tile", TILE_IDS))


def test_login_and_timeline_in_capture_order(page: Any, library: Library) -> None:
    page.goto(f"{library.url}/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("alert").filter(has_text="Wrong username or password").wait_for()
    shot(page, "login")
    login(page, library.url)
    expected = [library.asset_ids[f.path.name] for f in library.fixtures]
    page.wait_for_function(f"() => document.querySelectorAll('#timeline .tile').length >= {len(expected)}")
    assert tile_ids(page)[:len(expected)] == expected
    days = page.eval_on_selector_all("#timeline .day", "els => els.map(e => e.dataset.date)")
    assert days[:3] == ["2024-06-12", "2024-06-11", "2024-06-10"]
    assert page.locator("#count").inner_text() == f"{len(expected)} items"
    # Thumbnails are loaded through the media cookie (an <img> cannot send the bearer header).
    page.wait_for_function(
        "() => [...document.querySelectorAll('#timeline img')].every(i => i.complete && i.naturalWidth > 0)")
    shot(page, "timeline")

    # Keyboard selection: focus a tile, Space selects, Shift+→ extends.
    page.locator("#timeline .tile").first.focus()
    page.keyboard.press("Space")
    page.keyboard.press("Shift+ArrowRight")
    assert page.locator("#selection-count").inner_text() == "2 selected"
    # The selection as a zip, fetched by a plain link (the media cookie authenticates it).
    with page.expect_download() as got:
        page.get_by_role("button", name="Download zip").click()
    with zipfile.ZipFile(got.value.path()) as archive:
        assert sorted(archive.namelist()) == sorted(f.path.name for f in library.fixtures[:2])
    page.keyboard.press("Escape")
    assert page.locator("#selection-bar").is_hidden()

    page.get_by_label("Show").select_option("video")
    page.wait_for_function("() => location.hash === '#/timeline?kind=video'")
    page.locator("#count").filter(has_text="1 item").wait_for()
    assert tile_ids(page) == [library.asset_ids["fireworks.mp4"]]
    page.get_by_label("Show").select_option("")
    page.locator("#count").filter(has_text=f"{len(expected)} items").wait_for()

    page.set_viewport_size(PHONE_SIZE)
    page.evaluate("() => document.activeElement.blur()")
    page.wait_for_timeout(200)
    shot(page, "timeline-phone")
    page.get_by_role("button", name="Menu").click()
    assert page.get_by_role("link", name="Devices").is_visible()
    page.set_viewport_size(DESKTOP)

    page.get_by_role("button", name="Log out").click()
    page.wait_for_selector("main[data-page=login]")
    assert page.evaluate("localStorage.getItem('camroll.token')") is None


def test_viewer_navigates_by_keyboard_and_plays_video(page: Any, library: Library) -> None:
    login(page, library.url)
    order = [f.path.name for f in library.fixtures]
    page.locator("#timeline .tile").first.click()
    viewer = page.locator("#viewer")
    first = library.fixtures[0]
    assert viewer.get_attribute("data-id") == str(library.asset_ids[first.path.name])
    # The info panel: capture time and its source, camera, size, SHA-256, device and path.
    info = page.locator("#viewer-info")
    info.get_by_text(hashlib.sha256(first.path.read_bytes()).hexdigest()).wait_for()
    text = info.inner_text()
    assert "from EXIF" in text and "Pixel 8" in text and PHONE in text
    assert f"/sdcard/DCIM/Camera/{first.path.name}" in text
    page.wait_for_function("() => document.querySelector('#viewer .stage img').naturalWidth > 0")
    shot(page, "viewer")

    page.keyboard.press("ArrowRight")
    assert viewer.get_attribute("data-id") == str(library.asset_ids[order[1]])
    page.keyboard.press("ArrowLeft")
    assert viewer.get_attribute("data-id") == str(library.asset_ids[order[0]])
    for _ in range(order.index("fireworks.mp4")):
        page.keyboard.press("ArrowRight")
    assert viewer.get_attribute("data-id") == str(library.asset_ids["fireworks.mp4"])
    # The video streams from the original with Range requests and actually plays.
    page.wait_for_function("() => document.querySelector('#viewer video').currentTime > 0.5", timeout=15_000)
    assert page.evaluate("document.querySelector('#viewer video').error") is None
    page.keyboard.press("Escape")
    assert viewer.count() == 0

    page.set_viewport_size(PHONE_SIZE)
    page.locator("#timeline .tile").nth(1).click()
    page.wait_for_function("() => document.querySelector('#viewer .stage img').naturalWidth > 0")
    page.get_by_role("button", name="Details").click()
    page.locator("#viewer-info").get_by_text("SHA-256").wait_for()
    shot(page, "viewer-phone")


def test_drag_and_drop_upload_resumes_after_reload(browser: Any, library: Library, tmp_path: Path) -> None:
    big = media.noisy_photo(tmp_path / "IMG_20240501_080000.jpg", datetime(2024, 5, 1, 8, 0), megabytes=6.5)
    body = big.path.read_bytes()
    assert len(body) > 5 * 2**20  # more than one 4 MiB chunk
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(20_000)
    sent: list[tuple[str, dict[str, str]]] = []
    heads: list[int] = []
    page.on("request", lambda r: sent.append((r.method, r.headers)) if wire.UPLOADS_PATH in r.url else None)
    page.on("response", lambda r: heads.append(int(r.headers["upload-offset"]))
            if r.request.method == "HEAD" and wire.UPLOADS_PATH in r.url and r.status == 200 else None)
    # The first chunk goes through; later ones are held unanswered, so the page reloads mid-upload.
    held: list[Any] = []

    def first_chunk_only(route: Any) -> None:
        if route.request.method == "PATCH" and any(m == "PATCH" for m, _ in sent[:-1]):
            held.append(route)
        else:
            route.continue_()

    page.route(f"**{wire.UPLOADS_PATH}*", first_chunk_only)
    page.route("**/__fixture__/big.jpg", lambda route: route.fulfill(body=body, content_type="image/jpeg"))
    drop = """async ([name, modified]) => {
        const blob = await (await fetch('/__fixture__/big.jpg')).blob();
        const dt = new DataTransfer();
        dt.items.add(new File([blob], name, {type: 'image/jpeg', lastModified: modified}));
        const zone = document.getElementById('dropzone');
        zone.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }"""
    modified = 1714550400000
    try:
        login(page, library.url)
        page.get_by_role("link", name="Upload").click()
        with page.expect_response(lambda r: r.request.method == "PATCH" and r.status == 204) as first:
            page.evaluate(drop, [big.path.name, modified])
        offset = int(first.value.headers["upload-offset"])
        assert 0 < offset < len(body)
        page.wait_for_function("() => document.querySelector('#upload-list progress').value > 0")
        # The next PATCH leaves once the page has read the first answer; a loaded machine can take seconds.
        for _ in range(100):
            if held:
                break
            page.wait_for_timeout(100)
        assert held, "the second chunk should be in flight"
        page.unroute(f"**{wire.UPLOADS_PATH}*")
        page.reload()
        page.get_by_text("Unfinished uploads").wait_for()
        page.locator("#unfinished").get_by_text("on the server").wait_for()
        shot(page, "upload")
        sent.clear()
        heads.clear()
        page.evaluate(drop, [big.path.name, modified])
        done = page.locator("#upload-list li.done")
        done.wait_for()
        # Resumed: no new upload was created; the offset the server reported to HEAD was used.
        methods = [m for m, _ in sent]
        assert "POST" not in methods and methods[0] == "HEAD"
        assert heads == [offset]
        patches = [h for m, h in sent if m == "PATCH"]
        assert [int(h["upload-offset"]) for h in patches] == [offset]
        # tus-js-client sent it, every body with its chunk's SHA-256 (which the server checked).
        assert page.evaluate("() => typeof window.tus.Upload") == "function"
        assert all(h["upload-checksum"].startswith("sha256 ") for h in patches)
        assert done.get_attribute("data-resumed-from") == str(offset)
        asset_id = int(done.get_attribute("data-asset-id") or 0)
        assert library.get(f"/assets/{asset_id}")["sha256"] == hashlib.sha256(body).hexdigest()
        assert page.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('camroll.tus:'))") == []
        assert page.locator("#unfinished li").count() == 0
        shot(page, "upload-done")
        page.get_by_role("link", name="Photos").click()
        page.locator(f"#timeline .tile[data-id='{asset_id}']").wait_for()
    finally:
        context.close()


def test_devices_page_shows_a_blocked_device(page: Any, library: Library) -> None:
    beat = wire.Heartbeat(
        agent_version="0.1.0", state="paused", headline="Paused: battery at 14%",
        blocker_code="battery_low",
        blocker="Battery at 14% is below the 20% this device needs to back up; plug it in or lower policy.min_battery.",
        pending_files=42, pending_bytes=380_000_000, backed_up_files=1310, failed_files=1,
        last_success_at=datetime(2024, 6, 12, 20, 0, tzinfo=UTC),
        problems=[wire.DeviceProblem(path="/sdcard/DCIM/Camera/PXL_20240612_183512.jpg", state="failed",
                                     reason="The file could not be read: permission denied.",
                                     fix="Give camroll access to photos and videos in Android's settings.",
                                     attempts=3)])
    r = httpx.put(f"{library.url}/api/v1/devices/current/heartbeat", content=beat.model_dump_json(),
                  headers={**library.headers(library.device_token), "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    login(page, library.url)
    page.get_by_role("link", name="Devices").click()
    card = page.locator(f"#devices [data-device=\"{PHONE}\"]")
    card.get_by_text("Battery at 14% is below the 20%").wait_for()
    assert card.get_attribute("data-state") == "paused"
    assert "42 files" in card.inner_text()
    # Uploads per day: 14 columns, today's holding the fixtures this device uploaded.
    assert card.locator("svg.col-chart rect").count() == 14
    assert f"{len(library.fixtures)} files uploaded in the last 14 days" in card.inner_text()
    shot(page, "devices")
    page.get_by_role("link", name="Problems", exact=True).first.click()
    page.get_by_text("PXL_20240612_183512.jpg").wait_for()
    assert "permission denied" in page.locator("main").inner_text()
    shot(page, "problems")
    page.set_viewport_size(PHONE_SIZE)
    page.get_by_role("button", name="Menu").click()
    page.get_by_role("link", name="Devices").click()
    card.get_by_text("Battery at 14%").first.wait_for()
    shot(page, "devices-phone")


def test_trash_restore_storage_settings(page: Any, library: Library) -> None:
    login(page, library.url)
    victim = library.asset_ids["market.jpg"]
    tile = page.locator(f"#timeline .tile[data-id='{victim}']")
    tile.locator(".check").click()
    page.get_by_role("button", name="Move to trash").click()
    tile.wait_for(state="detached")
    page.get_by_role("link", name="Trash").click()
    trashed = page.locator(f"#trash .tile[data-id='{victim}']")
    trashed.click()
    shot(page, "trash")
    page.get_by_role("button", name="Restore 1").click()
    trashed.wait_for(state="detached")
    page.get_by_role("link", name="Photos").click()
    page.locator(f"#timeline .tile[data-id='{victim}']").wait_for()

    page.get_by_role("link", name="Storage").click()
    page.get_by_role("img", name="Space by kind").wait_for()
    assert "Photos:" in page.locator("#storage").inner_text()
    shot(page, "storage")

    page.get_by_role("link", name="Settings").click()
    # A service whose host is fixed (no address to look up: the server checks where alerts may go).
    page.get_by_label("New alert URL").fill("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/987654")
    page.get_by_role("button", name="Add").click()
    page.locator("#notify-list").get_by_text("tgram://").wait_for()
    page.locator("#token-list").get_by_text(PHONE).wait_for()
    shot(page, "settings", full_page=True)
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password (8 characters or more)").fill("a brand new password")
    page.get_by_label("New password again").fill("a brand new password")
    page.get_by_role("button", name="Change password").click()
    page.get_by_text("Password changed.").wait_for()
    assert library.server.login(USER, "a brand new password").startswith("crs_")
    # Back to the old password for the other tests of this module.
    r = httpx.post(f"{library.url}/api/v1/me/password", json={"old": "a brand new password", "new": PASSWORD},
                   headers=library.headers(library.server.login(USER, "a brand new password")))
    assert r.status_code == 204


def test_timeline_keeps_the_page_small_on_a_large_library(page: Any, library: Library) -> None:
    """50,000 items paged in by cursor: the DOM holds only the days near the viewport.

    The timeline pages (1,000 items each) are synthesised by the test, in the shape of the real API's
    pages: uploading 50,000 files would take minutes."""
    total, per_page = 50_000, 1000
    start = datetime(2024, 6, 30, 12, tzinfo=UTC)

    def timeline(route: Any) -> None:
        query = route.request.url.split("?", 1)[1]
        cursor = int(dict(p.split("=", 1) for p in query.split("&")).get("cursor", "0"))
        days: list[dict[str, Any]] = []
        for i in range(cursor, min(total, cursor + per_page)):
            taken = start - timedelta(hours=3 * i)
            item = {"id": i + 1, "kind": "image", "mime": "image/jpeg", "filename": f"IMG_{i}.jpg", "size": 1,
                    "capture_time": taken.isoformat(), "capture_time_source": "exif", "has_thumbnail": False}
            if not days or days[-1]["date"] != taken.date().isoformat():
                days.append({"date": taken.date().isoformat(), "items": []})
            days[-1]["items"].append(item)
        nxt = str(cursor + per_page) if cursor + per_page < total else None
        route.fulfill(json={"days": days, "next_cursor": nxt, "total": total})

    page.route("**/api/v1/timeline?*", timeline)
    login(page, library.url)
    page.wait_for_function("() => Number(document.querySelector('#timeline').dataset.loaded) >= 1000")
    for _ in range(400):
        if page.evaluate("() => Number(document.querySelector('#timeline').dataset.loaded)") >= total:
            break
        page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_timeout(10)
    assert page.evaluate("() => Number(document.querySelector('#timeline').dataset.loaded)") == total
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_timeout(100)
    tiles = page.locator("#timeline .tile")
    assert 0 < tiles.count() < 300
    assert page.locator("#timeline .tile").last.get_attribute("data-id") == str(total)
    # Scrolling back to the middle builds that day; its tiles sit where the computed layout put them.
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight / 2)")
    page.wait_for_timeout(100)
    ids = [int(x) for x in page.eval_on_selector_all("#timeline .tile", TILE_IDS)]
    assert ids == sorted(ids) and 20_000 < ids[0] < 30_000
    tops = page.eval_on_selector_all("#timeline .row", "els => els.map(e => [e.offsetTop, e.offsetHeight])")
    assert all(a[0] + a[1] <= b[0] + 1 for a, b in pairwise(tops))  # no overlaps
