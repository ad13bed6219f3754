"""Browser-test fixtures: Debian's Chromium driven by Playwright, a real ``camroll serve`` holding a
small library of real photos and a video uploaded through the API, and a logged-in page."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.server import ServerProcess

from camroll import wire

from . import media

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
USER, PASSWORD = "alice", "correct horse battery"
PHONE = "Alice's Pixel"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE_SIZE = {"width": 390, "height": 844}


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)."
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _require_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed: pip install -e '.[test]'.")
        pytest.skip("playwright is not installed: pip install -e '.[test]'.")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Library:
    """A running server with one user, one device and uploaded media, newest first in ``fixtures``."""

    server: ServerProcess
    session: str
    device_token: str
    fixtures: list[media.Fixture]
    asset_ids: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.session}"}

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.url}/api/v1{path}", headers=self.headers(), timeout=10)
        r.raise_for_status()
        return r.json()


def upload(url: str, token: str, path: Path, device_path: str | None = None) -> int:
    """One creation-with-upload request, as the agent sends a small file; returns the asset id."""
    body = path.read_bytes()
    digest = hashlib.sha256(body)
    meta = {wire.META_FILENAME: path.name, wire.META_SHA256: digest.hexdigest(),
            wire.META_MTIME_NS: str(path.stat().st_mtime_ns), wire.META_PATH: device_path or str(path)}
    r = httpx.post(f"{url}{wire.UPLOADS_PATH}", content=body, timeout=30, headers={
        "Authorization": f"Bearer {token}", "Tus-Resumable": wire.TUS_VERSION, "Upload-Length": str(len(body)),
        "Upload-Metadata": wire.encode_upload_metadata(meta), "Content-Type": "application/offset+octet-stream",
        "Upload-Checksum": "sha256 " + base64.b64encode(digest.digest()).decode()})
    assert r.status_code == 201, r.text
    return int(r.headers[wire.ASSET_ID_HEADER])


def make_fixtures(folder: Path) -> list[media.Fixture]:
    folder.mkdir(parents=True, exist_ok=True)
    shots = [
        ("harbour.jpg", datetime(2024, 6, 12, 18, 30), ((250, 140, 90), (60, 80, 140))),
        ("morning-swim.jpg", datetime(2024, 6, 12, 9, 15), ((120, 190, 240), (30, 110, 160))),
        ("market.jpg", datetime(2024, 6, 11, 12, 5), ((240, 220, 160), (150, 110, 60))),
        ("ridge.jpg", datetime(2024, 6, 10, 7, 40), ((200, 210, 235), (70, 120, 80))),
        ("garden.jpg", datetime(2024, 5, 25, 15, 0), ((180, 220, 200), (60, 140, 70))),
        ("lake.jpg", datetime(2024, 5, 24, 11, 20), ((170, 200, 250), (40, 90, 150))),
    ]
    out = [media.photo(folder / name, taken, colors) for name, taken, colors in shots]
    out.append(media.video(folder / "fireworks.mp4", datetime(2024, 6, 11, 21, 0)))
    return sorted(out, key=lambda f: f.taken, reverse=True)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    root = tmp_path_factory.mktemp("web")
    srv = ServerProcess(data=root / "server-data")
    srv.start()
    try:
        srv.add_user(USER, PASSWORD, quota="2GB")
        device = srv.device_token(USER, PASSWORD, device=PHONE)
        lib = Library(srv, srv.login(USER, PASSWORD), device, make_fixtures(root / "DCIM"))
        # Uploaded out of capture order, so the timeline's order comes from capture times, not upload order.
        for fx in sorted(lib.fixtures, key=lambda f: f.path.name):
            lib.asset_ids[fx.path.name] = upload(srv.url, device, fx.path, f"/sdcard/DCIM/Camera/{fx.path.name}")
        yield lib
    finally:
        srv.stop()


@pytest.fixture
def page(browser: Any, library: Library) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    try:
        yield pg
    finally:
        context.close()


def login(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/")
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("main[data-page=timeline]")


def shot(page: Any, name: str, *, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
