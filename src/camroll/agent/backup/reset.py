"""``camroll reset-cache``: move the state DB aside (``state.cache``) and rebuild it with a normal pass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from camroll.agent.backup.run import run_backup
from camroll.agent.errors import AgentError
from camroll.agent.events import EventCallback, Summary
from camroll.agent.paths import AgentPaths
from camroll.agent.settings.config import AgentConfig, load_config
from camroll.agent.state.cache import move_aside_for_reset
from camroll.units import format_size, plural

if TYPE_CHECKING:
    import httpx

    from camroll.agent.settings.conditions import Probes


@dataclass(frozen=True)
class ResetResult:
    old_file: Path | None
    summary: Summary


def reset_cache(paths: AgentPaths, config: AgentConfig | None = None, on_event: EventCallback | None = None,
                *, transport: httpx.BaseTransport | None = None, probes: Probes | None = None) -> ResetResult:
    """``camroll reset-cache``: move the state DB aside and rebuild it with a normal backup pass, which
    hashes every file and asks the server which hashes it already has, so nothing already there is
    uploaded again.  Not-logged-in and no-folders errors are raised before anything is moved."""
    cfg = config if config is not None else load_config(paths.config_file)
    cfg.require_server()
    if not cfg.folders:
        raise AgentError("No folders to back up, so there is nothing to rebuild. Run: camroll folder add PATH")
    old = move_aside_for_reset(paths)
    summary = run_backup(paths, cfg, on_event, transport=transport, probes=probes)
    return ResetResult(old, summary)


def reset_text(result: ResetResult) -> str:
    """"rebuilt: 1,234 files, all already on the server; 0 bytes uploaded" and what else happened."""
    s = result.summary
    known = s.files_already_on_server + s.files_uploaded
    if s.files_uploaded == 0:
        head = (f"rebuilt: {known:,} file{'' if known == 1 else 's'}, all already on the server; "
                f"{s.bytes_uploaded:,} bytes uploaded")
    else:
        head = (f"rebuilt: {plural(known, 'file')}; {s.files_already_on_server:,} already on the server, "
                f"{s.files_uploaded:,} new ones uploaded ({format_size(s.bytes_uploaded)})")
    extra = []
    if s.files_skipped:
        extra.append(f"{s.files_skipped:,} skipped (see camroll status)")
    if s.files_failed:
        extra.append(f"{s.files_failed:,} failed (see camroll status)")
    if s.files_waiting:
        extra.append(f"{s.files_waiting:,} still waiting")
    lines = [head + (f"; {', '.join(extra)}" if extra else "")]
    if s.stopped_reason:
        lines.append(f"The rebuild stopped early: {s.stopped_reason} The next 'camroll backup' finishes it.")
    if result.old_file is not None:
        lines.append(f"The old state database is kept as {result.old_file}.")
    return "\n".join(lines)
