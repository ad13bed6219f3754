"""`camroll settings`: the library and the command, on real config files under CAMROLL_HOME."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from camroll.agent.paths import AgentPaths
from camroll.agent.settings import user_settings as settings
from camroll.agent.settings.config import AgentConfig, PolicyConfig, ServerConfig, load_config, save_config

from .cliapp import agent_app

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("CAMROLL_HOME", str(h))
    return h


@pytest.fixture
def app(home: Path) -> typer.Typer:
    return agent_app()


def _logged_in(home: Path) -> None:
    save_config(home / "config.toml", AgentConfig(
        server=ServerConfig(url="http://s:1", username="ann", device_id=7, device_name="phone", token="sekrit"),
        folders=["/pics"]))


def test_every_policy_key_is_described() -> None:
    assert set(settings._KINDS) == set(PolicyConfig.model_fields)
    for key, field in PolicyConfig.model_fields.items():
        assert field.description, key
        # every example in an error message is a value the command accepts
        settings.parse(key, settings._KINDS[key][1])


def test_show_lists_every_key_and_summary(app: typer.Typer, home: Path) -> None:
    _logged_in(home)
    r = runner.invoke(app, ["settings"])
    assert r.exit_code == 0, r.output
    for key in PolicyConfig.model_fields:
        assert key in r.output
    assert "http://s:1" in r.output and "phone" in r.output and "/pics" in r.output
    assert "sekrit" not in r.output


def test_show_json(app: typer.Typer, home: Path) -> None:
    _logged_in(home)
    r = runner.invoke(app, ["settings", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert list(data["policy"]) == list(PolicyConfig.model_fields)
    assert data["policy"]["min_battery"] == {
        "value": 20, "default": 20, "kind": "int",
        "description": PolicyConfig.model_fields["min_battery"].description}
    assert data["policy"]["max_file_size"]["value"] is None
    assert data["server"] == {"url": "http://s:1", "username": "ann", "device_id": 7, "device_name": "phone"}
    assert data["folders"] == ["/pics"]
    assert data["recent_changes"] == []
    assert "sekrit" not in r.stdout


def test_show_without_config(app: typer.Typer, home: Path) -> None:
    r = runner.invoke(app, ["settings", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["server"] is None
    r = runner.invoke(app, ["settings"])
    assert r.exit_code == 0 and "not logged in" in r.output
    assert not (home / "config.toml").exists()  # showing writes nothing


@pytest.mark.parametrize(("key", "text", "stored"), [
    ("enabled", "off", False),
    ("enabled", "No", False),
    ("wifi_only", "yes", True),
    ("allow_metered", "false", False),
    ("only_while_charging", "ON", True),
    ("pause_on_power_saver", "0", False),
    ("metered_daily_cap_mb", "30", 30),
    ("min_battery", "0", 0),
    ("min_battery", "100", 100),
    ("upload_concurrency", "3", 3),
    ("max_file_size", "2GB", "2GB"),
    ("max_file_size", "500 MiB", "500 MiB"),
    ("include", "*.jpg, *.heic", ["*.jpg", "*.heic"]),
    ("exclude", "*/.trash/*", ["*/.trash/*"]),
    ("bandwidth_limit", "5MB/s", "5MB/s"),
    ("bandwidth_limit", "500kB", "500kB"),
    ("time_window", "22:00-07:00", "22:00-07:00"),
    ("time_window", "09:30-17:00", "09:30-17:00"),
])
def test_set_each_kind(app: typer.Typer, home: Path, key: str, text: str, stored: object) -> None:
    _logged_in(home)
    r = runner.invoke(app, ["settings", "set", key, text])
    assert r.exit_code == 0, r.output
    assert f"{key}:" in r.output
    cfg = load_config(home / "config.toml")
    assert getattr(cfg.policy, key) == stored
    assert cfg.server is not None and cfg.server.token == "sekrit"  # the rest is kept
    assert cfg.folders == ["/pics"]


def test_set_none_clears(app: typer.Typer, home: Path) -> None:
    for key, value in (("max_file_size", "2GB"), ("bandwidth_limit", "1MB/s"), ("time_window", "01:00-02:00"),
                       ("include", "*.jpg")):
        assert runner.invoke(app, ["settings", "set", key, value]).exit_code == 0
        r = runner.invoke(app, ["settings", "set", key, "none"])
        assert r.exit_code == 0, r.output
        assert getattr(load_config(home / "config.toml").policy, key) in (None, [])
    assert "max_file_size" not in (home / "config.toml").read_text()  # None is left out of the file


def test_sizes_and_windows_as_numbers() -> None:
    p = PolicyConfig(max_file_size="2GB", bandwidth_limit="5MB/s", time_window="22:00-07:00")
    assert p.max_file_size_bytes == 2 * 10**9
    assert p.bandwidth_limit_bytes == 5 * 10**6
    assert p.time_window_times == (dt.time(22), dt.time(7))
    assert PolicyConfig().max_file_size_bytes is None and PolicyConfig().time_window_times is None


@pytest.mark.parametrize(("key", "text", "words"), [
    ("enabled", "maybe", "yes/no"),
    ("min_battery", "150", "less than or equal to 100"),
    ("min_battery", "-1", "greater than or equal to 0"),
    ("min_battery", "lots", "whole number from 0 to 100"),
    ("metered_daily_cap_mb", "-5", "greater than or equal to 0"),
    ("upload_concurrency", "0", "greater than or equal to 1"),
    ("max_file_size", "big", "is not a size"),
    ("max_file_size", "0", "above zero"),
    ("bandwidth_limit", "fast", "is not a rate"),
    ("time_window", "25:00-07:00", "HH:MM-HH:MM"),
    ("time_window", "22:00", "HH:MM-HH:MM"),
    ("time_window", "07:00-07:00", "same time"),
])
def test_bad_value_is_a_sentence_and_changes_nothing(
        app: typer.Typer, home: Path, key: str, text: str, words: str) -> None:
    _logged_in(home)
    before = (home / "config.toml").read_bytes()
    r = runner.invoke(app, ["settings", "set", key, text])
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    assert f"Cannot set {key} to {text!r}" in r.output
    assert words in r.output
    assert f"camroll settings set {key} {settings._KINDS[key][1]}" in r.output  # a good example
    assert (home / "config.toml").read_bytes() == before
    assert not (home / settings.LOG_NAME).exists()


def test_unknown_key_lists_valid_ones(app: typer.Typer, home: Path) -> None:
    r = runner.invoke(app, ["settings", "set", "wifi", "true"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "There is no setting 'wifi'" in r.output
    for key in PolicyConfig.model_fields:
        assert key in r.output
    assert not (home / "config.toml").exists()


def test_change_log_in_order(app: typer.Typer, home: Path) -> None:
    _logged_in(home)
    for key, value in (("enabled", "off"), ("min_battery", "50"), ("enabled", "on")):
        assert runner.invoke(app, ["settings", "set", key, value]).exit_code == 0
    r = runner.invoke(app, ["settings", "set", "min_battery", "50"])  # no change: not logged
    assert r.exit_code == 0 and "nothing changed" in r.output
    paths = AgentPaths.default()
    changes = settings.recent_changes(paths)
    assert [(c.key, c.old, c.new) for c in changes] == [
        ("enabled", True, False), ("min_battery", 20, 50), ("enabled", False, True)]
    assert all(c.time.tzinfo is not None for c in changes)
    assert [c.key for c in settings.recent_changes(paths, 2)] == ["min_battery", "enabled"]
    lines = (home / settings.LOG_NAME).read_text().splitlines()
    assert json.loads(lines[0])["key"] == "enabled" and set(json.loads(lines[0])) == {"time", "key", "old", "new"}
    data = json.loads(runner.invoke(app, ["settings", "--json"]).stdout)
    assert [c["key"] for c in data["recent_changes"]] == ["enabled", "min_battery", "enabled"]
    r = runner.invoke(app, ["settings"])
    assert "Recent changes" in r.output and "enabled: false -> true" in r.output


def test_change_log_times_and_torn_lines(home: Path) -> None:
    paths = AgentPaths.default()
    when = dt.datetime(2026, 11, 3, 14, 2, tzinfo=dt.UTC)
    change = settings.set_setting(paths, "enabled", "false", now=when)
    assert change is not None and change.time == when
    with (home / settings.LOG_NAME).open("a") as f:
        f.write('{"time": "garbage"\n')  # a torn or hand-edited line is skipped
    [c] = settings.recent_changes(paths)
    assert (c.time, c.key, c.old, c.new) == (when, "enabled", True, False)
    assert settings.recent_changes(paths, 0) == []


def test_old_config_without_new_keys_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('folders = ["/a"]\n\n[policy]\nupload_concurrency = 3\nhash_workers = 2\nchunk_size_mib = 64\n')
    cfg = load_config(path)
    assert cfg.policy.upload_concurrency == 3
    assert cfg.policy.enabled is True and cfg.policy.min_battery == 20 and cfg.policy.max_file_size is None
    assert cfg.policy.include == [] and cfg.policy.time_window is None
