"""doctor, reset-cache and a damaged state DB through the real CLI against a real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from support.media import jpeg_bytes, write

from .helpers import Agent


def _photos(photos: Path, n: int = 5) -> None:
    for i in range(n):
        write(photos / f"IMG_{i:04d}.jpg", jpeg_bytes(100 + i))


def _doctor(agent: Agent) -> tuple[int, dict[str, dict[str, Any]]]:
    r = agent.run("doctor", "--json", "--timeout", "5", check=False)
    data = json.loads(r.stdout)
    return r.returncode, {c["name"]: c for c in data["checks"]}


def test_damaged_state_db_is_rebuilt_without_uploading(agent: Agent, photos: Path) -> None:
    _photos(photos)
    assert agent.backup()["files_uploaded"] == 5
    state_db = agent.home / "state.db"
    state_db.write_bytes(b"\x13garbage" * 5000)
    r = agent.run("backup", "--json")
    summary = json.loads(r.stdout)
    assert summary["bytes_uploaded"] == 0 and summary["files_uploaded"] == 0
    assert summary["files_already_on_server"] == 5 and summary["ok"]
    assert "The local state database was damaged (file is not a database) and was rebuilt on" in r.stderr
    assert agent.status()["files"]["backed_up"] == 5
    _, checks = _doctor(agent)
    assert checks["state_db"]["status"] == "warn"
    assert "was damaged" in checks["state_db"]["message"] and "nothing was re-uploaded" in checks["state_db"]["message"]
    assert list(agent.home.glob("state.db.corrupt-*"))


def test_reset_cache_uploads_nothing(agent: Agent, photos: Path) -> None:
    _photos(photos, 4)
    assert agent.backup()["files_uploaded"] == 4
    no = agent.run("reset-cache", check=False, timeout=60)  # no --yes, and nothing on stdin says yes
    assert no.returncode != 0 and not list(agent.home.glob("state.db.bak-*"))
    r = agent.run("reset-cache", "--yes")
    assert r.stdout.startswith("rebuilt: 4 files, all already on the server; 0 bytes uploaded"), r.stdout
    assert "state.db.bak-" in r.stdout
    assert len(list(agent.home.glob("state.db.bak-*"))) == 1
    st = agent.status()
    assert st["files"]["backed_up"] == 4 and st["headline"] == "All 4 files backed up"


def test_doctor_names_server_problems(agent: Agent, photos: Path) -> None:
    server = agent.server
    code, checks = _doctor(agent)
    assert checks["server"]["status"] == "pass" and checks["account"]["status"] == "pass"
    assert checks["version"]["status"] == "pass"
    server.extra_args = ("--min-client-version", "9.0.0")
    server.restart()
    code, checks = _doctor(agent)
    assert code == 1 and checks["version"]["status"] == "fail"
    assert checks["version"]["message"].endswith("is too old for the server, which needs 9.0.0 or later.")
    assert checks["version"]["fix"] == "update camroll (pip install -U camroll)"
    server.stop()
    r = agent.run("doctor", "--timeout", "5", check=False)
    assert r.returncode == 1
    assert "FAIL  server" in r.stdout and "connection refused" in r.stdout
