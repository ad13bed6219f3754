"""The agent's commands through Typer's runner, on a root app of their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from camroll.agent.settings.config import AgentConfig, ServerConfig, load_config, save_config

from .cliapp import agent_app


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("CAMROLL_HOME", str(tmp_path / "home"))
    return agent_app()


runner = CliRunner()


def test_not_logged_in_messages(app: typer.Typer) -> None:
    r = runner.invoke(app, ["backup"])
    assert r.exit_code == 1
    assert "Not logged in. Run: camroll login URL --user NAME" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["status"])
    assert r.exit_code == 1 and r.output.startswith("Not logged in.")
    r = runner.invoke(app, ["status", "--json"])
    assert json.loads(r.stdout)["logged_in"] is False


def test_folder_add_list_remove(app: typer.Typer, tmp_path: Path) -> None:
    d = tmp_path / "pics"
    d.mkdir()
    r = runner.invoke(app, ["folder", "add", str(d / ".." / "pics")])
    assert r.exit_code == 0, r.output
    cfg = load_config(tmp_path / "home" / "config.toml")
    assert cfg.folders == [str(d.resolve())]
    r = runner.invoke(app, ["folder", "add", str(d)])
    assert "already" in r.output
    r = runner.invoke(app, ["folder", "list", "--json"])
    assert json.loads(r.stdout) == [str(d.resolve())]
    r = runner.invoke(app, ["folder", "add", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "does not exist. Fix: check the path." in r.output
    (tmp_path / "f.jpg").write_bytes(b"x")
    r = runner.invoke(app, ["folder", "add", str(tmp_path / "f.jpg")])
    assert r.exit_code == 1 and "is a file, not a folder" in r.output
    r = runner.invoke(app, ["folder", "remove", str(tmp_path / "other")])
    assert r.exit_code == 1 and "is not one of the backed-up folders" in r.output
    r = runner.invoke(app, ["folder", "remove", str(d)])
    assert r.exit_code == 0
    assert load_config(tmp_path / "home" / "config.toml").folders == []


def test_bad_config_is_a_sentence(app: typer.Typer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("[policy]\nhash_workers = 'many'\n")
    r = runner.invoke(app, ["status"])
    assert r.exit_code == 1
    assert "key 'policy.hash_workers'" in r.output and "Fix: edit" in r.output


def test_status_after_login_without_backup(app: typer.Typer, tmp_path: Path) -> None:
    d = tmp_path / "pics"
    d.mkdir()
    save_config(tmp_path / "home" / "config.toml", AgentConfig(
        server=ServerConfig(url="http://s", username="u", device_id=1, device_name="d", token="t"),
        folders=[str(d)]))
    r = runner.invoke(app, ["status"])
    assert r.exit_code == 0 and r.output.startswith("Nothing backed up yet. Run: camroll backup")


def test_login_needs_password_source(app: typer.Typer) -> None:
    r = runner.invoke(app, ["login", "http://127.0.0.1:9", "--user", "ann"])
    assert r.exit_code == 1 and "Fix: use --password-file FILE" in r.output
    r = runner.invoke(app, ["login", "example.org", "--user", "ann"])
    assert r.exit_code == 1 and "is not a server URL" in r.output


def test_login_unreachable(app: typer.Typer, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    r = runner.invoke(app, ["login", "http://127.0.0.1:9", "--user", "ann", "--password-file", str(pw)])
    assert r.exit_code == 2
    assert "Cannot reach the camroll server: Nothing is listening at 127.0.0.1:9 (connection refused)" in r.output


def test_unusable_home_is_a_sentence(app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("CAMROLL_HOME", str(blocker / "home"))
    d = tmp_path / "pics"
    d.mkdir()
    r = runner.invoke(app, ["folder", "add", str(d)])
    assert r.exit_code == 1 and "Fix:" in r.output and "Traceback" not in r.output
    # A state database that cannot be opened.
    home = tmp_path / "home2"
    (home / "state.db").mkdir(parents=True)
    monkeypatch.setenv("CAMROLL_HOME", str(home))
    save_config(home / "config.toml", AgentConfig(
        server=ServerConfig(url="http://s", username="u", device_id=1, device_name="d", token="t"),
        folders=[str(d)]))
    r = runner.invoke(app, ["backup"])
    assert r.exit_code == 1, r.output
    assert "state database could not be used" in r.output and "Traceback" not in r.output
