"""``camroll agent install|uninstall|status``: the real CLI in a subprocess, with the service directory
in a temporary folder and recording ``systemctl``/``launchctl`` scripts first on PATH."""

from __future__ import annotations

import os
import plistlib
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.server import run_camroll

from camroll.agent.service.install import LAUNCHD_LABEL, UNIT_NAME, agent_command


def _fake_tool(bin_dir: Path, name: str, log: Path, *, exit_code: int = 0, stdout: str = "") -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\necho \"{name} $*\" >> {log}\nprintf '%s' '{stdout}'\n"
                      + (f"echo 'Failed to connect to bus' >&2\nexit {exit_code}\n" if exit_code else "exit 0\n"))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home"),
            "CAMROLL_HOME": str(tmp_path / "camroll home"), "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_install_writes_a_systemd_user_unit_and_enables_it(tmp_path: Path, env: dict[str, str]) -> None:
    log = tmp_path / "calls.log"
    _fake_tool(tmp_path / "bin", "systemctl", log)
    out = run_camroll("agent", "install", "--platform", "systemd", env=env)
    unit = tmp_path / "xdg" / "systemd" / "user" / UNIT_NAME
    text = unit.read_text()
    exec_line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    # The unit starts this same camroll: python -m camroll here, since the test runs it that way.
    assert exec_line == f"ExecStart={sys.executable} -m camroll agent"
    assert f'Environment="CAMROLL_HOME={tmp_path / "camroll home"}"' in text
    assert "Restart=on-failure" in text and "WantedBy=default.target" in text
    assert _calls(log) == ["systemctl --user daemon-reload", f"systemctl --user enable --now {UNIT_NAME}"]
    assert "camroll status" in out.stdout

    status = run_camroll("agent", "status", "--platform", "systemd", "--json", env=env)
    assert '"installed": true' in status.stdout

    run_camroll("agent", "uninstall", "--platform", "systemd", env=env)
    assert not unit.exists()
    assert _calls(log)[-2:] == [f"systemctl --user disable --now {UNIT_NAME}", "systemctl --user daemon-reload"]
    again = run_camroll("agent", "uninstall", "--platform", "systemd", env=env)
    assert "Not installed" in again.stdout


def test_without_a_working_systemctl_it_says_what_to_run(tmp_path: Path, env: dict[str, str]) -> None:
    log = tmp_path / "calls.log"
    _fake_tool(tmp_path / "bin", "systemctl", log, exit_code=1)
    proc = run_camroll("agent", "install", "--platform", "systemd", env=env, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "Failed to connect to bus" in proc.stderr
    assert f"run by hand: systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}" in proc.stderr
    assert (tmp_path / "xdg" / "systemd" / "user" / UNIT_NAME).exists()

    # No systemctl at all (a container): same advice.
    no_tool = {**env, "PATH": str(Path(sys.executable).parent) + ":/nonexistent"}
    (tmp_path / "bin" / "systemctl").unlink()
    proc = subprocess.run([sys.executable, "-m", "camroll", "agent", "install", "--platform", "systemd"],
                          env={**os.environ, **no_tool}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "systemctl is not installed" in proc.stderr and "run by hand" in proc.stderr


def test_dry_run_and_print_change_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    log = tmp_path / "calls.log"
    _fake_tool(tmp_path / "bin", "systemctl", log)
    dry = run_camroll("agent", "install", "--platform", "systemd", "--dry-run", env=env)
    assert "Would write" in dry.stdout and "Would run: systemctl --user enable --now" in dry.stdout
    printed = run_camroll("agent", "install", "--platform", "systemd", "--print", env=env)
    assert printed.stdout.startswith("[Unit]")
    assert not (tmp_path / "xdg" / "systemd").exists()
    assert _calls(log) == []


def test_install_on_macos_writes_a_launchd_agent(tmp_path: Path, env: dict[str, str]) -> None:
    log = tmp_path / "calls.log"
    _fake_tool(tmp_path / "bin", "launchctl", log)
    run_camroll("agent", "install", "--platform", "launchd", env=env)
    plist = tmp_path / "home" / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    job = plistlib.loads(plist.read_bytes())
    assert job["Label"] == LAUNCHD_LABEL
    assert job["ProgramArguments"] == [sys.executable, "-m", "camroll", "agent"]
    assert job["RunAtLoad"] is True and job["KeepAlive"] is True
    assert job["EnvironmentVariables"] == {"CAMROLL_HOME": str(tmp_path / "camroll home")}
    assert _calls(log) == [f"launchctl load -w {plist}"]
    run_camroll("agent", "uninstall", "--platform", "launchd", env=env)
    assert not plist.exists()
    assert _calls(log)[-1] == f"launchctl unload -w {plist}"


def test_termux_gets_the_boot_and_job_scheduler_hint(env: dict[str, str]) -> None:
    proc = run_camroll("agent", "install", "--platform", "termux", env=env)
    assert "termux-boot" in proc.stdout.lower() or "Termux:Boot" in proc.stdout
    assert "termux-job-scheduler" in proc.stdout


def test_the_command_is_the_camroll_script_when_run_through_it(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    script = tmp_path / "bin" / "camroll"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(script), "agent", "install"])
    assert agent_command() == [str(script), "agent"]
