from __future__ import annotations

import stat
from pathlib import Path

import pytest

from camroll.agent.errors import ConfigError, NotLoggedIn
from camroll.agent.paths import AgentPaths
from camroll.agent.settings.config import AgentConfig, PolicyConfig, ServerConfig, load_config, save_config


def test_missing_file_is_empty_config(tmp_path: Path) -> None:
    cfg = load_config(tmp_path / "nope.toml")
    assert cfg.server is None and cfg.folders == []
    assert cfg.policy.upload_concurrency == 5 and cfg.policy.hash_workers == 2
    assert cfg.policy.chunk_size_mib == 64
    with pytest.raises(NotLoggedIn, match="camroll login URL --user NAME"):
        cfg.require_server()


def test_round_trip_is_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.toml"
    cfg = AgentConfig(
        server=ServerConfig(url="http://x:1", username="ann", device_id=3, device_name="phone",
                            token="sekrit"),
        folders=["/a", "/b"],
        policy=PolicyConfig(upload_concurrency=7),
    )
    save_config(path, cfg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind
    again = load_config(path)
    assert again == cfg
    text = path.read_text()
    assert "[policy]" in text and "upload_concurrency = 7" in text
    # Defaults are not frozen into the file: a later release's defaults apply.
    assert "hash_workers" not in text and "min_battery" not in text


def test_invalid_value_names_key_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[policy]\nupload_concurrency = 0\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "policy.upload_concurrency" in msg and "greater than or equal to 1" in msg
    assert f"Fix: edit {path}" in msg


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[policy]\nupload_concurency = 2\n")
    with pytest.raises(ConfigError, match=r"upload_concurency.*remove it or check its spelling"):
        load_config(path)


def test_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("folders = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_paths_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMROLL_HOME", str(tmp_path))
    p = AgentPaths.default()
    assert p.config_file == tmp_path / "config.toml"
    assert p.state_db == tmp_path / "state.db"
    assert p.log_dir == tmp_path / "logs"


def test_paths_platformdirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CAMROLL_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    p = AgentPaths.default()
    assert p.config_file == tmp_path / "cfg" / "camroll" / "config.toml"
    assert p.state_db == tmp_path / "state" / "camroll" / "state.db"


def test_policy_defaults_for_old_files(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[policy]\nhash_workers = 3\n")
    p = load_config(path).policy
    assert p.hash_workers == 3
    assert (p.enabled, p.wifi_only, p.allow_metered, p.metered_daily_cap_mb) == (True, False, True, 0)
    assert (p.min_battery, p.only_while_charging, p.pause_on_power_saver) == (20, False, True)
    assert (p.max_file_size, p.include, p.exclude, p.bandwidth_limit, p.time_window) == (None, [], [], None, None)


def test_policy_values_from_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[policy]\nmax_file_size = 1000\nbandwidth_limit = "2 MiB/s"\ntime_window = "23:30-06:00"\n'
                    'include = ["*.jpg"]\n')
    p = load_config(path).policy
    assert p.max_file_size == "1000" and p.max_file_size_bytes == 1000  # a bare number is bytes
    assert p.bandwidth_limit_bytes == 2 * 1024 * 1024
    assert p.include == ["*.jpg"]
    save_config(path, load_config(path))
    assert load_config(path) == load_config(path)


@pytest.mark.parametrize(("line", "key"), [
    ("min_battery = 101", "policy.min_battery"),
    ('time_window = "7-9"', "policy.time_window"),
    ('max_file_size = "huge"', "policy.max_file_size"),
    ("wifi_only = 'sometimes'", "policy.wifi_only"),
])
def test_bad_policy_values_name_the_key(tmp_path: Path, line: str, key: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[policy]\n{line}\n")
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        load_config(path)


def test_time_window_wraps_past_midnight() -> None:
    import datetime as dt

    from camroll.agent.settings.config import in_time_window, parse_time_window

    night = parse_time_window("22:00-07:00")
    assert in_time_window(night, dt.time(23, 59)) and in_time_window(night, dt.time(3))
    assert in_time_window(night, dt.time(22)) and not in_time_window(night, dt.time(7))
    assert not in_time_window(night, dt.time(12))
    day = parse_time_window("09:00-17:00")
    assert in_time_window(day, dt.time(9)) and not in_time_window(day, dt.time(17))
    assert not in_time_window(day, dt.time(8, 59))


def test_empty_glob_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[policy]\nexclude = ["*.tmp", " "]\n')
    with pytest.raises(ConfigError, match=r"policy.exclude.*empty glob"):
        load_config(path)
