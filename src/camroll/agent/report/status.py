"""``camroll status``: the backup's headline state and counts, from the local state DB only, so it is
instant and works offline."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from camroll.agent.fsnames import shown
from camroll.agent.paths import AgentPaths
from camroll.agent.settings.config import AgentConfig
from camroll.agent.state import lastpass
from camroll.agent.state.cache import open_state_db
from camroll.agent.state.db import STATES, FileRow, StateDB
from camroll.agent.state.tally import Tally, plural, tally
from camroll.agent.stops import Stop

WAITING = ("pending", "hashing", "uploading", "waiting")


@dataclass
class FileProblem:
    path: str
    reason: str
    attempts: int
    next_retry_at: float | None
    code: str = ""
    fix: str = ""


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
    # What stopped the last pass as a code (``stops.Stop.shown_code``), else None.
    stopped_code: str | None = None
    waiting: list[FileProblem] = field(default_factory=list)
    # Files not backed up for a reason (failed, waiting, skipped, unreadable): 'camroll problems' lists them.
    problems: int = 0
    # Backed up, but the photo looks damaged (truncated JPEG...).
    warnings: list[FileProblem] = field(default_factory=list)
    fix: str = ""
    # Sentences about what happened to the backup itself: when it was switched off, a rebuilt state DB.
    notes: list[str] = field(default_factory=list)
    # The counts every view shows (status rows, pass summary, heartbeat): see agent/tally.py.
    tally: Tally = field(default_factory=Tally)
    # Paths the last scan saw but could not even stat (see ``state.lastpass.scan_unreadable``).
    unreadable: list[FileProblem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_plural = plural


def get_status(paths: AgentPaths, config: AgentConfig) -> Status:
    files: dict[str, int] = dict.fromkeys(STATES, 0)
    nbytes: dict[str, int] = dict.fromkeys(STATES, 0)
    last_ok: float | None = None
    last_pass: float | None = None
    stop: Stop | None = None
    stopped: str | None = None
    paused: str | None = None
    failed: list[FileProblem] = []
    skipped: list[FileProblem] = []
    waiting_rows: list[FileProblem] = []
    warnings: list[FileProblem] = []
    stop_code: str | None = None
    unreadable: list[tuple[str, str]] = []
    notes: list[str] = []
    counts = Tally()
    if not config.policy.enabled:
        notes.append(_switched_off_note(paths))
    if paths.state_db.exists():
        with open_state_db(paths) as db:
            notes += _rebuilt_note(db)
            c = db.counts()
            files.update(c.files)
            nbytes.update(c.bytes)
            record = lastpass.read(db)
            last_ok, last_pass = record.succeeded_at, record.at
            if record.stop is not None:
                stop = record.stop
                stopped, stop_code = stop.sentence, stop.shown_code
                paused = stop.shown_code if stop.paused else None
            failed = [_problem(r) for r in db.failed()]
            # Files left out by choice are counted, not listed as problems.
            skipped = [_problem(r) for r in db.skipped_by_rule()]
            waiting_rows = [_problem(r) for r in db.waiting()]
            warnings = [FileProblem(shown(r.path), r.warning, 0, None, "damaged")
                        for r in db.backed_up_with_warning()]
            from camroll.agent.state.lastpass import scan_unreadable

            unreadable = scan_unreadable(db)
            counts = tally(db)
    waiting = sum(files[s] for s in WAITING)
    fix = ""
    # The single most important blocker first: what stopped the whole backup (policy pause, metered cap,
    # quota, server unreachable, client too old), then failed files, then files waiting for a reason.
    if config.server is None:
        headline = "Not logged in. Run: camroll login URL --user NAME"
    elif not config.folders:
        headline = "No folders to back up. Run: camroll folder add PATH"
    elif stop is not None:
        headline = stop.headline
    elif files["failed"]:
        first = failed[0] if failed else None
        headline = f"{_plural(files['failed'], 'file')} failed: {first.reason if first else ''}"
        fix = first.fix if first else ""
    elif files["waiting"]:
        first = waiting_rows[0] if waiting_rows else None
        headline = f"{_plural(files['waiting'], 'file')} waiting: {first.reason if first else ''}"
        fix = first.fix if first else ""
    elif waiting:
        headline = f"{_plural(waiting, 'file')} waiting to upload"
        fix = "Run: camroll backup"
    elif last_pass is None:
        headline = "Nothing backed up yet. Run: camroll backup"
    elif unreadable:
        headline = (f"Everything else is backed up, but {_plural(len(unreadable), 'file')} could not be read "
                    "(camroll problems lists them)")
    else:
        headline = f"All {_plural(files['backed_up'], 'file')} backed up"
    problems = counts.problems
    return Status(headline, config.server is not None, config.server.url if config.server else None,
                  list(config.folders), files, nbytes, last_ok, last_pass, stopped, paused, failed, skipped,
                  stop_code, waiting_rows, problems, warnings, fix, notes, counts,
                  [_unreadable(p, why) for p, why in unreadable[:20]])


def _switched_off_note(paths: AgentPaths) -> str:
    """When backup was switched off: "switched off by accident" is a cause users only find by its date."""
    from camroll.agent.settings.user_settings import switched_off_at
    from camroll.agent.state.cache import when_text

    off = switched_off_at(paths)
    if off is None:
        return "Backup is switched off (enabled = false)."
    return f"Backup was turned off on {when_text(off.timestamp())} (camroll settings set enabled true)."


def _rebuilt_note(db: StateDB) -> list[str]:
    """A rebuilt state DB is news for a week, then history."""
    from camroll.agent.state.cache import notice_for, rebuilt_info

    info = rebuilt_info(db)
    if info is None or time.time() - info.at > 7 * 86400:
        return []
    return [notice_for(info)]


def _unreadable(path: str, why: str) -> FileProblem:
    from camroll.agent.report.problems import unreadable_row

    pr = unreadable_row(path, why)
    return FileProblem(shown(path), pr.reason, 0, None, pr.code, pr.fix)


def _problem(r: FileRow) -> FileProblem:
    from camroll.agent.report.problems import default_fix

    return FileProblem(shown(r.path), r.reason, r.attempts, r.next_retry_at, r.code, default_fix(r))


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


def _row(label: str, n: int, tail: str = "") -> str:
    return f"  {label:<18} {n:>9,} {'file ' if n == 1 else 'files'}{' ' + tail if tail else ''}".rstrip()


def status_text(st: Status) -> str:
    lines = [st.headline]
    if st.fix:
        lines.append(f"Fix: {st.fix}")
    lines += st.notes
    if st.server_url:
        lines.append(f"Server: {st.server_url}")
    for f in st.folders:
        lines.append(f"Folder: {f}")
    labels = {"backed_up": "backed up", "pending": "new or changed", "hashing": "hashing",
              "uploading": "waiting to upload", "waiting": "waiting", "skipped": "skipped", "failed": "failed",
              "vanished": "vanished", "ignored": "ignored"}
    t = st.tally
    for s in STATES:
        # Skipped files left out by choice get a row of their own below.
        n = st.files[s] - (t.left_out if s == "skipped" else 0)
        if n:
            size = f"{st.bytes[s] / 1e6:>12,.1f} MB" if s != "skipped" or not t.left_out else ""
            lines.append(_row(labels[s], n, size))
    if t.unreadable:
        lines.append(_row("could not be read", t.unreadable))
    if t.left_out:
        lines.append(_row("left out", t.left_out, "  hidden, trashed or excluded: camroll problems --all"))
    lines.append(f"Last successful backup: {_ago(st.last_successful_backup_at)}")
    for p in st.failed[:10]:
        retry = ""
        if p.next_retry_at:
            at = time.strftime("%H:%M:%S", time.localtime(p.next_retry_at))
            retry = f" (attempt {p.attempts}; retry after {at})"
        lines.append(f"  failed {p.path}: {p.reason}{retry}")
    for p in st.unreadable[:5]:
        lines.append(f"  unreadable {p.path}: {p.reason}")
    for p in st.waiting[:5]:
        lines.append(f"  waiting {p.path}: {p.reason}")
    for p in st.skipped[:5]:
        lines.append(f"  skipped {p.path}: {p.reason}")
    for p in st.warnings[:5]:
        lines.append(f"  warning {p.path}: {p.reason}")
    if st.problems:
        lines.append(f"{_plural(st.problems, 'file')} not backed up: 'camroll problems' lists each with its fix; "
                     "'camroll why PATH' tells one file's story.")
    return "\n".join(lines)
