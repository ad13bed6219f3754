"""``camroll doctor`` against a real loopback server, real state DBs and fake machine trees."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
import zipfile
from pathlib import Path

import pytest
import typer
from support.env import free_port
from support.media import mp4_bytes, write
from support.server import ServerProcess
from typer.testing import CliRunner

from camroll.agent.backup.run import run_backup
from camroll.agent.paths import AgentPaths
from camroll.agent.report.doctor import DoctorReport, run_doctor
from camroll.agent.settings.conditions import Probes, SubprocessRunner
from camroll.agent.settings.config import AgentConfig, PolicyConfig, ServerConfig, save_config
from camroll.agent.settings.user_settings import set_setting
from camroll.agent.state.db import NewFile, StateDB

from .cliapp import agent_app


def _machine(tmp_path: Path, battery: tuple[int, str] | None = None) -> Probes:
    """A fake "/" (nothing known unless a battery is given) and an empty PATH."""
    root = tmp_path / "machine"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    if battery is not None:
        base = root / "sys/class/power_supply/BAT0"
        base.mkdir(parents=True)
        (base / "type").write_text("Battery\n")
        (base / "capacity").write_text(f"{battery[0]}\n")
        (base / "status").write_text(f"{battery[1]}\n")
    return Probes(root=root, runner=SubprocessRunner(path=str(root / "bin")))


def _home(tmp_path: Path, url: str, token: str, **policy: object) -> tuple[AgentPaths, AgentConfig]:
    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    paths = AgentPaths.in_dir(tmp_path / "home")
    cfg = AgentConfig(server=ServerConfig(url=url, username="ann", device_id=1, device_name="phone", token=token),
                      folders=[str(photos)], policy=PolicyConfig(**policy))  # type: ignore[arg-type]
    save_config(paths.config_file, cfg)
    return paths, cfg


def _statuses(report: DoctorReport) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


@pytest.fixture
def ann(server: ServerProcess) -> str:
    pw = server.add_user("ann", quota="100kB")
    return server.device_token("ann", pw)


def test_healthy_setup_passes_and_a_backup_fills_the_quota(tmp_path: Path, server: ServerProcess, ann: str) -> None:
    paths, cfg = _home(tmp_path, server.url, ann)
    probes = _machine(tmp_path)
    report = run_doctor(paths, probes=probes)
    st = _statuses(report)
    assert report.ok, report.to_json()
    for name in ("config", "enabled", "login", "folders", "server", "version", "account", "quota", "clock",
                 "battery", "power_saver", "network", "state_db", "disk"):
        assert st[name] == "pass", (name, report.get(name))
    assert st["stuck_uploads"] == st["problem_files"] == "skip"  # no state DB yet
    assert report.get("quota").message == "0.0 of 100.0 kB used (0%)."  # type: ignore[union-attr]
    # A 95 kB video brings the account to 95 %: a warning, not a failure.
    write(Path(cfg.folders[0]) / "clip.mp4", mp4_bytes(95_000, seed=1))
    assert run_backup(paths, cfg, probes=probes).files_uploaded == 1
    report = run_doctor(paths, probes=probes)
    quota = report.get("quota")
    assert quota is not None and quota.status == "warn" and "of 100.0 kB used" in quota.message, quota
    assert report.ok and _statuses(report)["state_db"] == "pass" and _statuses(report)["problem_files"] == "pass"


def test_a_file_that_does_not_fit_the_quota_fails_the_quota_check(tmp_path: Path, server: ServerProcess,
                                                                  ann: str) -> None:
    """0 % used but the waiting 150 kB video does not fit in 100 kB: the quota check must say so."""
    paths, cfg = _home(tmp_path, server.url, ann)
    probes = _machine(tmp_path)
    write(Path(cfg.folders[0]) / "clip.mp4", mp4_bytes(150_000, seed=2))
    assert run_backup(paths, cfg, probes=probes).stopped_reason
    report = run_doctor(paths, probes=probes)
    quota = report.get("quota")
    assert quota is not None and quota.status == "fail", quota
    assert "too small for what is waiting" in quota.message and "--quota" in quota.fix
    assert not report.ok


def test_server_down_fails_and_skips_what_needs_it(tmp_path: Path) -> None:
    port = free_port()
    paths, _ = _home(tmp_path, f"http://127.0.0.1:{port}", "t")
    report = run_doctor(paths, probes=_machine(tmp_path))
    assert not report.ok
    server = report.get("server")
    assert server is not None and server.status == "fail" and "connection refused" in server.message
    assert {_statuses(report)[n] for n in ("version", "account", "quota", "clock")} == {"skip"}


def test_revoked_token(tmp_path: Path, server: ServerProcess) -> None:
    paths, _ = _home(tmp_path, server.url, "revoked-or-made-up")
    report = run_doctor(paths, probes=_machine(tmp_path))
    acct = report.get("account")
    assert acct is not None and acct.status == "fail" and "does not accept this device's token" in acct.message
    assert "camroll login" in acct.fix
    assert _statuses(report)["quota"] == "skip" and not report.ok


def test_backup_switched_off_says_when(tmp_path: Path) -> None:
    paths, _ = _home(tmp_path, f"http://127.0.0.1:{free_port()}", "t")
    set_setting(paths, "enabled", "false", now=dt.datetime(2026, 11, 3, 14, 2).astimezone())
    report = run_doctor(paths, probes=_machine(tmp_path))
    enabled = report.get("enabled")
    assert enabled is not None and enabled.status == "fail"
    assert enabled.message == "Backup is switched off (enabled = false); backup was turned off on 3 Nov at 14:02."
    assert enabled.fix == "run camroll settings set enabled true"


def test_low_battery_is_a_warning_with_the_policy_fix(tmp_path: Path) -> None:
    paths, _ = _home(tmp_path, f"http://127.0.0.1:{free_port()}", "t", wifi_only=True)
    report = run_doctor(paths, probes=_machine(tmp_path, battery=(14, "Discharging")))
    bat = report.get("battery")
    assert bat is not None and bat.status == "warn"
    assert bat.message == "Paused: battery 14%, below your 20% minimum."
    assert bat.fix.startswith("Plug in or change min_battery")
    # Each rule is judged on its own: wifi_only with an unknown network is named too, not hidden behind battery.
    net = report.get("network")
    assert net is not None and net.status == "warn" and "wifi_only" in net.message
    assert _statuses(report)["power_saver"] == "pass"


def test_missing_folder_and_bad_config(tmp_path: Path) -> None:
    paths, cfg = _home(tmp_path, f"http://127.0.0.1:{free_port()}", "t")
    os.rmdir(cfg.folders[0])
    folders = run_doctor(paths, probes=_machine(tmp_path)).get("folders")
    assert folders is not None and folders.status == "fail" and "does not exist" in folders.message
    assert "camroll folder remove" in folders.fix
    paths.config_file.write_text("[policy]\nmin_batery = 5\n")
    report = run_doctor(paths, probes=_machine(tmp_path))
    config = report.get("config")
    assert config is not None and config.status == "fail" and "min_batery" in config.message
    assert config.fix.startswith("edit ")
    assert [c.name for c in report.checks] == ["config", "state_db", "stuck_uploads", "problem_files", "disk"]


def test_state_db_checks(tmp_path: Path) -> None:
    paths, _ = _home(tmp_path, f"http://127.0.0.1:{free_port()}", "t")
    now = time.time()
    with StateDB(paths.state_db) as db:
        db.apply_scan([NewFile(f"/p/{i}.jpg", "/p", 1, i, i) for i in range(5)], [], [], [])
        db.set_hashed(1, "a" * 64, "image/jpeg", (1, 1, 1))
        db.set_hashed(2, "b" * 64, "image/jpeg", (1, 2, 2))
        db.set_failed(3, "server said no", None)
        db.set_skipped(4, "not a photo or video")
    with sqlite3.connect(paths.state_db) as conn:
        conn.execute("UPDATE files SET updated_at=? WHERE id IN (1, 2)", (now - 2 * 3600,))
    report = run_doctor(paths, probes=_machine(tmp_path), clock=lambda: now)
    st = {c.name: c for c in report.checks}
    assert st["state_db"].status == "pass" and "integrity_check ok" in st["state_db"].message
    assert st["stuck_uploads"].status == "warn"
    assert st["stuck_uploads"].message.startswith("2 files waiting to upload made no progress for over 1 h")
    assert st["problem_files"].status == "warn"
    assert st["problem_files"].message == ("1 file failed to back up; 1 file skipped on purpose (e.g. not a photo "
                                           "or video).")
    assert "camroll problems" in st["problem_files"].fix

    paths.state_db.write_bytes(b"garbage" * 1000)
    report = run_doctor(paths, probes=_machine(tmp_path))
    db_check = report.get("state_db")
    assert db_check is not None and db_check.status == "fail" and "damaged" in db_check.message
    assert "rebuilds it" in db_check.fix and not report.ok
    assert paths.state_db.read_bytes() == b"garbage" * 1000  # the doctor only looks


def test_rebuilt_db_is_reported(tmp_path: Path) -> None:
    from camroll.agent.state.cache import open_state_db

    paths, _ = _home(tmp_path, f"http://127.0.0.1:{free_port()}", "t")
    paths.state_db.write_bytes(b"garbage" * 1000)
    open_state_db(paths, notify=None).close()
    check = run_doctor(paths, probes=_machine(tmp_path)).get("state_db")
    assert check is not None and check.status == "warn"
    assert check.message.startswith("The local state database was damaged (file is not a database) and was rebuilt on")


def test_disk_nearly_full(tmp_path: Path) -> None:
    paths, _ = _home(tmp_path, f"http://127.0.0.1:{free_port()}", "t")
    report = run_doctor(paths, probes=_machine(tmp_path), disk_free=lambda p: 20 * 10**6)
    disk = report.get("disk")
    assert disk is not None and disk.status == "fail" and disk.message.startswith("Only 20.0 MB free")


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("CAMROLL_HOME", str(tmp_path / "home"))
    return agent_app()


def test_cli_text_json_and_exit_code(app: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    _home(tmp_path, f"http://127.0.0.1:{free_port()}", "t")
    r = runner.invoke(app, ["doctor", "--timeout", "2"])
    assert r.exit_code == 1, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("PASS  config")
    assert any(line.startswith("FAIL  server") for line in lines)
    assert any(line.strip().startswith("Fix: start the camroll server") for line in lines)
    assert "\x1b[" not in r.stdout  # no colour when stdout is not a terminal
    assert lines[-1].startswith("1 problem to fix")
    r = runner.invoke(app, ["doctor", "--json", "--timeout", "2"])
    data = json.loads(r.stdout)
    assert r.exit_code == 1 and data["ok"] is False
    assert set(data["checks"][0]) == {"name", "status", "message", "fix"}


def test_bundle_has_no_secrets(app: typer.Typer, tmp_path: Path) -> None:
    token = "dev_5ecr3t-t0ken-that-must-not-leak"
    paths, _ = _home(tmp_path, f"http://127.0.0.1:{free_port()}", token)
    set_setting(paths, "min_battery", "30")
    paths.log_dir.mkdir(parents=True)
    lines = [f"2026-11-24 21:00:{i % 60:02d} INFO line {i}" for i in range(600)]
    lines.append(f"2026-11-24 21:01:00 INFO request failed: Authorization: Bearer {token}")
    (paths.log_dir / "agent.log").write_text("\n".join(lines) + "\n")
    out = tmp_path / "support.zip"
    r = CliRunner().invoke(app, ["doctor", "--json", "--timeout", "2", "--bundle", str(out)])
    assert r.exit_code == 1 and json.loads(r.stdout)["ok"] is False
    assert f"Support bundle written to {out}" in r.stderr
    with zipfile.ZipFile(out) as z:
        names = sorted(n.removeprefix("camroll-support/") for n in z.namelist())
        texts = {n: z.read(f"camroll-support/{n}").decode() for n in names}
    assert names == ["README.txt", "agent.log", "config.toml", "doctor.json", "settings-log.jsonl", "status.json",
                     "versions.json"]
    for name, text in texts.items():
        assert token not in text, name
        assert "dev_5ecr3t" not in text, name
    assert 'token = "[redacted]"' in texts["config.toml"] and "min_battery = 30" in texts["config.toml"]
    log = texts["agent.log"].splitlines()
    assert len(log) == 500 and log[-1].endswith("Bearer [redacted]") and log[0].endswith("line 101")
    assert json.loads(texts["doctor.json"])["checks"][0]["name"] == "config"
    assert json.loads(texts["status.json"])["server_url"].startswith("http://127.0.0.1:")
    assert json.loads(texts["versions.json"])["camroll"]
    assert '"key":"min_battery"' in texts["settings-log.jsonl"]


def test_bundle_leaves_a_damaged_db_alone(tmp_path: Path) -> None:
    from camroll.agent.report.bundle import write_bundle

    paths, _ = _home(tmp_path, f"http://127.0.0.1:{free_port()}", "t")
    paths.state_db.write_bytes(b"garbage" * 1000)
    report = run_doctor(paths, probes=_machine(tmp_path))
    write_bundle(paths, tmp_path / "b.zip", report)
    with zipfile.ZipFile(tmp_path / "b.zip") as z:
        status = json.loads(z.read("camroll-support/status.json"))
    assert "state database is damaged" in status["error"]
    assert paths.state_db.read_bytes() == b"garbage" * 1000
