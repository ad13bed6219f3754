"""The agent's log file (``<log_dir>/agent.log``, rotated at 5 MB): one line per file outcome and per
pass, so a person can see later what happened to any file and why."""

from __future__ import annotations

import logging
import logging.handlers

from camroll.agent.paths import AgentPaths

logger = logging.getLogger("camroll.agent")


class _Readable(logging.Formatter):
    """Paths that are not UTF-8 appear as \\xNN instead of breaking the UTF-8 log line."""

    def format(self, record: logging.LogRecord) -> str:
        from camroll.agent.fsnames import shown

        return shown(super().format(record))


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
    handler.setFormatter(_Readable("%(asctime)s %(levelname)s %(message)s"))
    handler._camroll = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def setup_stderr_logging(level: int = logging.WARNING) -> None:
    """Also log to stderr at ``level`` (a foreground ``camroll agent``; under systemd or launchd stderr
    lands in their logs too).  Problems show where the person is looking; the file keeps everything."""
    if any(getattr(h, "_camroll_stderr", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setLevel(level)
    handler.setFormatter(_Readable("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    handler._camroll_stderr = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
