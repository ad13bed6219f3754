"""Where the agent keeps its config, state database and logs.

In order: ``$CAMROLL_HOME``; else the platform's config and state dirs when a config is there; else the
agent of the last ``camroll up`` (``up`` leaves a pointer file, ``allinone.json``, in the platform's
config dir), so that ``camroll status``, ``problems``, ``why`` and ``doctor`` work after ``camroll up``
with no variable set; else the platform's dirs (nothing set up yet).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "CAMROLL_HOME"
# Written by ``camroll up`` into its agent's home and as the pointer in the platform's config dir:
# {"data": "<the --data folder>", "home": "<its agent home>"}.
ALLINONE_FILE = "allinone.json"


@dataclass(frozen=True)
class AllInOne:
    """The ``camroll up`` folder an agent home belongs to."""

    data: Path
    home: Path


def read_allinone(path: Path) -> AllInOne | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return AllInOne(Path(raw["data"]), Path(raw["home"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_allinone(path: Path, info: AllInOne) -> None:
    """Write ``path`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"data": str(info.data), "home": str(info.home)}) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True)
class AgentPaths:
    """The agent's files.  ``camroll up`` builds one with :meth:`in_dir` on its own agent home; the CLI
    uses :meth:`default`.  ``allinone`` says which ``camroll up`` folder the agent belongs to, if any."""

    config_file: Path
    state_db: Path
    log_dir: Path
    allinone: AllInOne | None = None

    @classmethod
    def in_dir(cls, home: Path) -> AgentPaths:
        """Everything under one directory (``CAMROLL_HOME`` or ``<camroll up folder>/agent``)."""
        return cls(config_file=home / "config.toml", state_db=home / "state.db", log_dir=home / "logs",
                   allinone=read_allinone(home / ALLINONE_FILE))

    @classmethod
    def platform(cls) -> AgentPaths:
        """The platform's config and state dirs (``~/.config/camroll``, ``~/.local/state/camroll``)."""
        # platformdirs costs a few ms to import; only pay it when CAMROLL_HOME is not set.
        import platformdirs

        state = Path(platformdirs.user_state_dir("camroll"))
        return cls(
            config_file=Path(platformdirs.user_config_dir("camroll")) / "config.toml",
            state_db=state / "state.db",
            log_dir=state / "logs",
        )

    @classmethod
    def default(cls, *, follow_up: bool = True) -> AgentPaths:
        """The agent the CLI works on (see the module docstring).  ``follow_up=False`` ignores the last
        ``camroll up``'s pointer: ``camroll login`` to another server sets up this device's own agent
        instead of re-pointing the all-in-one one."""
        home = os.environ.get(HOME_ENV)
        if home:
            return cls.in_dir(Path(home).expanduser())
        own = cls.platform()
        if follow_up and not own.config_file.exists():
            up = read_allinone(pointer_file(own))
            if up is not None and (up.home / "config.toml").exists():
                return cls.in_dir(up.home)
        return own


def pointer_file(own: AgentPaths) -> Path:
    """Where ``camroll up`` leaves the pointer to its agent: beside the platform config file."""
    return own.config_file.parent / ALLINONE_FILE
