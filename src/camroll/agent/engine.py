"""One backup pass: scan, hash, ask the server which hashes it has, upload the rest.

Hashing and uploading overlap: hash workers feed a coordinator (this module's ``_Pass.run`` loop on
the calling thread) that batches server checks and hands missing files to upload workers.  Every file
ends the pass in exactly one state with a reason; one bad file never stops the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from camroll.agent.cache import open_state_db
from camroll.agent.conditions import Probes
from camroll.agent.config import AgentConfig, load_config
from camroll.agent.errors import AgentError, PassAborted, ProblemError, ServerUnreachable
from camroll.agent.events import (
    BytesSent,
    Event,
    EventCallback,
    FileFinished,
    Outcome,
    PassFinished,
    Problem,
    ScanFinished,
    Summary,
    UploadStarted,
)
from camroll.agent.filepolicy import (
    DEFAULT_SETTLE_SECONDS,
    LEFT_OUT_CODES,
    POLICY_CODES,
    UNREADABLE_FIX,
    Decision,
    ServerLimits,
    check_stat,
    check_type,
    fingerprint,
    not_media,
    still_being_written,
)
from camroll.agent.lock import pass_lock
from camroll.agent.log import logger
from camroll.agent.paths import AgentPaths
from camroll.agent.scanner import ScanResult, scan
from camroll.agent.state import FileRow, StateDB
from camroll.agent.throttle import TokenBucket

if TYPE_CHECKING:
    import httpx

    from camroll import wire
    from camroll.agent.hasher import HashResult
    from camroll.agent.metered import MeteredMeter

META_LAST_SUCCESS = "last_successful_backup_at"
META_LAST_PASS = "last_pass_at"
META_LAST_STOP = "last_pass_stopped_reason"
META_SERVER_IDENTITY = "server_identity"
# The last pass's policy verdict: code ("ok", "battery_low", ...) and sentence (empty when not paused).
META_POLICY_CODE = "last_policy_code"
META_POLICY_REASON = "last_policy_reason"
# What stopped the last pass, as a code: a policy code, "metered_cap", "quota", "server_full",
# "unreachable", "client_too_old", "auth" or "stopped"; empty when it ran to the end.
META_LAST_STOP_CODE = "last_pass_stopped_code"
# The server's limits (filepolicy.ServerLimits as JSON), kept so passes and 'camroll why' work offline.
META_SERVER_LIMITS = "server_limits"
# Fingerprint of the rules behind policy skips; when it changes those files are looked at again.
META_POLICY_FINGERPRINT = "file_policy_fingerprint"
# Paths the last scan could not read or record, as JSON [[path, reason], ...] (for problems and why).
META_SCAN_UNREADABLE = "scan_unreadable"
MAX_SCAN_UNREADABLE = 1000
# Files skipped by a rule are looked at again this often even when nothing local changed, because the
# server's limits (learnt only by passes with work) may have been raised meanwhile.
RECHECK_SKIPS_SECONDS = 24 * 3600
META_SKIPS_RECHECKED = "skips_rechecked_at"

# A file that keeps changing while we read it is retried this often in one pass, then waits (still being
# written) for a later pass.
MAX_REHASH_PER_PASS = 3
# A truncated photo modified less than this long ago waits (still being written) instead of being backed up
# with a warning.
INCOMPLETE_GRACE_SECONDS = 60.0
CHECK_FLUSH_SECONDS = 0.3
VISIBLE_HASH_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class _Item:
    row: FileRow
    rehashes: int = 0
    sha256: str | None = None
    mime: str | None = None
    # Per-chunk upload checksums from this pass's hash (see ``hasher.hash_file``).
    chunk_digests: tuple[bytes, ...] = ()
    digest_chunk_size: int = 0


@dataclass
class _Batch:
    items: list[_Item] = field(default_factory=list)
    started: float = 0.0


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
    uploads nothing: its summary has ``stopped_reason`` = the policy's sentence (also the headline).
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
        _record_unreadable(db, result)
        limits = ServerLimits.from_json(db.get_meta(META_SERVER_LIMITS))
        _reopen_if_policy_changed(db, cfg, limits)
        now = time.time()
        _retry_readable_again(db, now)
        summary = Summary(files_scanned=result.files_seen, files_new=result.new,
                          files_changed=result.changed, files_vanished=result.vanished)
        # The user's rules only: the server's limits are applied once the pass has asked for fresh ones,
        # so files skipped under a limit since raised are not skipped again from a stale copy.
        work = _apply_file_policy(db, cfg, db.work_items(now, include_parked=retry_failed_now), ServerLimits(),
                                  summary, now, settle_seconds)
        for folder, why in result.missing_folders:
            summary.problems.append(Problem(folder, f"folder {why}; its files are left as they were"))
        for path, why in result.unreadable:
            summary.problems.append(Problem(path, f"cannot read: {why}"))
        emit(ScanFinished(result.files_seen, result.new, result.changed, result.vanished,
                          len(work), sum(r.size for r in work)))
        if work:
            from camroll.agent.policy import evaluate

            conditions = (probes or Probes()).all()
            verdict = evaluate(cfg.policy, conditions, datetime.now())
            db.set_meta(META_POLICY_CODE, verdict.code)
            db.set_meta(META_POLICY_REASON, verdict.reason)
            from camroll.agent.metered import MeteredMeter

            meter = MeteredMeter.for_pass(db, cfg.policy, conditions)
            if not verdict.blocked and meter is not None and meter.reached:
                db.set_meta(META_POLICY_CODE, "metered_cap")
                db.set_meta(META_POLICY_REASON, meter.reason)
                summary.stopped_reason = meter.reason
                summary.paused_by_policy = "metered_cap"
                summary.files_waiting += len(work)
            elif verdict.blocked:
                logger.info("pass paused by policy (%s): %s [%s]", verdict.code, verdict.reason,
                            " ".join(conditions.sentences()))
                summary.stopped_reason = verdict.reason
                summary.paused_by_policy = verdict.code
                summary.files_waiting += len(work)
            else:
                _Pass(db, cfg, work, summary, emit, stop or threading.Event(), transport, limits, meter,
                      settle_seconds).run()
        db.prune_events()
        summary.files_parked = db.parked_count(time.time())
        summary.duration_s = time.monotonic() - started
        from camroll.agent.tally import tally

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
    from camroll.agent.heartbeat import PASS_SEND_TIMEOUT, HeartbeatSender, build_heartbeat

    try:
        HeartbeatSender(paths, transport=transport, timeout=PASS_SEND_TIMEOUT).send(cfg, build_heartbeat(paths, cfg))
    except Exception as exc:  # a report must never turn a finished pass into a failed one
        logger.warning("heartbeat after the pass not sent: %s", exc)


def _record_unreadable(db: StateDB, result: ScanResult) -> None:
    """Keep what the scan could not read where 'camroll problems' and 'why' find it (only written when
    it changed, so a no-change pass writes nothing)."""
    import json

    value = json.dumps(result.unreadable[:MAX_SCAN_UNREADABLE]) if result.unreadable else ""
    if (db.get_meta(META_SCAN_UNREADABLE) or "") != value:
        db.set_meta(META_SCAN_UNREADABLE, value)


def _retry_readable_again(db: StateDB, now: float) -> None:
    """A file that could not be read is retried at once when it can be opened again (its permissions were
    fixed), instead of at its back-off time: a chmod changes neither its size nor its mtime."""
    for row in db.rows_with("state='failed' AND code='unreadable' AND next_retry_at > ?", (now,), limit=1000):
        try:
            os.close(os.open(row.path, os.O_RDONLY))
        except OSError:
            continue
        db.make_eligible(row.id, "readable again")


def _reopen_if_policy_changed(db: StateDB, cfg: AgentConfig, limits: ServerLimits) -> None:
    fp = fingerprint(cfg.policy, limits)
    old = db.get_meta(META_POLICY_FINGERPRINT)
    now = time.time()
    last = float(db.get_meta(META_SKIPS_RECHECKED) or 0)
    if old == fp and now - last < RECHECK_SKIPS_SECONDS:
        return
    if old is not None:
        why = ("the backup policy or the server's limits changed" if old != fp
               else "skipped files are looked at again daily, in case the server's limits changed")
        n = db.reopen_codes(POLICY_CODES, why)
        if n:
            logger.info("%d skipped files looked at again: %s", n, why)
    db.set_meta(META_POLICY_FINGERPRINT, fp)
    db.set_meta(META_SKIPS_RECHECKED, f"{now:.3f}")


def _record_decision(db: StateDB, row: FileRow, d: Decision) -> None:
    if d.state == "skipped":
        db.set_skipped(row.id, d.reason, code=d.code, fix=d.fix)
    else:
        db.set_waiting(row.id, d.reason, d.code, d.fix)


def _apply_file_policy(db: StateDB, cfg: AgentConfig, work: list[FileRow], limits: ServerLimits,
                       summary: Summary, now: float, settle_seconds: float) -> list[FileRow]:
    """Record the files the per-file rules keep out of this pass (by stat alone, before any read) and
    return the rest.  Only work items are looked at, so unchanged files cost nothing."""
    keep: list[FileRow] = []
    with db.batch():
        for row in work:
            d = check_stat(row.path, row.folder, row.size, row.mtime_ns, cfg.policy, limits, now, settle_seconds)
            if d is None:
                keep.append(row)
                continue
            if d.state == "waiting" and row.state == "waiting" and row.code == d.code:
                summary.files_waiting += 1
                continue
            _record_decision(db, row, d)
            _count_decision(summary, row, d)
    return keep


def _count_decision(summary: Summary, row: FileRow, d: Decision) -> None:
    if d.code in LEFT_OUT_CODES:
        summary.files_left_out += 1  # a choice: counted, not listed
    elif d.state == "skipped":
        summary.files_skipped += 1
        summary.skipped.append(Problem(row.path, f"{d.reason}. {d.fix}"))
    else:
        summary.files_waiting += 1


def _finish(db: StateDB, summary: Summary, result: ScanResult) -> None:
    now = time.time()
    if summary.stopped_reason:
        # A policy pause is already a sentence ("Paused: ...", "Off: ..."); server and quota stops are not.
        summary.headline = (summary.stopped_reason if summary.paused_by_policy
                            else f"Stopped: {summary.stopped_reason}")
        db.set_meta(META_LAST_STOP, summary.stopped_reason)
        db.set_meta(META_LAST_STOP_CODE, summary.paused_by_policy or summary.stopped_code or "stopped")
        if summary.paused_by_policy:
            # Also when the pause began mid-pass (the metered cap), so status shows it as a pause.
            db.set_meta(META_POLICY_CODE, summary.paused_by_policy)
            db.set_meta(META_POLICY_REASON, summary.stopped_reason)
    else:
        if db.get_meta(META_LAST_STOP) is not None:
            db.set_meta(META_LAST_STOP, "")
        if db.get_meta(META_LAST_STOP_CODE):
            db.set_meta(META_LAST_STOP_CODE, "")
        if summary.files_failed:
            first = next((p.reason for p in reversed(summary.problems) if p.path not in _folders(result)), "")
            n = summary.files_failed
            summary.headline = (f"{n:,} file{'s' if n != 1 else ''} failed: {first.rstrip('.')}. camroll retries "
                                "by itself; 'camroll problems' lists them")
        elif summary.files_waiting:
            n = summary.files_waiting
            held = db.rows_with("state='waiting'", limit=1)
            summary.headline = (f"{n:,} file{'s' if n != 1 else ''} waiting: {held[0].reason}. {held[0].fix}" if held
                                else f"{n:,} file{'s' if n != 1 else ''} waiting to upload")
        elif summary.files_parked:
            n = summary.files_parked
            summary.headline = f"{n:,} failed file{'s' if n != 1 else ''} waiting to be retried"
        else:
            summary.headline = "Everything is backed up"
            db.set_meta(META_LAST_SUCCESS, f"{now:.3f}")
    db.set_meta(META_LAST_PASS, f"{now:.3f}")
    if result.missing_folders and summary.headline == "Everything is backed up":
        folder, why = result.missing_folders[0]
        summary.headline = f"Folder {folder} {why}: its files were not checked"
    elif result.unreadable and summary.headline == "Everything is backed up":
        # Files camroll could not even record must not hide behind an all-clear.
        n = len(result.unreadable)
        summary.headline = (f"Everything else is backed up, but {n:,} file{'s' if n != 1 else ''} could "
                            "not be read (listed below)")


RESUMES = "backup resumes by itself"


def _storage_stop(exc: ProblemError) -> str | None:
    """The pass-stopping reason if ``exc`` says no upload can succeed now (quota or disk full)."""
    if exc.code == "quota_exceeded" or (exc.status == 413 and exc.code != "file_too_large"):
        # "Storage full: 14.9 GB of 15.0 GB used; this 3 MB file does not fit." -> the figures only.
        figures = exc.detail.split(";")[0].strip().rstrip(".")
        fix = (exc.fix or "Free space or raise the quota").rstrip(".")
        if figures.lower().startswith("storage full"):
            figures = figures[len("storage full"):].lstrip(": ")
            return f"storage full, {figures}. {fix}; {RESUMES}."
        return f"storage quota exceeded: {exc.detail.rstrip('.')}. Fix: {fix}; {RESUMES}."
    if exc.status == 507:
        return f"the server's storage is full: {exc.detail.rstrip('.')}. Free space on the server; {RESUMES}."
    return None


def _too_old(info: wire.ServerInfo, exc: AgentError) -> str:
    """The stop reason when the server needs a newer agent, naming the version to update to."""
    from camroll import API_VERSION, __version__

    if info.api_version != API_VERSION:
        return exc.message
    return (f"this camroll ({__version__}) is too old for the server, which needs {info.min_client_version} "
            f"or later. Fix: update camroll to {info.min_client_version} or later; backup resumes by itself.")


def _abort_code(exc: AgentError) -> str:
    if isinstance(exc, ServerUnreachable):
        return "unreachable"
    return "client_too_old" if "camroll version" in exc.message or "needs camroll" in exc.message else "auth"


def _stop_code(exc: ProblemError) -> str:
    return "server_full" if exc.status == 507 else "quota"


def _folders(result: ScanResult) -> set[str]:
    return {f for f, _ in result.missing_folders} | {p for p, _ in result.unreadable}


class _Pass:
    """The coordinator of one pass.  Only this thread talks to the server for checks and decides what
    happens to a file next; workers report back through ``self.results``."""

    def __init__(self, db: StateDB, cfg: AgentConfig, work: list[FileRow], summary: Summary,
                 emit: EventCallback, stop: threading.Event, transport: httpx.BaseTransport | None,
                 limits: ServerLimits | None = None, meter: MeteredMeter | None = None,
                 settle_seconds: float = DEFAULT_SETTLE_SECONDS) -> None:
        from camroll.agent.api import Api, make_client
        from camroll.agent.tus import TusClient
        from camroll.agent.uploader import Uploader

        server = cfg.require_server()
        self.db = db
        self.cfg = cfg
        self.work = work
        self.summary = summary
        self.emit = emit
        self.stop = stop
        self.lock = threading.Lock()
        self.client = make_client(server.url, server.token,
                                  max_connections=cfg.policy.upload_concurrency + 2, transport=transport)
        self.api = Api(self.client)
        self.limits = limits or ServerLimits()
        self.meter = meter
        self.settle_seconds = settle_seconds
        rate = cfg.policy.bandwidth_limit_bytes
        self.bucket = TokenBucket(rate) if rate else None
        self.uploader = Uploader(
            TusClient(self.client), db, chunk_size=cfg.policy.chunk_size, base_url=server.url,
            check_present=self._check_one, on_bytes=self._on_bytes, on_sent=self._on_sent,
            should_stop=self.stop.is_set, pace=self._pace if (self.bucket or meter) else None,
        )
        self.results: queue.Queue[Callable[[], None]] = queue.Queue()
        self.outstanding = 0
        self.finished = 0
        self.hashing = 0
        self.uploading = 0
        self.hash_queue: deque[_Item] = deque()
        self.upload_queue: deque[_Item] = deque()
        self.batch = _Batch()
        # sha256 -> items waiting for the one upload of those bytes already in flight this pass.
        self.inflight: dict[str, list[_Item]] = {}
        self.quota_stop: str | None = None
        self.quota_code = "quota"
        # Retried files (failed before) enter the pipeline only once fresh work has been hashed.
        self.deferred: deque[_Item] = deque()
        self.reported: dict[str, int] = {}

    # --- worker callbacks (any thread) --------------------------------------------------------------
    def _on_bytes(self, path: str, n: int) -> None:
        with self.lock:
            self.reported[path] = self.reported.get(path, 0) + n
            self.summary.bytes_uploaded += n
        self.emit(BytesSent(path, n))

    def _on_sent(self, n: int) -> None:
        with self.lock:
            self.summary.bytes_sent += n

    def _pace(self, n: int) -> None:
        """Called before each piece of a request body goes out (upload worker threads)."""
        if self.bucket is not None:
            self.bucket.take(n)
        if self.meter is not None:
            self.meter.add(n)
            if self.meter.reached and not self.stop.is_set():
                # The piece in hand still goes (at most 64 KiB per worker over the cap); nothing after.
                logger.info("metered daily cap reached: %s", self.meter.reason)
                self.summary.paused_by_policy = "metered_cap"
                self._abort(self.meter.reason)

    def _check_one(self, job: object) -> int | None:
        from camroll.agent.uploader import UploadJob

        assert isinstance(job, UploadJob)
        from camroll.agent.fsnames import check_item

        item = check_item(job.sha256, job.path, job.stat_key[1])
        from camroll.agent.api import with_retries

        resp = with_retries(lambda: self.api.check([item]), base_url=self.api.base_url,
                            should_stop=self.stop.is_set)
        return resp.present.get(job.sha256)

    # --- the loop -----------------------------------------------------------------------------------
    def run(self) -> None:
        hash_pool = ThreadPoolExecutor(self.cfg.policy.hash_workers, thread_name_prefix="camroll-hash")
        upload_pool = ThreadPoolExecutor(self.cfg.policy.upload_concurrency, thread_name_prefix="camroll-up")
        self.hash_pool, self.upload_pool = hash_pool, upload_pool
        try:
            self._server_limits()
            self._terminate_stale()
            for row in self.work:
                item = _Item(row)
                self.outstanding += 1
                if row.state == "failed" or row.attempts > 0:
                    self.deferred.append(item)
                else:
                    self._start(item)
            while self.outstanding > 0:
                self._release_deferred()
                try:
                    timeout = CHECK_FLUSH_SECONDS if self.batch.items else 0.5
                    task = self.results.get(timeout=timeout)
                except queue.Empty:
                    task = None
                if task is not None:
                    self._run_tasks(task)
                if self.batch.items and (
                    task is None or (self.hashing == 0 and not self.hash_queue)
                    or time.monotonic() - self.batch.started > CHECK_FLUSH_SECONDS
                    # Upload workers with nothing to do: batching would only keep them idle.
                    or self.uploading + len(self.upload_queue) < self.cfg.policy.upload_concurrency
                ):
                    self._flush_checks()
                    self._release_deferred()
        except (PassAborted, ServerUnreachable) as exc:
            self._abort(exc.message, _abort_code(exc))
        except KeyboardInterrupt:
            self._abort("interrupted; unfinished uploads resume on the next backup")
            raise
        finally:
            self.stop.set()
            hash_pool.shutdown(wait=True, cancel_futures=True)
            upload_pool.shutdown(wait=True, cancel_futures=True)
            # Drain results of workers that finished while we were stopping, so their states are kept.
            while True:
                try:
                    task = self.results.get_nowait()
                except queue.Empty:
                    break
                with contextlib.suppress(AgentError):
                    task()
            self.client.close()
            if self.meter is not None:
                self.meter.save()
        # Files still in the pipeline when it stopped keep their state and are picked up next time.
        self.summary.files_waiting += max(0, len(self.work) - self.finished)
        if self.quota_stop and not self.summary.stopped_reason:
            self.summary.stopped_reason = self.quota_stop
            self.summary.stopped_code = self.quota_code

    def _server_limits(self) -> None:
        """Ask the server what it accepts (size limit, media types) and whether this agent is new enough.
        A server that cannot say keeps the limits from last time; the uploads then tell."""
        from camroll.agent.api import check_compatible, fatal_for_pass, with_retries

        try:
            info = with_retries(self.api.server_info, base_url=self.api.base_url, should_stop=self.stop.is_set)
        except ProblemError as exc:
            fatal = fatal_for_pass(exc)
            if fatal is not None:
                self.summary.stopped_code = ("client_too_old" if exc.status == 426 or exc.code == "client_too_old"
                                             else "auth")
                raise fatal from exc
            info = None
        except ServerUnreachable:
            self.summary.stopped_code = "unreachable"
            raise
        except AgentError:
            info = None
        if info is not None:
            try:
                check_compatible(info, self.api.base_url)
            except AgentError as exc:
                self.summary.stopped_code = "client_too_old"
                raise PassAborted(_too_old(info, exc)) from exc
            limits = ServerLimits(info.upload.max_file_size, frozenset(m.mime for m in info.media_types))
            if limits != self.limits:
                self.db.set_meta(META_SERVER_LIMITS, limits.to_json())
                if self.limits == ServerLimits():
                    # First contact: nothing was skipped under other limits, so nothing to look at again.
                    self.db.set_meta(META_POLICY_FINGERPRINT, fingerprint(self.cfg.policy, limits))
                self.limits = limits
        if self.limits.max_file_size is None:
            return
        # Earlier skips under other limits are looked at again by the next pass (fingerprint).
        keep: list[FileRow] = []
        with self.db.batch():
            for row in self.work:
                d = check_stat(row.path, row.folder, row.size, row.mtime_ns, self.cfg.policy, self.limits,
                               settle_seconds=0)
                if d is None:
                    keep.append(row)
                else:
                    _record_decision(self.db, row, d)
                    _count_decision(self.summary, row, d)
        self.work = keep

    def _start(self, item: _Item) -> None:
        if item.row.sha256 and item.row.mime:
            item.sha256, item.mime = item.row.sha256, item.row.mime
            self._add_to_batch(item)
        else:
            self._submit_hash(item)

    def _release_deferred(self) -> None:
        """Retries go behind fresh work: start them once fresh files are hashed and sent for checking."""
        if self.deferred and self.hashing == 0 and not self.hash_queue and not self.batch.items:
            while self.deferred:
                self._start(self.deferred.popleft())

    def _run_tasks(self, first: Callable[[], None]) -> None:
        """Handle ``first`` and whatever else is already queued in one database transaction."""
        with self.db.batch():
            first()
            for _ in range(500):
                try:
                    task = self.results.get_nowait()
                except queue.Empty:
                    break
                task()

    def _abort(self, reason: str, code: str = "stopped") -> None:
        if not self.summary.stopped_reason:
            self.summary.stopped_reason = reason
            self.summary.stopped_code = self.summary.stopped_code or code
        self.stop.set()

    def _terminate_stale(self) -> None:
        """Changed files may carry an upload of their old bytes: end it before hashing again."""
        import httpx

        from camroll.agent.tus import TusClient

        tus = TusClient(self.client)
        for row in self.work:
            if row.upload_url and not row.sha256:
                with contextlib.suppress(ProblemError, httpx.TransportError):
                    tus.delete(row.upload_url)
                self.db.set_upload(row.id, None, None)
                row.upload_url = None

    # --- outcomes (coordinator thread) --------------------------------------------------------------
    def _finish_item(self, item: _Item, outcome: Outcome, reason: str) -> None:
        self.outstanding -= 1
        self.finished += 1
        row = self.summary
        if outcome == "uploaded":
            row.files_uploaded += 1
        elif outcome == "already_on_server":
            row.files_already_on_server += 1
        elif outcome == "skipped":
            row.files_skipped += 1
            row.skipped.append(Problem(item.row.path, reason))
        elif outcome == "failed":
            row.files_failed += 1
            row.problems.append(Problem(item.row.path, reason))
        else:
            row.files_waiting += 1
        with self.lock:
            unreported = max(0, item.row.size - self.reported.pop(item.row.path, 0))
        if self.meter is not None:
            self.meter.save()  # after each file, so a killed agent still counts what it sent
        log = logger.warning if outcome == "failed" else logger.info
        log("%s %s: %s", outcome, item.row.path, reason)
        self.emit(FileFinished(item.row.path, item.row.size, outcome, reason, unreported))

    def _fail(self, item: _Item, reason: str, code: str = "failed", fix: str = "") -> None:
        from camroll.agent.retry import next_retry_delay

        attempts = item.row.attempts + 1
        at = time.time() + next_retry_delay(attempts)
        when = time.strftime("%H:%M", time.localtime(at))
        fix = (fix + " " if fix else "") + f"camroll retries it by itself after {when}; 'camroll retry' tries it now."
        self.db.set_failed(item.row.id, reason, at, code=code, fix=fix)
        self._finish_item(item, "failed", reason)

    # --- hashing ------------------------------------------------------------------------------------
    # Work is handed to the pools a little at a time (not 100,000 futures at once), which bounds
    # memory and lets checks and uploads start while hashing goes on.
    def _submit_hash(self, item: _Item) -> None:
        self.hash_queue.append(item)
        self._pump_hashes()

    def _pump_hashes(self) -> None:
        limit = self.cfg.policy.hash_workers * 4
        while self.hash_queue and self.hashing < limit:
            item = self.hash_queue.popleft()
            if self.stop.is_set():
                self._finish_item(item, "waiting", "not hashed: the pass stopped")
                continue
            self.hashing += 1
            if item.row.size >= VISIBLE_HASH_BYTES:
                # Long enough to be seen in 'camroll status' while it runs.
                self.db.set_state(item.row.id, "hashing", "computing its SHA-256")
            fut = self.hash_pool.submit(self._hash_task, item)
            fut.add_done_callback(self._crashed(item, hashing=True))

    def _hash_task(self, item: _Item) -> None:
        handler = self._hash_worker(item)
        self.results.put(lambda: self._after_hash(handler))

    def _after_hash(self, handler: Callable[[], None]) -> None:
        self.hashing -= 1
        handler()
        self._pump_hashes()

    def _crashed(self, item: _Item, *, hashing: bool = False) -> Callable[[Future[None]], None]:
        def cb(fut: Future[None]) -> None:
            if fut.cancelled():
                self.results.put(lambda: self._cancelled(item, hashing))
            elif (exc := fut.exception()) is not None:
                err = exc
                self.results.put(lambda: self._worker_crash(item, err, hashing))
        return cb

    def _free_slot(self, hashing: bool) -> None:
        if hashing:
            self.hashing -= 1
            self._pump_hashes()
        else:
            self.uploading -= 1
            self._pump_uploads()

    def _cancelled(self, item: _Item, hashing: bool) -> None:
        self._finish_item(item, "waiting", "not handled: the pass stopped")
        self._free_slot(hashing)

    def _worker_crash(self, item: _Item, exc: BaseException, hashing: bool) -> None:
        if not hashing:
            self._release_followers(item, ok=False)
        self._free_slot(hashing)
        if isinstance(exc, (PassAborted, ServerUnreachable)):
            self._abort(exc.message, _abort_code(exc))
            self._finish_item(item, "waiting", exc.message)
            return
        # A bug must not stop the other files; the reason says what happened.
        self._fail(item, f"internal error: {type(exc).__name__}: {exc}")

    def _hash_worker(self, item: _Item) -> Callable[[], None]:
        """Hash one file (worker thread); returns what the coordinator does with the result."""
        from camroll.agent.hasher import FileChanged, NotMedia, hash_file, stat_key

        if self.stop.is_set():
            return lambda: self._finish_item(item, "waiting", "not hashed: the pass stopped")
        now_key = item.row.stat_key
        if item.rehashes == 0:
            # (A rehash already knows the file changed and reads it again, as designed.)
            try:
                now_key = stat_key(item.row.path)
            except FileNotFoundError:
                return lambda: self._hashed_gone(item)
            except OSError:
                pass  # the open below reports it
        if now_key != item.row.stat_key:
            # Different from what the scan saw moments ago: something is still writing it.
            d = still_being_written(f"{item.row.size:,} -> {now_key[0]:,} bytes since the scan")
            return lambda: self._hashed_decision(item, d)
        try:
            res = hash_file(item.row.path, self.cfg.policy.chunk_size)
        except NotMedia as exc:
            nd = not_media(str(exc))
            return lambda: self._hashed_decision(item, nd)
        except FileChanged as exc:
            reason = str(exc)
            return lambda: self._changed(item, reason)
        except FileNotFoundError:
            return lambda: self._hashed_gone(item)
        except OSError as exc:
            reason = f"cannot read the file: {exc.strerror or exc}"
            return lambda: self._fail(item, reason, "unreadable", UNREADABLE_FIX)
        return lambda: self._hashed_ok(item, res)

    def _hashed_ok(self, item: _Item, res: HashResult) -> None:
        refused = check_type(res.media_type.mime, self.limits)
        if refused is not None:
            self._hashed_decision(item, refused)
            return
        age = time.time() - res.stat_key[1] / 1e9
        if res.warning and age < INCOMPLETE_GRACE_SECONDS:
            # A photo without its end marker that was modified moments ago is most likely still being
            # written; one that stays that way is damaged, and is backed up with the warning.
            d = still_being_written(f"it has no end marker yet and was modified {max(0.0, age):.0f} s ago")
            self.db.set_waiting(item.row.id, d.reason, d.code, d.fix, clear_hash=True)
            self._finish_item(item, "waiting", d.reason)
            return
        # Written here, on the coordinator, so workers never contend for the database.
        self.db.set_hashed(item.row.id, res.sha256, res.media_type.mime, res.stat_key, res.warning)
        if res.warning:
            logger.warning("%s: %s", item.row.path, res.warning)
        item.sha256, item.mime = res.sha256, res.media_type.mime
        item.chunk_digests, item.digest_chunk_size = res.chunk_digests, res.chunk_size
        item.row.size, item.row.mtime_ns, item.row.inode = res.stat_key
        self._add_to_batch(item)

    def _hashed_decision(self, item: _Item, d: Decision) -> None:
        _record_decision(self.db, item.row, d)
        self._finish_item(item, "skipped" if d.state == "skipped" else "waiting", d.reason)

    def _hashed_gone(self, item: _Item) -> None:
        self.db.set_state(item.row.id, "vanished", "the file disappeared before it was read", "gone")
        self._finish_item(item, "skipped", "the file disappeared before it was read")

    def _changed(self, item: _Item, reason: str) -> None:
        item.rehashes += 1
        if item.rehashes > MAX_REHASH_PER_PASS:
            d = still_being_written(f"{reason}; it kept changing while camroll read it")
            self.db.set_waiting(item.row.id, d.reason, d.code, d.fix, clear_hash=True)
            self._finish_item(item, "waiting", d.reason)
            return
        self.db.set_pending(item.row.id, reason, clear_hash=True)
        item.sha256 = item.mime = None
        item.chunk_digests, item.digest_chunk_size = (), 0
        self._submit_hash(item)

    # --- checking -----------------------------------------------------------------------------------
    def _add_to_batch(self, item: _Item) -> None:
        if not self.batch.items:
            self.batch.started = time.monotonic()
        self.batch.items.append(item)
        from camroll import wire

        if len(self.batch.items) >= wire.MAX_CHECK_BATCH:
            self._flush_checks()

    def _flush_checks(self) -> None:

        with self.db.batch():
            self._flush_checks_now()

    def _flush_checks_now(self) -> None:
        from camroll.agent.api import with_retries

        items, self.batch = self.batch.items, _Batch()
        if self.stop.is_set():
            for it in items:
                self._finish_item(it, "waiting", "not checked: the pass stopped")
            return
        from camroll.agent.fsnames import check_item

        req = [check_item(it.sha256 or "", it.row.path, it.row.mtime_ns) for it in items]
        try:
            resp = with_retries(lambda: self.api.check(req), base_url=self.api.base_url,
                                should_stop=self.stop.is_set)
        except ProblemError as exc:
            from camroll.agent.api import fatal_for_pass

            fatal = fatal_for_pass(exc)
            if fatal is not None:
                raise fatal from exc
            for it in items:
                self._fail(it, f"the server could not check it: {exc}")
            return
        for it in items:
            sha = it.sha256 or ""
            asset = resp.present.get(sha)
            if asset is not None:
                self.db.set_backed_up(it.row.id, asset, "already on the server")
                self._finish_item(it, "already_on_server", "already on the server")
            elif sha in self.inflight:
                self.db.add_event(it.row.id, "checked", "same bytes as a file uploading now")
                self.inflight[sha].append(it)
            else:
                self.db.add_event(it.row.id, "checked", "not on the server yet: uploading")
                self.inflight[sha] = []
                self._submit_upload(it)

    # --- uploading ----------------------------------------------------------------------------------
    def _submit_upload(self, item: _Item) -> None:
        self.upload_queue.append(item)
        self._pump_uploads()

    def _pump_uploads(self) -> None:
        limit = self.cfg.policy.upload_concurrency * 2
        while self.upload_queue and self.uploading < limit:
            item = self.upload_queue.popleft()
            if self.stop.is_set() or self.quota_stop:
                self._not_uploaded(item)
                continue
            self.uploading += 1
            fut = self.upload_pool.submit(self._upload_task, item)
            fut.add_done_callback(self._crashed(item))

    def _not_uploaded(self, item: _Item) -> None:
        self._release_followers(item, ok=False)
        if self.quota_stop:
            self.db.set_waiting(item.row.id, self.quota_stop, self.quota_code,
                                "Free space or raise the quota; backup resumes by itself.")
            self._finish_item(item, "waiting", self.quota_stop)
        else:
            self._finish_item(item, "waiting", "not uploaded: the pass stopped")

    def _upload_task(self, item: _Item) -> None:
        # A quota stop seen by another worker: do not start an upload that cannot succeed.
        handler = (lambda: self._not_uploaded(item)) if self.quota_stop else self._upload_worker(item)
        self.results.put(lambda: self._after_upload(handler))

    def _after_upload(self, handler: Callable[[], None]) -> None:
        self.uploading -= 1
        handler()
        self._pump_uploads()

    def _upload_worker(self, item: _Item) -> Callable[[], None]:
        """Upload one file (worker thread); returns what the coordinator does with the outcome."""
        from camroll.agent.uploader import (
            FileChangedDuringUpload,
            ServerHashMismatch,
            Stopped,
            UploadJob,
        )

        row = item.row
        job = UploadJob(row.id, row.path, row.folder, item.sha256 or "", row.stat_key,
                        self.db.get(row.id).upload_url, item.chunk_digests, item.digest_chunk_size)
        self.emit(UploadStarted(row.path, row.size, row.upload_offset or 0))
        try:
            done = self.uploader.upload(job)
        except FileChangedDuringUpload as exc:
            reason = str(exc)
            return lambda: self._upload_changed(item, reason)
        except FileNotFoundError:
            return lambda: self._upload_gone(item)
        except ServerHashMismatch as exc:
            reason = f"the server's checksum of the whole file did not match ({exc}); hashing it again"
            return lambda: self._upload_changed(item, reason)
        except Stopped:
            why = "upload paused: the pass stopped; it resumes next time"
            return lambda: self._upload_waiting(item, why)
        except ProblemError as exc:
            err = exc
            stop = _storage_stop(exc)
            if stop and not self.quota_stop:
                # Set here, not only on the coordinator, so uploads already queued in the pool see
                # it before they start.
                self.quota_code = _stop_code(exc)
                self.quota_stop = stop
            return lambda: self._upload_problem(item, err)
        except OSError as exc:
            reason = f"cannot read the file: {exc.strerror or exc}"
            return lambda: self._upload_failed(item, reason)
        return lambda: self._uploaded(item, done.asset_id, done.already_there)

    def _release_followers(self, item: _Item, *, ok: bool) -> None:
        followers = self.inflight.pop(item.sha256 or "", [])
        if not followers:
            return
        if ok:
            # Let the server record their paths against the asset that now exists.
            for f in followers:
                self._add_to_batch(f)
        else:
            first, rest = followers[0], followers[1:]
            self.inflight[first.sha256 or ""] = rest
            self._submit_upload(first)

    def _uploaded(self, item: _Item, asset_id: int, already_there: bool) -> None:
        reason = "already on the server" if already_there else "uploaded and verified by the server"
        with self.lock:
            sent = self.reported.get(item.row.path, 0)
        if sent:
            from camroll.units import format_size

            self.db.add_event(item.row.id, "sent", f"{format_size(sent)} sent this pass")
        self.db.set_backed_up(item.row.id, asset_id, reason)
        self._finish_item(item, "already_on_server" if already_there else "uploaded", reason)
        self._release_followers(item, ok=True)

    def _upload_changed(self, item: _Item, reason: str) -> None:
        self._release_followers(item, ok=False)
        # The unfinished upload carries the old hash in its metadata: end it so the new version
        # starts a fresh one.
        url = self.db.get(item.row.id).upload_url
        if url:
            import httpx

            from camroll.agent.tus import TusClient

            with contextlib.suppress(ProblemError, httpx.TransportError):
                TusClient(self.client).delete(url)
            self.db.set_upload(item.row.id, None, None)
        self._changed(item, reason)

    def _upload_gone(self, item: _Item) -> None:
        self._release_followers(item, ok=False)
        self.db.set_state(item.row.id, "vanished", "the file disappeared during upload", "gone")
        self._finish_item(item, "skipped", "the file disappeared during upload")

    def _upload_waiting(self, item: _Item, reason: str) -> None:
        self._release_followers(item, ok=False)
        self._finish_item(item, "waiting", reason)

    def _upload_failed(self, item: _Item, reason: str) -> None:
        self._release_followers(item, ok=False)
        self._fail(item, reason)

    def _upload_problem(self, item: _Item, exc: ProblemError) -> None:
        from camroll.agent.api import fatal_for_pass

        fatal = fatal_for_pass(exc)
        if fatal is not None:
            self._abort(fatal.message, "client_too_old" if exc.status == 426 or exc.code == "client_too_old"
                        else "auth")
            self._finish_item(item, "waiting", fatal.message)
            return
        stop = _storage_stop(exc)
        if stop:
            if not self.quota_stop:
                # Every further upload would fail the same way: stop uploading, keep checking.
                self.quota_code = _stop_code(exc)
                self.quota_stop = stop
            # Not this file's fault: it waits with the others and goes when there is room.
            self._release_followers(item, ok=False)
            self.db.set_waiting(item.row.id, stop, self.quota_code,
                                "Free space or raise the quota; backup resumes by itself.")
            self._finish_item(item, "waiting", stop)
            return
        if exc.code == "file_too_large":
            self._release_followers(item, ok=False)
            d = Decision("skipped", "too_large", exc.detail.rstrip("."),
                         (exc.fix or "Ask the server's admin to raise the upload limit.").rstrip(".") +
                         "; backup then retries it by itself.")
            self._hashed_decision(item, d)
            return
        if exc.code == "unsupported_media_type":
            # The server's type list disagrees with ours (an older server, or one trimmed by its admin):
            # retrying cannot help, but a change of the server's rules brings it back (rule skips are
            # looked at again when they change, and daily).
            self._release_followers(item, ok=False)
            d = Decision("skipped", "unsupported_type", exc.detail.rstrip("."),
                         (exc.fix or "Back up photos and videos only.").rstrip("."))
            self._hashed_decision(item, d)
            return
        self._upload_failed(item, str(exc))
