"""Watch mode end to end: a real ``camroll agent`` process against a real ``camroll serve``, driven only
the way a person would (writing photos, ``camroll settings set``, restarting the server)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from support.env import free_port
from support.media import jpeg_bytes, write_mp4
from support.server import camroll_cmd, database_env

from camroll.agent.settings.config import load_config

from .helpers import Agent, sha_of_file

# Short timings so the scenario takes seconds: debounce, condition re-check, first retry after a stop.
FAST = ("--debounce", "0.5", "--condition-interval", "1", "--retry-base", "0.5")


def _until(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def _stop(proc: subprocess.Popen[str], timeout: float = 10) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the agent did not stop within {timeout} s\n{out}\n{err}") from None
    return proc.returncode, out, err


def _device_health(agent: Agent) -> dict[str, Any]:
    session = agent.server.login(agent.user, agent.password)
    r = httpx.get(f"{agent.server.url}/api/v1/devices", headers={"Authorization": f"Bearer {session}"})
    r.raise_for_status()
    device = next(d for d in r.json() if d["name"] == "e2e-device")
    return dict(device["health"])


def test_the_agent_backs_up_pauses_resumes_and_outlives_the_server(agent: Agent, photos: Path) -> None:
    proc = agent.popen("agent", *FAST)
    try:
        # A new photo is on the server within 10 s.
        first = jpeg_bytes(101)
        time.sleep(1.0)  # the agent's start pass and its watches
        (photos / "new.jpg").write_bytes(first)
        assert _until(lambda: agent.server_has(first) is not None, 10), "not backed up within 10 s"

        # Switched off: a new photo stays here and status says why.
        agent.run("settings", "set", "enabled", "false")
        time.sleep(1.5)  # the agent notices the config within a second
        off = jpeg_bytes(102)
        (photos / "while-off.jpg").write_bytes(off)
        assert _until(lambda: agent.status()["headline"].startswith("Off:"), 10), agent.status()
        time.sleep(1.0)
        assert agent.server_has(off) is None
        # The server hears it through the heartbeat sent after the pass.
        assert _until(lambda: _device_health(agent)["state"] == "paused", 5), _device_health(agent)
        assert _device_health(agent)["blocker_code"] == "disabled"

        # Switched on again: it goes with no other action.
        agent.run("settings", "set", "enabled", "true")
        assert _until(lambda: agent.server_has(off) is not None, 10), agent.status()

        # The server goes away; a photo taken meanwhile arrives by itself once it is back.
        agent.server.stop()
        offline = jpeg_bytes(103)
        (photos / "offline.jpg").write_bytes(offline)
        assert _until(lambda: agent.status()["headline"].startswith("Stopped:"), 20), agent.status()
        agent.server.start()  # same data directory and port
        assert _until(lambda: agent.server_has(offline) is not None, 20), agent.status()
        assert agent.status()["headline"].startswith("All ")
    finally:
        code, out, err = _stop(proc)
    assert code == 0, err
    assert "Traceback" not in err
    assert "1 uploaded" in out
    # The rotating log file has the whole story, including why each pass ran.
    log = (agent.home / "logs" / "agent.log").read_text()
    assert "pass starting: start" in log and "change in the folders" in log and "received SIGTERM" in log


def test_sigterm_during_a_pass_stops_cleanly_and_nothing_is_lost(agent: Agent, photos: Path) -> None:
    proc = agent.popen("agent", *FAST)
    try:
        time.sleep(1.0)
        write_mp4(photos / "big.mp4", 80 * 1024 * 1024)
        # As soon as the agent knows the file (hashing, uploading or even done), stop it.
        assert _until(lambda: sum(agent.status()["files"].values()) > 0, 15)
    finally:
        started = time.monotonic()
        code, _, err = _stop(proc, timeout=15)
    assert code == 0, err
    assert time.monotonic() - started < 15
    # Whatever the stop interrupted resumes: the next pass finishes it, and the server has the bytes.
    out = agent.backup()
    assert out["files_failed"] == 0
    assert agent.status()["files"]["backed_up"] == 1
    assert agent.server_has(sha_of_file(photos / "big.mp4")) is not None


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_up_watch_keeps_the_server_and_backs_up_new_photos(tmp_path: Path) -> None:
    root, pics = tmp_path / "camroll", tmp_path / "pics"
    pics.mkdir()
    (pics / "a.jpg").write_bytes(jpeg_bytes(201))
    port = free_port()
    proc = subprocess.Popen(camroll_cmd("up", str(pics), "--watch", "--data", str(root), "--listen",
                                        f"127.0.0.1:{port}"),
                            env={**os.environ, **database_env(root)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        config = root / "agent" / "config.toml"
        assert _until(lambda: config.exists() and bool(load_config(config).folders), 60)
        cfg = load_config(config)
        assert cfg.server is not None
        token = cfg.server.token

        def on_server(data: bytes) -> bool:
            import hashlib

            sha = hashlib.sha256(data).hexdigest()
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/api/v1/assets/check", json={"items": [{"sha256": sha}]},
                               headers={"Authorization": f"Bearer {token}"}, timeout=5)
            except httpx.TransportError:
                return False
            return r.status_code == 200 and sha in r.json()["present"]

        assert _until(lambda: on_server(jpeg_bytes(201)), 60)
        later = jpeg_bytes(202)
        time.sleep(1.0)
        (pics / "later.jpg").write_bytes(later)
        assert _until(lambda: on_server(later), 10), "not backed up within 10 s"
        # The web interface is up while it watches, and the output says where.
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    finally:
        code, out, err = _stop(proc, timeout=30)
    assert code == 0, err
    assert "Traceback" not in err
    assert f"See it in a browser at http://127.0.0.1:{port}" in out
    assert not _port_open(port), "the server child is still running"
