"""Where the agent commands look: $CAMROLL_HOME, this device's own config, else the last `camroll up`."""

from __future__ import annotations

from pathlib import Path

import pytest

from camroll.agent.paths import ALLINONE_FILE, AgentPaths, AllInOne, pointer_file, write_allinone


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CAMROLL_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path


def _up_home(root: Path) -> AllInOne:
    info = AllInOne(root, root / "agent")
    info.home.mkdir(parents=True)
    (info.home / "config.toml").write_text("folders = []\n")
    write_allinone(info.home / ALLINONE_FILE, info)
    return info


def test_the_last_up_is_followed_when_the_device_has_no_agent_of_its_own(dirs: Path) -> None:
    own = AgentPaths.platform()
    assert AgentPaths.default() == own  # nothing set up yet
    info = _up_home(dirs / "camroll")
    write_allinone(pointer_file(own), info)
    paths = AgentPaths.default()
    assert paths.config_file == info.home / "config.toml" and paths.allinone == info
    # camroll login sets up this device's own agent, which from then on wins.
    assert AgentPaths.default(follow_up=False) == own
    own.config_file.parent.mkdir(parents=True, exist_ok=True)
    own.config_file.write_text("folders = []\n")
    assert AgentPaths.default() == own


def test_camroll_home_wins_and_a_vanished_up_folder_is_ignored(dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = _up_home(dirs / "camroll")
    write_allinone(pointer_file(AgentPaths.platform()), AllInOne(dirs / "gone", dirs / "gone" / "agent"))
    assert AgentPaths.default() == AgentPaths.platform()
    monkeypatch.setenv("CAMROLL_HOME", str(info.home))
    assert AgentPaths.default().allinone == info
