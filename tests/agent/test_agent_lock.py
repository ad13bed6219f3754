"""One ``camroll agent`` loop per state database, through the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.server import camroll_cmd, run_camroll


def test_a_second_agent_on_the_same_state_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    env = {**os.environ, "CAMROLL_HOME": str(tmp_path / "home")}
    first = subprocess.Popen(camroll_cmd("agent"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = tmp_path / "home" / "state.db.agent.lock"
        deadline = time.monotonic() + 30
        while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        second = run_camroll("agent", env={"CAMROLL_HOME": str(tmp_path / "home")}, check=False, timeout=60)
        assert second.returncode == 1, second.stderr
        assert f"already running on this device's backup (process {first.pid}" in second.stderr
        assert f"kill {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert first.poll() is None, "the first agent stopped"
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    # Once it stopped (or died), the next one runs.
    again = subprocess.Popen(camroll_cmd("agent"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    try:
        assert again.poll() is None
    finally:
        again.kill()
        again.communicate()


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    from camroll.agent.errors import AgentError
    from camroll.agent.service.lock import exclusive

    precious = tmp_path / "precious.jpg"
    precious.write_bytes(b"\xff\xd8 someone's photo")
    link = tmp_path / "work" / "lock"
    link.parent.mkdir()
    link.symlink_to(precious)
    with pytest.raises(AgentError, match="is a link"), exclusive(link, lambda pid: AgentError("busy")):
        pass
    assert precious.read_bytes() == b"\xff\xd8 someone's photo"
