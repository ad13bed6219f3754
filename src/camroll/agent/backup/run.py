"""One backup pass from start to end: scan, apply the file rules and the backup policy, run the pipeline
(``coordinator``) on what is left, then write the last-pass record and the headline.

Every file ends the pass in exactly one state with a reason; one bad file never stops the others.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING

from camroll.agent.backup.coordinator import PassCoordinator
from camroll.agent.backup.feed import WorkFeed
from camroll.agent.backup.filepolicy import DEFAULT_SETTLE_SECONDS
from camroll.agent.backup.rulegate import reopen_if_policy_changed, stored_limits
from camroll.agent.backup.scanner import ScanResult, scan
from camroll.agent.errors import AgentError
from camroll.agent.events import Event, EventCallback, PassFinished, Problem, ScanFinished, Summary
from camroll.agent.log import logger
from camroll.agent.paths import AgentPaths
from camroll.agent.service.lock import pass_lock
from camroll.agent.settings.conditions import Probes
from camroll.agent.settings.config import AgentConfig, load_config
from camroll.agent.state import lastpass
from camroll.agent.state.cache import open_state_db
from camroll.agent.state.db import StateDB
from camroll.agent.stops import Stop, StopCode

if TYPE_CHECKING:
    import httpx

META_SERVER_IDENTITY = "server_identity"


def _noop(event: Event) -> None:
    pass


def run_backup(paths: AgentPaths, config: AgentConfig | None = None, on_event: EventCallback | None = None,
               *, retry_failed_now: bool = False, stop: threading.Event | None = None,
               transport: httpx.BaseTransport | None = None, probes: Probes | None = None,
               settle_seconds: float = DEFAULT_SETTLE_SECONDS, report: bool = True) -> Summary:
    """Run one backup pass and return its summary.

    ``config`` defaults to the file at ``paths.config_file``.  ``on_event`` receives progress events
    from several threads.  ``stop`` lets a caller end the pass early; unfinished uploads stay
    resumable.  ``transport`` replaces the network (tests).  ``probes`` reads battery, power saver and
    network (default: this machine's); the backup policy is evaluated once, after the scan, and only
    when there is work, so a pass with nothing to do runs no probe programs.  A paused pass hashes and
    uploads nothing: its summary's ``stop`` is a PAUSED ``Stop`` whose sentence is also the headline.
    Raises ``AgentError`` (with a user-facing message) only for problems that prevent the pass from
    starting, such as not being logged in; problems during the pass are in the summary.
    ``settle_seconds``: files modified more recently wait for a later pass (still being written).
    ``report``: send a heartbeat once the pass is over (the daemon sends its own and passes False).
    """
    cfg = config if config is not None else load_config(paths.config_file)
    server = cfg.require_server()
    if not cfg.folders:
        raise AgentError("No folders to back up. Run: camroll folder add PATH")
    started = time.monotonic()
    emit = on_event or _noop
    with pass_lock(paths.state_db), open_state_db(paths) as db:
        # A new login (new server or account) brings a new device token; a changed URL for the same
        # server (another port, a new host name) does not, and must not make every file be re-checked.
        identity = hashlib.sha256(server.token.encode()).hexdigest()[:16]
        if db.get_meta(META_SERVER_IDENTITY) not in (None, identity):
            db.reset_for_new_server()
        if db.get_meta(META_SERVER_IDENTITY) != identity:
            db.set_meta(META_SERVER_IDENTITY, identity)
        result = scan(db, cfg.folders)
        lastpass.record_scan_unreadable(db, result.unreadable)
        limits = stored_limits(db)
        reopen_if_policy_changed(db, cfg, limits)
        now = time.time()
        _retry_readable_again(db, now)
        summary = Summary(files_scanned=result.files_seen, files_new=result.new,
                          files_changed=result.changed, files_vanished=result.vanished)
        # The user's rules only: the server's limits are applied once the pass has asked for fresh ones,
        # so files skipped under a limit since raised are not skipped again from a stale copy.
        feed = WorkFeed(db, cfg, now, include_parked=retry_failed_now, settle_seconds=settle_seconds)
        work, work_bytes = feed.gate(summary)
        for folder, why in result.missing_folders:
            summary.problems.append(Problem(folder, f"folder {why}; its files are left as they were"))
        for path, why in result.unreadable:
            summary.problems.append(Problem(path, f"cannot read: {why}"))
        emit(ScanFinished(result.files_seen, result.new, result.changed, result.vanished, work, work_bytes))
        if work:
            from camroll.agent.settings.metered import MeteredMeter
            from camroll.agent.settings.policy import evaluate

            conditions = (probes or Probes()).all()
            verdict = evaluate(cfg.policy, conditions, datetime.now())
            meter = MeteredMeter.for_pass(db, cfg.policy, conditions)
            if not verdict.blocked and meter is not None and meter.reached:
                summary.stop = Stop(StopCode.METERED_CAP, meter.reason)
                summary.files_waiting += work
            elif verdict.blocked:
                logger.info("pass paused by policy (%s): %s [%s]", verdict.code, verdict.reason,
                            " ".join(conditions.sentences()))
                summary.stop = Stop(StopCode.PAUSED, verdict.reason, policy=verdict.code)
                summary.files_waiting += work
            else:
                PassCoordinator(db, cfg, feed, summary, emit, stop or threading.Event(), transport, limits,
                                meter).run()
        db.prune_events()
        summary.files_parked = db.parked_count(time.time())
        summary.duration_s = time.monotonic() - started
        from camroll.agent.state.tally import tally

        summary.totals = tally(db)
        _finish(db, summary, result)
    if result.anything_changed or work:
        logger.info("pass: %s (%s)", summary.headline,
                    ", ".join(f"{k}={v}" for k, v in summary.to_json().items()
                              if k.startswith(("files_", "bytes_")) and v))
    if report:
        _report(paths, cfg, transport)
    emit(PassFinished(summary))
    return summary


def _report(paths: AgentPaths, cfg: AgentConfig, transport: httpx.BaseTransport | None) -> None:
    """Every pass reports to the server (a cron ``camroll backup`` too), so the devices page knows it;
    best effort and bounded: a heartbeat that cannot be sent never fails the pass."""
    from camroll.agent.service.heartbeat import PASS_SEND_TIMEOUT, HeartbeatSender, build_heartbeat

    try:
        HeartbeatSender(paths, transport=transport, timeout=PASS_SEND_TIMEOUT).send(cfg, build_heartbeat(paths, cfg))
    except Exception as exc:  # a report must never turn a finished pass into a failed one
        logger.warning("heartbeat after the pass not sent: %s", exc)


def _retry_readable_again(db: StateDB, now: float) -> None:
    """A file that could not be read is retried at once when it can be opened again (its permissions were
    fixed), instead of at its back-off time: a chmod changes neither its size nor its mtime."""
    for row in db.unreadable_parked(now):
        try:
            os.close(os.open(row.path, os.O_RDONLY))
        except OSError:
            continue
        db.make_eligible(row.id, "readable again")


ALL_BACKED_UP = "Everything is backed up"


def _finish(db: StateDB, summary: Summary, result: ScanResult) -> None:
    """The headline, and the last-pass record (written once, here)."""
    now = time.time()
    stop = summary.stop
    if stop is not None:
        summary.headline = stop.headline
    elif summary.files_failed:
        first = next((p.reason for p in reversed(summary.problems) if p.path not in _folders(result)), "")
        n = summary.files_failed
        summary.headline = (f"{n:,} file{'s' if n != 1 else ''} failed: {first.rstrip('.')}. camroll retries "
                            "by itself; 'camroll problems' lists them")
    elif summary.files_waiting:
        n = summary.files_waiting
        held = db.waiting(limit=1)
        summary.headline = (f"{n:,} file{'s' if n != 1 else ''} waiting: {held[0].reason}. {held[0].fix}" if held
                            else f"{n:,} file{'s' if n != 1 else ''} waiting to upload")
    elif summary.files_parked:
        n = summary.files_parked
        summary.headline = f"{n:,} failed file{'s' if n != 1 else ''} waiting to be retried"
    else:
        summary.headline = ALL_BACKED_UP
    record = lastpass.read(db).finished(now, stop, all_backed_up=summary.headline == ALL_BACKED_UP)
    lastpass.write(db, record)
    if result.missing_folders and summary.headline == ALL_BACKED_UP:
        folder, why = result.missing_folders[0]
        summary.headline = f"Folder {folder} {why}: its files were not checked"
    elif result.unreadable and summary.headline == ALL_BACKED_UP:
        # Files camroll could not even record must not hide behind an all-clear.
        n = len(result.unreadable)
        summary.headline = (f"Everything else is backed up, but {n:,} file{'s' if n != 1 else ''} could "
                            "not be read (listed below)")


def _folders(result: ScanResult) -> set[str]:
    return {f for f, _ in result.missing_folders} | {p for p, _ in result.unreadable}
