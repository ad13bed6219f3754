"""why / problems / retry / ignore through the real CLI against a real server: a file over the user's
max_file_size and a file that is not a photo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from support.media import jpeg_bytes, write, write_mp4

from .helpers import Agent, sha_of_file

MIB = 1024 * 1024


def _json(agent: Agent, *args: str) -> Any:
    return json.loads(agent.run(*args, "--json").stdout)


def test_too_large_and_unsupported_files_explained_retried_and_fixed(agent: Agent, photos: Path) -> None:
    agent.run("settings", "set", "max_file_size", "1MB")
    big = write_mp4(photos / "big.mp4", 2 * MIB, seed=1)
    notes = write(photos / "notes.txt", b"shopping list: milk, eggs")
    ok = write(photos / "ok.jpg", jpeg_bytes(1))
    s = agent.backup()
    assert s["ok"] and s["files_uploaded"] == 1 and s["files_skipped"] == 2

    rows = _json(agent, "problems")
    by_name = {Path(r["path"]).name: r for r in rows}
    assert set(by_name) == {"big.mp4", "notes.txt"}
    assert by_name["big.mp4"]["code"] == "too_large"
    assert by_name["big.mp4"]["reason"] == "2.1 MB is over your 1.0 MB max_file_size"
    assert by_name["big.mp4"]["fix"] == "camroll settings set max_file_size 3MB"
    assert by_name["notes.txt"]["code"] == "unsupported_type" and "text" in by_name["notes.txt"]["reason"]
    table = agent.run("problems").stdout
    assert "2 files not backed up" in table and "max_file_size" in table

    story = _json(agent, "why", str(big))
    assert story["state"] == "skipped" and story["fix"] == "camroll settings set max_file_size 3MB"
    assert [e["event"] for e in story["events"]] == ["seen", "skipped"]
    text = agent.run("why", str(notes)).stdout
    assert "State:    skipped (unsupported_type)" in text and "Fix:" in text

    # Retrying without changing anything: looked at again, skipped again for the same reason.
    r = agent.run("retry", str(big))
    assert "will be tried on the next backup" in r.stdout
    assert agent.backup()["files_skipped"] == 1
    assert _json(agent, "why", str(big))["code"] == "too_large"

    # The fix the message named: the file goes on the next backup without a retry.
    agent.run("settings", "set", "max_file_size", "3MB")
    s = agent.backup()
    assert s["files_uploaded"] == 1
    story = _json(agent, "why", str(big))
    assert story["state"] == "backed up" and story["asset_id"] == agent.server_has(sha_of_file(big))
    assert [e["event"] for e in story["events"]][-3:] == ["checked", "sent", "verified"]
    assert _json(agent, "why", str(ok))["state"] == "backed up"

    # The text file stays a problem until it is ignored.
    assert [Path(r["path"]).name for r in _json(agent, "problems")] == ["notes.txt"]
    agent.run("ignore", str(notes))
    assert _json(agent, "problems") == []
    st = agent.status()
    assert st["headline"] == "All 2 files backed up" and st["files"]["ignored"] == 1 and st["problems"] == 0

    r = agent.run("why", str(photos.parent / "elsewhere.jpg"), check=False)
    assert r.returncode == 1 and "is not under a backed-up folder" in r.stderr and "Traceback" not in r.stderr
