"""``camroll status``: the backup's headline state and counts, from the local state DB only, so it is
instant and works offline."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from camroll.agent.cache import open_state_db
from camroll.agent.config import AgentConfig
from camroll.agent.engine import (
    META_LAST_PASS,
    META_LAST_STOP,
    META_LAST_SUCCESS,
    META_POLICY_CODE,
    META_POLICY_REASON,
)
from camroll.agent.paths import AgentPaths
from camroll.agent.state import STATES

WAITING = ("pending", "hashing", "uploading")


@dataclass
class FileProblem:
    path: str
    reason: str
    attempts: int
    next_retry_at: float | None


@dataclass
class Status:
    headline: str
    logged_in: bool
    server_url: str | None
    folders: list[str]
    files: dict[str, int]
    bytes: dict[str, int]
    last_successful_backup_at: float | None
    last_pass_at: float | None
    stopped_reason: str | None
    # The backup policy's code ("battery_low", "disabled", ...) when it paused the last pass, else None.
    paused_by_policy: str | None = None
    failed: list[FileProblem] = field(default_factory=list)
    skipped: list[FileProblem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _float(v: str | None) -> float | None:
    try:
        return float(v) if v else None
    except ValueError:
        return None


def get_status(paths: AgentPaths, config: AgentConfig) -> Status:
    files: dict[str, int] = dict.fromkeys(STATES, 0)
    nbytes: dict[str, int] = dict.fromkeys(STATES, 0)
    last_ok = last_pass = None
    stopped: str | None = None
    paused: str | None = None
    failed: list[FileProblem] = []
    skipped: list[FileProblem] = []
    if paths.state_db.exists():
        with open_state_db(paths) as db:
            c = db.counts()
            files.update(c.files)
            nbytes.update(c.bytes)
            last_ok = _float(db.get_meta(META_LAST_SUCCESS))
            last_pass = _float(db.get_meta(META_LAST_PASS))
            stopped = db.get_meta(META_LAST_STOP) or None
            code = db.get_meta(META_POLICY_CODE)
            if stopped and code not in (None, "ok") and db.get_meta(META_POLICY_REASON) == stopped:
                paused = code
            failed = [FileProblem(r.path, r.reason, r.attempts, r.next_retry_at) for r in db.failed()]
            skipped = [FileProblem(r.path, r.reason, r.attempts, None) for r in db.rows_in_state("skipped")]
    waiting = sum(files[s] for s in WAITING)
    if config.server is None:
        headline = "Not logged in. Run: camroll login URL --user NAME"
    elif not config.folders:
        headline = "No folders to back up. Run: camroll folder add PATH"
    elif stopped:
        # A policy pause is already a full sentence ("Paused: ...", "Off: ...").
        headline = stopped if paused else f"Stopped: {stopped}"
    elif files["failed"]:
        headline = f"{_plural(files['failed'], 'file')} failed: {failed[0].reason if failed else ''}"
    elif waiting:
        headline = f"{_plural(waiting, 'file')} waiting to upload"
    elif last_pass is None:
        headline = "Nothing backed up yet. Run: camroll backup"
    else:
        headline = f"All {_plural(files['backed_up'], 'file')} backed up"
    return Status(headline, config.server is not None, config.server.url if config.server else None,
                  list(config.folders), files, nbytes, last_ok, last_pass, stopped, paused, failed, skipped)


def _ago(ts: float | None) -> str:
    if ts is None:
        return "never"
    secs = max(0, time.time() - ts)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    if secs < 90:
        return f"{when} ({int(secs)} s ago)"
    if secs < 5400:
        return f"{when} ({int(secs // 60)} min ago)"
    if secs < 36 * 3600:
        return f"{when} ({secs / 3600:.1f} h ago)"
    return f"{when} ({secs / 86400:.1f} days ago)"


def status_text(st: Status) -> str:
    lines = [st.headline]
    if st.server_url:
        lines.append(f"Server: {st.server_url}")
    for f in st.folders:
        lines.append(f"Folder: {f}")
    labels = {"backed_up": "backed up", "pending": "new or changed", "hashing": "hashing",
              "uploading": "waiting to upload", "skipped": "skipped", "failed": "failed",
              "vanished": "vanished"}
    for s in STATES:
        if st.files[s]:
            lines.append(f"  {labels[s]:<18} {st.files[s]:>9,} files {st.bytes[s] / 1e6:>12,.1f} MB")
    lines.append(f"Last successful backup: {_ago(st.last_successful_backup_at)}")
    for p in st.failed[:10]:
        retry = ""
        if p.next_retry_at:
            at = time.strftime("%H:%M:%S", time.localtime(p.next_retry_at))
            retry = f" (attempt {p.attempts}; retry after {at})"
        lines.append(f"  failed {p.path}: {p.reason}{retry}")
    for p in st.skipped[:5]:
        lines.append(f"  skipped {p.path}: {p.reason}")
    return "\n".join(lines)
