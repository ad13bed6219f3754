"""The devices page and the Problems page show what a real agent counted (issue 8, defects 20 and 21): a
``camroll backup`` pass over a folder with an unreadable photo and folder, an excluded PNG, hidden files
and an Android trash file reports a heartbeat; the device card is not a green "Up to date", and its numbers
are the ones ``camroll status`` prints on the device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scenarios.conftest import ScenarioAgent
from scenarios.machine import FakeMachine
from scenarios.mixed import make_folder
from support.server import ServerProcess

from .conftest import DESKTOP, PASSWORD, USER, login


def test_device_card_and_problems_page_agree_with_the_agent(browser: Any, server: ServerProcess,
                                                            tmp_path: Path) -> None:
    server.add_user(USER, PASSWORD)
    agent = ScenarioAgent(home=tmp_path / "agent-home", server=server, password=PASSWORD, user=USER,
                          machine=FakeMachine(tmp_path))
    agent.login()
    photos = tmp_path / "photos"
    photos.mkdir()
    agent.run("folder", "add", str(photos))
    agent.run("settings", "set", "exclude", "*.png")
    locked, locked_dir = make_folder(photos)
    try:
        agent.run("backup", check=False)
        tally = agent.json("status")["tally"]
    finally:
        locked.chmod(0o644)
        locked_dir.chmod(0o755)
    failing = tally["failed"] + tally["unreadable"]
    assert failing == 2 and tally["left_out"] == 4, tally

    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        login(page, server.url)
        page.get_by_role("link", name="Devices").click()
        card = page.locator('#devices [data-device="e2e-device"]')
        card.wait_for()
        assert card.get_attribute("data-state") == "idle"
        assert "tone-bad" in (card.get_attribute("class") or "")
        pill = card.locator(".pill").first.inner_text()
        assert pill == f"{failing} files failing", pill
        facts = dict(zip(card.locator("dt").all_inner_texts(), card.locator("dd").all_inner_texts(), strict=True))
        assert facts["Backed up"] == f"{tally['backed_up']} files", facts
        assert facts["Failed"] == f"{failing} files (see Problems)", facts
        assert facts["Skipped"] == str(tally["skipped"]), facts
        assert facts["Left out"] == f"{tally['left_out']} files", facts
        assert "Up to date" not in card.inner_text()

        page.get_by_role("link", name="Problems", exact=True).first.click()
        section = page.locator('section[data-device="e2e-device"]')
        section.get_by_text("IMG_0004.jpg").wait_for()
        assert f"· {failing} files" in section.locator("h2").inner_text()
        rows = section.locator("tbody tr")
        assert rows.count() == failing
        states = sorted(rows.nth(i).locator(".pill").inner_text() for i in range(failing))
        assert states == ["failed", "unreadable"]
        assert section.locator(".pill.bad").count() == failing
    finally:
        context.close()
