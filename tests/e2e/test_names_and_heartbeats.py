"""End to end through a real ``camroll serve``: a file whose name is not UTF-8 is backed up with its exact
bytes kept (issue 8, defect 17), and every ``camroll backup`` pass reports to the server (defect 20)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path

from support.media import jpeg_bytes, write
from support.server import camroll_cmd

from .helpers import Agent, sha_of_file


def _run_bytes(agent: Agent, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    """The CLI with raw bytes in argv, as a shell passes a latin-1 file name (no text decoding here)."""
    cmd: list[str | bytes] = [*camroll_cmd(), *args]
    return subprocess.run(cmd, env={**os.environ, **agent.env}, capture_output=True, timeout=120)


def test_a_latin1_name_is_backed_up_and_its_bytes_come_back_from_the_server(agent: Agent, photos: Path) -> None:
    write(photos / "ok.jpg", jpeg_bytes(1))
    raw = os.fsencode(photos) + b"/IMG_caf\xe9.jpg"
    data = jpeg_bytes(2)
    with open(raw, "wb") as f:
        f.write(data)
    shown = f"{photos}/IMG_caf\\xe9.jpg"

    s = agent.backup()
    assert s["ok"] and s["files_uploaded"] == 2 and s["problems"] == [], s
    asset = agent.server_has(data)
    assert asset is not None and agent.api("GET", f"/assets/{asset}/original").content == data
    assert sha_of_file(Path(os.fsdecode(raw))) == agent.api("GET", f"/assets/{asset}").json()["sha256"]

    # The asset details carry the exact name bytes for a restore, and a readable path.
    detail = agent.api("GET", f"/assets/{asset}").json()
    (copy,) = detail["files"]
    assert base64.b64decode(copy["path_raw"]) == raw
    assert copy["path"] == shown and copy["filename"] == "IMG_caf\\xe9.jpg"
    ok = agent.api("GET", f"/assets/{agent.server_has(jpeg_bytes(1))}").json()
    assert ok["files"][0]["path_raw"] is None  # UTF-8 names need nothing extra

    # why, status and problems read it, never crash, and show it readably.
    why = _run_bytes(agent, "why", raw)
    assert why.returncode == 0, why.stderr.decode(errors="replace")
    assert shown.encode() in why.stdout and b"backed up" in why.stdout
    story = json.loads(_run_bytes(agent, "why", "--json", raw).stdout)
    assert story["state"] == "backed up" and story["asset_id"] == asset
    assert base64.b64decode(story["path_raw"]) == raw
    status = agent.run("status")
    assert "All 2 files backed up" in status.stdout, status.stdout
    assert agent.run("problems").returncode == 0

    # The same bytes in a second folder: the hash check records that path too, with its raw bytes.
    other = photos.parent / "card"
    other.mkdir()
    raw2 = os.fsencode(other) + b"/\xc9t\xe9.jpg"
    with open(raw2, "wb") as f:
        f.write(data)
    agent.run("folder", "add", str(other))
    s = agent.backup()
    assert s["ok"] and s["files_uploaded"] == 0 and s["files_already_on_server"] == 1, s
    paths = {base64.b64decode(f["path_raw"]) for f in agent.api("GET", f"/assets/{asset}").json()["files"]}
    assert paths == {raw, raw2}


def test_every_backup_pass_sends_a_heartbeat(agent: Agent, photos: Path) -> None:
    def device() -> dict[str, object]:
        r = agent.api("GET", "/devices")
        r.raise_for_status()
        (d,) = [d for d in r.json() if d["name"] == "e2e-device"]
        return dict(d["health"])

    assert device()["state"] == "never_seen"
    for i in range(3):
        write(photos / f"IMG_{i}.jpg", jpeg_bytes(10 + i))
    s = agent.backup()
    assert s["ok"] and s["files_uploaded"] == 3
    health = device()
    assert health["state"] == "idle" and health["last_heartbeat_at"] is not None
    assert (health["backed_up_files"], health["failed_files"], health["pending_files"]) == (3, 0, 0)
    first = health["last_heartbeat_at"]

    # A pass with nothing to do reports too (a cron job every few minutes must not look silent).
    time.sleep(0.05)
    assert agent.backup()["files_uploaded"] == 0
    assert device()["last_heartbeat_at"] != first
