"""Files that are not backed up and why: ``camroll problems``, ``why``, ``retry`` and ``ignore`` as a library
over the state DB (the CLI only prints).  :func:`problem_rows` is also what the watch loop and heartbeats
read."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from camroll.agent.errors import AgentError
from camroll.agent.fsnames import raw_for_wire, shown, unshown
from camroll.agent.settings.config import AgentConfig
from camroll.agent.state.db import FileEvent, FileRow, FileState, NewFile, StateDB
from camroll.agent.state.lastpass import read as read_last_pass
from camroll.agent.state.lastpass import scan_unreadable

# How each stored state reads to a person.  ``hashing`` is work in progress like an upload; files
# hashed and queued for the server check are "uploading" too.
DISPLAY: dict[str, str] = {
    "pending": "pending", "hashing": "uploading", "uploading": "uploading", "waiting": "waiting",
    "backed_up": "backed up", "skipped": "skipped", "failed": "failed", "vanished": "vanished",
    "ignored": "ignored",
}
IGNORED_REASON = "you asked camroll never to back it up (camroll ignore)"
# Skips that ``retry --all`` looks at again (an empty or non-media file cannot change by retrying).
RETRYABLE_SKIPS = ("too_large", "excluded", "unsupported_type")


@dataclass(frozen=True)
class ProblemRow:
    """One file that is not backed up: ``state`` is failed, unreadable, waiting or skipped."""

    path: str
    state: str
    code: str
    reason: str
    fix: str
    attempts: int = 0
    next_retry_at: float | None = None
    since: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def default_fix(row: FileRow) -> str:
    """The fix for rows written before version 2 (or states that need none stored)."""
    if row.fix:
        return row.fix
    return {
        "pending": "Nothing to do: the next backup takes it (camroll backup).",
        "hashing": "Nothing to do: the backup is on it.",
        "uploading": "Nothing to do: the backup is on it; an interrupted upload resumes where it stopped.",
        "waiting": "Nothing to do: it goes once the reason clears.",
        "failed": "camroll retries it by itself; 'camroll retry PATH' tries it on the next backup.",
        "vanished": "Nothing to do: it is no longer on this device; a copy already on the server stays there.",
        "ignored": f"camroll ignore --undo {row.path}",
    }.get(row.state, "")


def unreadable_row(path: str, reason: str) -> ProblemRow:
    from camroll.agent.backup.filepolicy import UNREADABLE_FIX

    return ProblemRow(shown(path), "unreadable", "unreadable", f"cannot read: {reason}", UNREADABLE_FIX)


def problem_rows(db: StateDB, limit: int = 1000, *, excluded: bool = True) -> list[ProblemRow]:
    """Every file not backed up for a reason, most important first: failed, unreadable (seen by the
    scan but not recordable), waiting, then skipped.  Ignored and vanished files are not problems;
    ``excluded=False`` also leaves out files the include/exclude settings keep out."""
    rows = db.problem_files(limit, excluded=excluded)
    failed = [r for r in rows if r.state == "failed"]
    rest = [r for r in rows if r.state != "failed"]
    out = [_row(r) for r in failed]
    out += [unreadable_row(p, why) for p, why in scan_unreadable(db)]
    out += [_row(r) for r in rest]
    return out[:limit]


def _row(r: FileRow) -> ProblemRow:
    return ProblemRow(shown(r.path), r.state, r.code or r.state, r.reason, default_fix(r), r.attempts, r.next_retry_at,
                      r.updated_at or None)


# --- why ------------------------------------------------------------------------------------------
@dataclass
class Story:
    path: str
    state: str
    stored_state: str
    code: str
    reason: str
    fix: str
    warning: str = ""
    size: int | None = None
    sha256: str | None = None
    media_type: str | None = None
    asset_id: int | None = None
    attempts: int = 0
    next_retry_at: float | None = None
    first_seen_at: float | None = None
    backed_up_at: float | None = None
    upload_offset: int | None = None
    # What stopped the whole backup at the last pass (quota, server unreachable, a policy pause...), for
    # files still waiting for it.
    blocked_by: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    # Base64 of the path's exact bytes when they are not UTF-8 (``path`` shows them as \\xNN).
    path_raw: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def normalise(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _candidates(path: str) -> list[str]:
    a = normalise(path)
    out = [a]
    r = os.path.realpath(a)
    if r != a:
        out.append(r)
    # A name that is not UTF-8, as camroll printed it (IMG_caf\\xe9.jpg), copied back by the user.
    raw = unshown(a)
    if raw is not None:
        out.append(raw)
    return out


def find_row(db: StateDB, path: str) -> FileRow | None:
    for p in _candidates(path):
        row = db.find(p)
        if row is not None:
            return row
    return None


def folder_of(cfg: AgentConfig, path: str) -> str | None:
    for p in _candidates(path):
        for f in cfg.folders:
            if p == f or p.startswith(f.rstrip(os.sep) + os.sep):
                return f
    return None


def unknown_file(cfg: AgentConfig, path: str) -> AgentError:
    """The error for a path the state DB does not know, saying why not."""
    raw = normalise(path)
    p = shown(raw)
    folder = folder_of(cfg, path)
    if folder is None:
        parent = shown(os.path.dirname(raw) if not os.path.isdir(raw) else raw)
        return AgentError(f"camroll has not seen {p}: it is not under a backed-up folder (camroll folder list). "
                          f"Fix: camroll folder add {parent}")
    if not os.path.lexists(raw):
        return AgentError(f"{p} does not exist. Fix: check the path.")
    if os.path.isdir(raw):
        return AgentError(f"{p} is a folder; camroll tracks files. Fix: name a file in it.")
    rel = os.path.relpath(raw, folder)
    if any(part.startswith(".") for part in rel.split(os.sep)):
        return AgentError(f"camroll does not back up {p}: hidden files and folders (names starting with '.') "
                          "are left out. Fix: rename it without the leading dot.")
    return AgentError(f"camroll has not seen {p} yet: it is new since the last backup. Fix: camroll backup")


def why(db: StateDB, cfg: AgentConfig, path: str) -> Story:
    """The whole story of one file; raises ``AgentError`` saying why camroll does not know it."""
    row = find_row(db, path)
    if row is None:
        p = normalise(path)
        for bad, reason in scan_unreadable(db):
            if bad in _candidates(path) or p.startswith(bad.rstrip(os.sep) + os.sep):
                pr = unreadable_row(bad, reason)
                return Story(shown(p), "unreadable", "unreadable", pr.code, pr.reason, pr.fix, path_raw=raw_for_wire(p))
        raise unknown_file(cfg, path)
    events: list[FileEvent] = db.events(row.id)
    blocked = ""
    if row.state in ("pending", "hashing", "uploading", "waiting", "failed"):
        blocked = last_stop(db)
    story = [{"at": row.first_seen_at, "event": "seen", "detail": f"found by a scan ({row.size:,} bytes)"}]
    story += [{"at": e.at, "event": e.kind, "detail": e.detail} for e in events]
    return Story(
        path=shown(row.path), path_raw=raw_for_wire(row.path), state=DISPLAY.get(row.state, row.state),
        stored_state=row.state, code=row.code,
        reason=row.reason, fix=default_fix(row), warning=row.warning, size=row.size, sha256=row.sha256,
        media_type=row.mime, asset_id=row.asset_id, attempts=row.attempts, next_retry_at=row.next_retry_at,
        first_seen_at=row.first_seen_at, backed_up_at=row.backed_up_at, upload_offset=row.upload_offset,
        blocked_by=blocked, events=story,
    )


def last_stop(db: StateDB) -> str:
    """The headline of what stopped the last pass ("Stopped: ...", "Paused: ..."), or ""."""
    stop = read_last_pass(db).stop
    return "" if stop is None else stop.headline


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def story_text(s: Story) -> str:
    from camroll.units import format_size

    lines = [s.path, f"  State:    {s.state}" + (f" ({s.code})" if s.code and s.code != s.stored_state else "")]
    if s.reason:
        lines.append(f"  Reason:   {s.reason}")
    if s.warning:
        lines.append(f"  Warning:  {s.warning}")
    if s.fix:
        lines.append(f"  Fix:      {s.fix}")
    if s.blocked_by:
        lines.append(f"  Blocked:  {s.blocked_by}")
    if s.size is not None:
        lines.append(f"  Size:     {format_size(s.size)} ({s.size:,} bytes)")
    if s.media_type or s.sha256:
        lines.append(f"  Type:     {s.media_type or '-'}   SHA-256: {s.sha256 or '-'}")
    if s.asset_id is not None:
        lines.append(f"  On the server as asset {s.asset_id}, verified {_when(s.backed_up_at)}")
    if s.attempts:
        nxt = f"; next retry after {_when(s.next_retry_at)}" if s.next_retry_at else ""
        lines.append(f"  Attempts: {s.attempts}{nxt}")
    if s.upload_offset:
        lines.append(f"  Upload:   {format_size(s.upload_offset)} already on the server; resumes from there")
    if s.events:
        lines.append("  History:")
        for e in s.events:
            lines.append(f"    {_when(e['at'])}  {e['event']:<9} {e['detail']}")
    return "\n".join(lines)


# --- retry and ignore ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    path: str
    before: str
    done: bool
    message: str


def retry(db: StateDB, cfg: AgentConfig, path: str | None) -> list[Outcome]:
    """Make failed (and skipped) files eligible on the next backup, behind fresh work.  ``path`` None
    means every failed file and every file skipped by a rule that may have changed."""
    if path is None:
        rows = db.retryable(RETRYABLE_SKIPS)
        out = []
        with db.batch():
            for r in rows:
                db.make_eligible(r.id, "retry requested (camroll retry --all)")
                out.append(Outcome(r.path, r.state, True, f"{DISPLAY[r.state]}: {r.reason}"))
        return out
    row = find_row(db, path)
    if row is None:
        raise unknown_file(cfg, path)
    state: FileState = row.state
    if state in ("failed", "skipped", "waiting"):
        db.make_eligible(row.id, "retry requested (camroll retry)")
        return [Outcome(row.path, state, True, f"was {DISPLAY[state]}: {row.reason}")]
    msg = {
        "backed_up": "already backed up; nothing to retry",
        "pending": "already waiting for the next backup",
        "hashing": "the backup is already on it",
        "uploading": "the backup is already on it",
        "vanished": "no longer on this device; nothing to retry",
        "ignored": f"ignored; to back it up run camroll ignore --undo {row.path}",
    }[state]
    return [Outcome(row.path, state, False, msg)]


def ignore(db: StateDB, cfg: AgentConfig, path: str, *, undo: bool = False) -> Outcome:
    """Never back up ``path`` (or, with ``undo``, back it up again)."""
    from camroll.agent.backup.hasher import stat_key

    row = find_row(db, path)
    if undo:
        if row is None or row.state != "ignored":
            if row is None and folder_of(cfg, path) is None:
                raise unknown_file(cfg, path)
            return Outcome(normalise(path), row.state if row else "unknown", False, "was not ignored; nothing changed")
        db.set_pending(row.id, "no longer ignored (camroll ignore --undo)", clear_hash=False)
        db.add_event(row.id, "unignored", "camroll ignore --undo")
        return Outcome(row.path, "ignored", True, "no longer ignored; the next backup takes it")
    fix = f"camroll ignore --undo {row.path if row else normalise(path)}"
    if row is not None:
        if row.state == "ignored":
            return Outcome(row.path, "ignored", False, "already ignored")
        db.set_state(row.id, "ignored", IGNORED_REASON, "ignored", fix)
        kept = " (its copy already on the server stays there)" if row.state == "backed_up" else ""
        return Outcome(row.path, row.state, True, f"ignored{kept}; undo with {fix}")
    folder = folder_of(cfg, path)
    p = normalise(path)
    if folder is None or not os.path.isfile(p):
        raise unknown_file(cfg, path)
    size, mtime_ns, inode = stat_key(p)
    db.add_file(NewFile(p, folder, size, mtime_ns, inode), "ignored", IGNORED_REASON, "ignored", fix)
    return Outcome(p, "unknown", True, f"ignored; undo with {fix}")
