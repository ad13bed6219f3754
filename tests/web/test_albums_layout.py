"""Albums in the browser, the packed timeline of a sparse library, a tall screenshot in the viewer, and
axe-core (the accessibility checker) on every page: no violations."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw
from support.server import ServerProcess

from . import media
from .conftest import DESKTOP, PASSWORD, PHONE, PHONE_SIZE, USER, Library, login, shot, upload

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
DAYS = 24  # one photo a day, three days apart: the library the issue calls sparse


def _screenshot_png(path: Path, taken: datetime) -> Path:
    """A phone screenshot: 1170x2532, a PNG, with a bar at the very top and bottom to see both ends."""
    img = Image.new("RGB", (1170, 2532), (235, 238, 245))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, 1170, 120], fill=(37, 99, 235))
    draw.rectangle([0, 2412, 1170, 2532], fill=(185, 28, 28))
    for y in range(200, 2400, 160):
        draw.rounded_rectangle([60, y, 1110, y + 120], radius=24, fill=(255, 255, 255))
    img.save(path, "PNG")
    os.utime(path, (taken.timestamp(), taken.timestamp()))
    return path


@pytest.fixture(scope="module")
def sparse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    root = tmp_path_factory.mktemp("sparse")
    srv = ServerProcess(data=root / "server-data")
    srv.start()
    try:
        srv.add_user(USER, PASSWORD)
        device = srv.device_token(USER, PASSWORD, device=PHONE)
        start = datetime(2024, 9, 30, 10, 0)
        fixtures = [media.photo(root / f"day{i:02}.jpg", start - timedelta(days=3 * i),
                                ((40 + 8 * i, 120, 200 - 6 * i), (30, 80 + 4 * i, 60)), size=(480, 360))
                    for i in range(DAYS)]
        lib = Library(srv, srv.login(USER, PASSWORD), device, fixtures)
        for fx in fixtures:
            lib.asset_ids[fx.path.name] = upload(srv.url, device, fx.path, f"/sdcard/DCIM/{fx.path.name}")
        tall = _screenshot_png(root / "Screenshot_20241001.png", start + timedelta(days=1))
        lib.asset_ids[tall.name] = upload(srv.url, device, tall, f"/sdcard/Pictures/Screenshots/{tall.name}")
        _wait_for_thumbnails(lib)
        yield lib
    finally:
        srv.stop()


def _wait_for_thumbnails(lib: Library) -> None:
    for _ in range(600):
        items = [i for d in lib.get("/timeline?limit=1000")["days"] for i in d["items"]]
        if len(items) == len(lib.asset_ids) and all(i["has_thumbnail"] for i in items):
            return
        httpx.get(f"{lib.url}/healthz", timeout=5)  # a bounded wait: 600 rounds of one request each
    raise AssertionError("thumbnails were not made")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (every rule axe runs by default).  The script comes
    from the page's own origin (a route the test answers), so the page's strict CSP stays as it is."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.route("**/__axe__/axe.min.js", lambda route: route.fulfill(path=str(AXE), content_type="text/javascript"))
        origin = page.evaluate("() => location.origin")
        page.add_script_tag(url=f"{origin}/__axe__/axe.min.js")
    result = page.evaluate("async () => (await axe.run(document)).violations.map(v => ({id: v.id, impact: v.impact, "
                           "nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': ' + n.failureSummary)}))")
    return list(result)


def assert_accessible(page: Any, where: str) -> None:
    found = axe_violations(page)
    assert found == [], f"axe-core on {where}: " + "; ".join(f"{v['id']} ({v['impact']}): {v['nodes']}" for v in found)


def _boxes(page: Any, selector: str) -> list[dict[str, float]]:
    return list(page.eval_on_selector_all(selector, "els => els.map(e => { const r = e.getBoundingClientRect(); "
                                                    "return {x: r.x, y: r.y, w: r.width, h: r.height}; })"))


def test_sparse_days_share_rows_and_fill_the_screen(browser: Any, sparse: Library) -> None:
    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        login(page, sparse.url)
        page.wait_for_function(f"() => Number(document.querySelector('#timeline').dataset.loaded) === {DAYS + 1}")
        page.wait_for_function("() => [...document.querySelectorAll('#timeline .tile img')].slice(0, 12)"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        rows = _boxes(page, "#timeline .row")
        list_box = _boxes(page, "#timeline")[0]
        days_per_row = page.eval_on_selector_all("#timeline .row",
                                                 "els => els.map(e => e.querySelectorAll('.day').length)")
        # Single-photo days sit side by side: several per row, each row filled to near its width.
        assert len(days_per_row) < DAYS / 3, days_per_row
        assert min(days_per_row[:-1]) >= 4, days_per_row
        for row in page.eval_on_selector_all("#timeline .row", "els => els.map(e => [...e.querySelectorAll('.day')]"
                                                               ".map(d => { const r = d.getBoundingClientRect(); "
                                                               "return [r.x, r.y, r.width]; }))")[:-1]:
            assert len({round(y) for _, y, _ in row}) == 1  # one row: the same top
            assert all(a[0] + a[2] <= b[0] for a, b in itertools.pairwise(row))  # no overlaps
            assert row[-1][0] + row[-1][2] >= list_box["x"] + 0.7 * list_box["w"]
        assert all(r["h"] < 320 for r in rows)
        # The first screen shows far more photos than the one-day-a-row layout did (3 or 4).
        on_screen = [b for b in _boxes(page, "#timeline .tile") if b["y"] + b["h"] <= DESKTOP["height"]]
        assert len(on_screen) >= 12, len(on_screen)
        shot(page, "timeline-sparse")
        assert_accessible(page, "the packed timeline")
        # On a phone the same days pack three or four to a row, and nothing runs off the side.
        page.set_viewport_size(PHONE_SIZE)
        # The rows are laid out again for the new width after the resize event (the desktop rows, packed
        # too, are still there until then): wait for the new layout, which must not run off the side.
        page.wait_for_function(f"() => document.scrollingElement.scrollWidth <= {PHONE_SIZE['width']}")
        page.wait_for_function("() => document.querySelector('#timeline .row .day.packed + .day.packed') !== null")
        phone_rows = page.eval_on_selector_all("#timeline .row",
                                               "els => els.map(e => e.querySelectorAll('.day').length)")
        assert max(phone_rows) >= 3, phone_rows
        shot(page, "timeline-sparse-phone")
        assert_accessible(page, "the packed timeline on a phone")
    finally:
        context.close()


def test_viewer_fits_a_tall_phone_screenshot(browser: Any, sparse: Library) -> None:
    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        login(page, sparse.url)
        tile = page.locator(f"#timeline .tile[data-id='{sparse.asset_ids['Screenshot_20241001.png']}']")
        tile.click()
        img = page.locator("#viewer .stage img")
        img.wait_for()
        page.wait_for_function("() => { const i = document.querySelector('#viewer .stage img'); "
                               "return i && !i.hidden && i.complete && i.naturalHeight > 0; }")
        box = _boxes(page, "#viewer .stage img")[0]
        stage = _boxes(page, "#viewer .stage")[0]
        natural = page.evaluate("() => { const i = document.querySelector('#viewer .stage img'); "
                                "return [i.naturalWidth, i.naturalHeight]; }")
        assert natural[1] > DESKTOP["height"]  # the preview is taller than the window: it must be scaled down
        assert box["y"] >= stage["y"] - 0.5 and box["y"] + box["h"] <= stage["y"] + stage["h"] + 0.5
        assert box["y"] + box["h"] <= DESKTOP["height"] and box["x"] >= 0 and box["x"] + box["w"] <= DESKTOP["width"]
        assert box["h"] >= stage["h"] - 1  # as tall as the room allows, not shrunk further
        assert abs(box["w"] / box["h"] - 1170 / 2532) < 0.01  # and not squashed
        shot(page, "viewer-tall-screenshot")
        assert_accessible(page, "the viewer")
    finally:
        context.close()


def test_albums_from_a_selection_rename_cover_remove_delete(browser: Any, sparse: Library) -> None:
    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(15_000)
    answers: list[str] = []
    page.on("dialog", lambda d: d.accept(answers.pop(0)) if d.type == "prompt" else d.accept())
    ids = [sparse.asset_ids[f"day{i:02}.jpg"] for i in (0, 1, 2)]
    library_size = sparse.get("/timeline")["total"]
    try:
        login(page, sparse.url)
        for i in ids:
            page.locator(f"#timeline .tile[data-id='{i}'] .check").click()
        page.get_by_role("button", name="Add to album").click()
        page.get_by_label("New album's name").fill("Autumn walks")
        assert_accessible(page, "the add-to-album dialog")
        page.locator("#album-add").click()
        page.get_by_text("Added to Autumn walks (3 items)").wait_for()

        page.get_by_role("link", name="Albums").click()
        card = page.locator("#albums .album-card").filter(has_text="Autumn walks")
        card.get_by_text("3 items").wait_for()
        page.wait_for_function("() => [...document.querySelectorAll('#albums img')]"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        shot(page, "albums")
        assert_accessible(page, "the albums page")
        card.click()
        page.wait_for_selector("main[data-page=album]")
        page.wait_for_function("() => document.querySelectorAll('#timeline .tile').length === 3")
        assert_accessible(page, "an album")

        # Remove one (it stays in the library), make another the cover, rename, then delete the album.
        page.locator(f"#timeline .tile[data-id='{ids[0]}'] .check").click()
        page.get_by_role("button", name="Remove from album").click()
        page.wait_for_function("() => document.querySelectorAll('#timeline .tile').length === 2")
        page.locator(f"#timeline .tile[data-id='{ids[2]}'] .check").click()
        page.get_by_role("button", name="Set as cover").click()
        page.get_by_text("This is the album's cover now.").wait_for()
        answers.append("Autumn, renamed")
        page.get_by_role("button", name="Rename").click()
        page.locator("#album-title").filter(has_text="Autumn, renamed").wait_for()
        album = next(a for a in sparse.get("/albums") if a["name"] == "Autumn, renamed")
        assert (album["item_count"], album["cover_asset_id"], album["cover_chosen"]) == (2, ids[2], True)
        shot(page, "album")
        page.get_by_role("button", name="Delete album").click()
        page.wait_for_selector("main[data-page=albums]")
        assert sparse.get("/albums") == []
        assert sparse.get("/timeline")["total"] == library_size  # no photo was deleted
    finally:
        context.close()


def test_every_page_passes_axe(browser: Any, sparse: Library) -> None:
    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{sparse.url}/")
        page.wait_for_selector("main[data-page=login]")
        assert_accessible(page, "the login page")
        login(page, sparse.url)
        page.wait_for_function("() => document.querySelectorAll('#timeline .tile').length > 0")
        page.locator("#timeline .tile .check").first.click()
        assert_accessible(page, "the timeline with a selection")
        for name in ("upload", "devices", "problems", "storage", "trash", "settings", "albums"):
            page.goto(f"{sparse.url}/#/{name}")
            page.wait_for_selector(f"main[data-page={name}]")
            page.wait_for_load_state("networkidle")
            assert_accessible(page, f"#/{name}")
        for scheme in ("dark",):
            page.emulate_media(color_scheme=scheme)
            page.goto(f"{sparse.url}/#/timeline")
            page.wait_for_function("() => document.querySelectorAll('#timeline .tile').length > 0")
            assert_accessible(page, f"the timeline ({scheme})")
    finally:
        context.close()


def test_a_small_file_goes_with_its_creation_request(browser: Any, sparse: Library, tmp_path: Path) -> None:
    """tus-js-client sends a file that fits in one chunk (and in the room the check reported) with the
    creating POST, its SHA-256 in Upload-Checksum; the server verifies it and answers with the asset."""
    small = media.photo(tmp_path / "IMG_20240301_120000.jpg", datetime(2024, 3, 1, 12, 0),
                        ((10, 20, 30), (200, 100, 50)), size=(320, 240))
    body = small.path.read_bytes()
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    sent: list[tuple[str, dict[str, str]]] = []
    page.on("request", lambda r: sent.append((r.method, r.headers)) if "/api/v1/uploads" in r.url else None)
    page.route("**/__fixture__/small.jpg", lambda route: route.fulfill(body=body, content_type="image/jpeg"))
    try:
        login(page, sparse.url)
        page.get_by_role("link", name="Upload").click()
        page.wait_for_selector("main[data-page=upload] #dropzone")
        page.evaluate("""async (name) => {
            const blob = await (await fetch('/__fixture__/small.jpg')).blob();
            const dt = new DataTransfer();
            dt.items.add(new File([blob], name, {type: 'image/jpeg', lastModified: 1709294400000}));
            document.getElementById('dropzone').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true,
                                                                                    cancelable: true}));
        }""", small.path.name)
        done = page.locator("#upload-list li.done")
        done.wait_for()
        assert [m for m, _ in sent] == ["POST"]
        post = sent[0][1]
        assert post["upload-checksum"].startswith("sha256 ") and post["upload-length"] == str(len(body))
        asset_id = int(done.get_attribute("data-asset-id") or 0)
        assert sparse.get(f"/assets/{asset_id}")["sha256"] == hashlib.sha256(body).hexdigest()
        assert page.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('camroll.tus:'))") == []
        assert_accessible(page, "the upload page after an upload")
    finally:
        context.close()
