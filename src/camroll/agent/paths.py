"""Where the agent keeps its config, state database and logs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "CAMROLL_HOME"


@dataclass(frozen=True)
class AgentPaths:
    """The agent's files.  ``camroll up`` builds one pointing into the server's data directory; the
    CLI uses :meth:`default`."""

    config_file: Path
    state_db: Path
    log_dir: Path

    @classmethod
    def in_dir(cls, home: Path) -> AgentPaths:
        """Everything under one directory (``CAMROLL_HOME`` or ``<server data>/agent``)."""
        return cls(config_file=home / "config.toml", state_db=home / "state.db", log_dir=home / "logs")

    @classmethod
    def default(cls) -> AgentPaths:
        home = os.environ.get(HOME_ENV)
        if home:
            return cls.in_dir(Path(home).expanduser())
        # platformdirs costs a few ms to import; only pay it when CAMROLL_HOME is not set.
        import platformdirs

        state = Path(platformdirs.user_state_dir("camroll"))
        return cls(
            config_file=Path(platformdirs.user_config_dir("camroll")) / "config.toml",
            state_db=state / "state.db",
            log_dir=state / "logs",
        )
