"""One folder with every kind of file that is not simply backed up, and every view of it: the status
headline and count rows, the pass summary, ``problems`` (with and without ``--all``), and the heartbeat the
server shows on its devices and Problems pages must tell the same numbers (issue 8, defect 21)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import ScenarioAgent
from .mixed import LEFT_OUT, make_folder


def _device(agent: ScenarioAgent) -> dict[str, Any]:
    r = agent.api("GET", "/devices")
    r.raise_for_status()
    (d,) = [d for d in r.json() if d["name"] == "e2e-device"]
    return dict(d["health"])


def test_headline_rows_summary_problems_and_heartbeat_agree(agent: ScenarioAgent, photos: Path) -> None:
    agent.run("settings", "set", "exclude", "*.png")
    locked, locked_dir = make_folder(photos)
    try:
        r = agent.run("backup", "--json", check=False)
        assert r.returncode == 1, r.stdout + r.stderr  # one file failed
        s = json.loads(r.stdout)
        second = agent.run("backup", check=False).stdout
        status = agent.json("status")
        text = agent.run("status", check=False).stdout
        problems = agent.json("problems")
        every = agent.json("problems", "--all")
        trashed = agent.json("why", str(photos / ".trashed-1733000000-IMG_0009.jpg"))
        health = _device(agent)
        doctor = agent.json("doctor")
    finally:
        locked.chmod(0o644)
        locked_dir.chmod(0o755)

    # The pass: every regular file it saw is counted somewhere, the ones left out by choice included.
    assert s["files_scanned"] == 3 + 1 + 1 + 3, s  # good, locked, excluded PNG, hidden and trashed
    assert (s["files_uploaded"], s["files_failed"], s["files_skipped"], s["files_left_out"]) == (3, 1, 0, 4), s
    t = s["totals"]
    assert (t["backed_up"], t["failed"], t["unreadable"], t["skipped"], t["left_out"]) == (3, 1, 1, 0, 4), t
    # A later pass that has nothing new still says what is not backed up (not just "0 skipped").
    assert "not backed up: 1 failed, 1 could not be read" in second, second
    assert "4 left out by choice" in second, second

    # status: the same tally, in the headline, the JSON and the count rows.
    assert status["tally"] == t
    assert status["problems"] == 2
    assert status["headline"].startswith("1 file failed: cannot read"), status["headline"]
    rows = {line.split("  ")[1].strip(): line for line in text.splitlines()
            if line.startswith("  ") and line.split()[0] in ("backed", "failed", "could", "left")}
    assert "3 files" in rows["backed up"] and "1 file " in rows["failed"] + " ", text
    assert "1 file" in rows["could not be read"] and "4 files" in rows["left out"], text
    assert "1 files" not in text and "2 files not backed up" in text, text

    # problems lists what status counts; --all adds the files left out by choice, each with its reason.
    assert sorted(p["state"] for p in problems) == ["failed", "unreadable"], problems
    assert {Path(p["path"]).name for p in problems} == {"IMG_0004.jpg", "private"}
    left_out = {Path(p["path"]).name: p["code"] for p in every if p not in problems}
    assert left_out == LEFT_OUT, every
    assert trashed["state"] == "skipped" and trashed["code"] == "trashed" and "trash" in trashed["reason"]

    # The heartbeat, so the devices page and the Problems page: the same numbers and files.
    assert health["state"] == "idle"
    assert (health["backed_up_files"], health["failed_files"], health["skipped_files"],
            health["left_out_files"]) == (3, 2, 0, 4), health
    assert sorted((Path(p["path"]).name, p["state"]) for p in health["problems"]) == [
        ("IMG_0004.jpg", "failed"), ("private", "unreadable")]

    # doctor counts the same files as failed, and none as skipped.
    (check,) = [c for c in doctor["checks"] if c["name"] == "problem_files"]
    assert check["status"] == "warn" and check["message"].startswith("2 files failed"), check
    assert "skipped" not in check["message"], check
