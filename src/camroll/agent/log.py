"""The agent's log file (``logs/agent.log``): one line per file outcome and per pass, so a person can
see later what happened to any file and why."""

from __future__ import annotations

import logging
import logging.handlers

from camroll.agent.paths import AgentPaths

logger = logging.getLogger("camroll.agent")


def setup_file_logging(paths: AgentPaths) -> None:
    """Append to ``<log_dir>/agent.log`` (rotated at 5 MB, 3 kept).  Failing to open the log must not
    stop a backup, so errors here are ignored."""
    if any(getattr(h, "_camroll", False) for h in logger.handlers):
        return
    try:
        paths.log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            paths.log_dir / "agent.log", maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8"
        )
    except OSError:
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler._camroll = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
