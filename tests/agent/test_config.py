from __future__ import annotations

import stat
from pathlib import Path

import pytest

from camroll.agent.config import AgentConfig, PolicyConfig, ServerConfig, load_config, save_config
from camroll.agent.errors import ConfigError, NotLoggedIn
from camroll.agent.paths import AgentPaths


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
        policy=PolicyConfig(upload_concurrency=5),
    )
    save_config(path, cfg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind
    again = load_config(path)
    assert again == cfg
    assert "[policy]" in path.read_text()


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
