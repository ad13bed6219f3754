"""The pipeline of one pass: hash, check with the server, upload.

Each step is a ``stage.BoundedStage`` feeding its own worker pool; this module's ``PassCoordinator.run``
loop, on the calling thread, takes every worker's outcome from one queue and decides what happens to the
file next, so only this thread writes the state DB.  Hashed files are gathered into batches for one
server check each; files the server lacks go to the upload stage.  A new stage is one more
``BoundedStage`` and a handler that hands its outcome on.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from camroll.agent.api import Api, check_compatible, fatal_for_pass, make_client, with_retries
from camroll.agent.backup import batch
from camroll.agent.backup.filepolicy import (
    UNREADABLE_FIX,
    Decision,
    ServerLimits,
    check_stat,
    check_type,
    not_media,
    still_being_written,
)
from camroll.agent.backup.rulegate import count_decision, record_decision, store_limits
from camroll.agent.backup.stage import BoundedStage, Handler
from camroll.agent.backup.stopreasons import storage_stop, too_old
from camroll.agent.backup.throttle import TokenBucket
from camroll.agent.backup.tus import TusClient
from camroll.agent.backup.uploader import Uploader, UploadJob
from camroll.agent.errors import AgentError, PassAborted, ProblemError, ServerUnreachable
from camroll.agent.events import (
    BytesSent,
    EventCallback,
    FileFinished,
    Outcome,
    Problem,
    Summary,
    UploadStarted,
)
from camroll.agent.log import logger
from camroll.agent.settings.config import AgentConfig
from camroll.agent.state.db import FileRow, StateDB
from camroll.agent.stops import Stop, StopCode

if TYPE_CHECKING:
    import httpx

    from camroll import wire
    from camroll.agent.backup.hasher import HashResult
    from camroll.agent.settings.metered import MeteredMeter

# A file that keeps changing while we read it is retried this often in one pass, then waits (still being
# written) for a later pass.
MAX_REHASH_PER_PASS = 3
# A truncated photo modified less than this long ago waits (still being written) instead of being backed up
# with a warning.
INCOMPLETE_GRACE_SECONDS = 60.0
CHECK_FLUSH_SECONDS = 0.3
# Files taken from the work feed and not finished yet, at most: what bounds the pass's memory with any
# number of files (the hash and upload stages hold far fewer).
WINDOW = 1000
# Small files a batch waits for while another batch is on its way (more would only add latency).
BATCH_TARGET = 250
VISIBLE_HASH_BYTES = 64 * 1024 * 1024
ROOM_MARGIN = 2 * 1024 * 1024


@dataclass(slots=True)
class Item:
    """One file on its way through the pipeline."""

    row: FileRow
    rehashes: int = 0
    sha256: str | None = None
    mime: str | None = None
    # Per-chunk upload checksums from this pass's hash (see ``hasher.hash_file``).
    chunk_digests: tuple[bytes, ...] = ()
    digest_chunk_size: int = 0
    # Sent through tus even if small (the batch path could not take it this pass).
    no_batch: bool = False


@dataclass
class _Batch:
    items: list[Item] = field(default_factory=list)
    started: float = 0.0


class PassCoordinator:
    """The coordinator of one pass.  Only this thread decides what happens to a file next and writes the
    state DB; workers report back through ``self.results``."""

    def __init__(self, db: StateDB, cfg: AgentConfig, work: Iterable[FileRow], summary: Summary,
                 emit: EventCallback, stop: threading.Event, transport: httpx.BaseTransport | None,
                 limits: ServerLimits | None = None, meter: MeteredMeter | None = None) -> None:
        server = cfg.require_server()
        self.db = db
        self.cfg = cfg
        # Read as the pipeline has room (``feed.WorkFeed`` pages through the state DB).
        self.feed = iter(work)
        self.feed_done = False
        self.pulled = 0
        self.summary = summary
        self.emit = emit
        self.stop = stop
        self.lock = threading.Lock()
        self.client = make_client(server.url, server.token,
                                  max_connections=cfg.policy.upload_concurrency + 2, transport=transport)
        self.api = Api(self.client)
        self.limits = limits or ServerLimits()
        self.meter = meter
        rate = cfg.policy.bandwidth_limit_bytes
        self.bucket = TokenBucket(rate) if rate else None
        self.uploader = Uploader(
            TusClient(self.client), db, chunk_size=cfg.policy.chunk_size, base_url=server.url,
            check_present=self._check_one, on_bytes=self._on_bytes, on_sent=self._on_sent,
            should_stop=self.stop.is_set, pace=self._pace if (self.bucket or meter) else None,
            may_send_body=self._may_send_body, body_done=self._body_done,
        )
        # Creations with a body promised against ``room`` and not yet answered: an upload created
        # without one waits for them, so it cannot take on the server the room they were promised.
        self.promised = 0
        self.promised_done = threading.Condition(self.lock)
        # Bytes the server said it has room for (quota and disk) at the last check, minus the bodies
        # sent since; None until a server that tells has answered.
        self.room: int | None = None
        self.results: queue.Queue[Handler] = queue.Queue()
        self.tus = TusClient(self.client)
        self.outstanding = 0
        self.finished = 0
        policy = cfg.policy
        # Work is handed to the pools a little at a time (not 100,000 futures at once), which bounds
        # memory and lets checks and uploads start while hashing goes on.
        self.hashing: BoundedStage[Item] = BoundedStage(
            "hash", workers=policy.hash_workers, limit=policy.hash_workers * 4, results=self.results,
            work=self._hash_worker, admit=self._admit_hash, on_cancel=self._cancelled,
            on_crash=self._hash_crashed)
        # One batch in flight: hashed files gather into the next batch meanwhile.
        self.checking: BoundedStage[list[Item]] = BoundedStage(
            "check", workers=1, limit=1, results=self.results, work=self._check_worker,
            admit=self._admit_check, on_cancel=self._check_cancelled, on_crash=self._check_crashed)
        self.uploading: BoundedStage[Item] = BoundedStage(
            "up", workers=policy.upload_concurrency, limit=policy.upload_concurrency * 2, results=self.results,
            work=self._upload_task, admit=self._admit_upload, on_cancel=self._cancelled,
            on_crash=self._upload_crashed)
        # Small files go many at a time (backup/batch.py); two batches in flight, the next one gathering
        # meanwhile.  CAMROLL_BATCH=0 sends every file through tus (to compare).
        self.sending: BoundedStage[list[Item]] = BoundedStage(
            "batch", workers=2, limit=2, results=self.results, work=self._batch_worker,
            admit=self._admit_batch, on_cancel=self._batch_cancelled, on_crash=self._batch_crashed)
        self.small: list[Item] = []
        self.small_bytes = 0
        self.batching = os.environ.get("CAMROLL_BATCH", "1") != "0"
        self.stages = (self.hashing, self.checking, self.uploading, self.sending)
        self.batch = _Batch()
        # sha256 -> items waiting for the one upload of those bytes already in flight this pass.
        self.inflight: dict[str, list[Item]] = {}
        # Set once an upload says none can succeed now (quota, disk full); checks go on.
        self.storage: Stop | None = None
        # Retried files (failed before) enter the pipeline only once fresh work has been hashed.
        self.deferred: deque[Item] = deque()
        self.reported: dict[str, int] = {}

    # --- worker callbacks (any thread) --------------------------------------------------------------
    def _on_bytes(self, path: str, n: int) -> None:
        with self.lock:
            self.reported[path] = self.reported.get(path, 0) + n
            self.summary.bytes_uploaded += n
        self.emit(BytesSent(path, n))

    def _may_send_body(self, size: int) -> bool:
        """True (and the room taken) if a body of ``size`` bytes is known to fit on the server now."""
        with self.lock:
            # A margin for what the server's disk takes meanwhile (thumbnails, its database, block
            # rounding): a file that only just fits is created first and refused before its body.
            if self.room is not None and size + ROOM_MARGIN + self.room // 100 <= self.room:
                self.room -= size
                self.promised += 1
                return True
            while self.promised and not self.stop.is_set():
                self.promised_done.wait(timeout=1.0)
            return False

    def _body_done(self, size: int) -> None:
        with self.lock:
            self.promised -= 1
            self.promised_done.notify_all()

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
                self._abort(Stop(StopCode.METERED_CAP, self.meter.reason))

    def _check_one(self, job: UploadJob) -> int | None:
        from camroll.agent.fsnames import check_item

        item = check_item(job.sha256, job.path, job.stat_key[1])
        resp = with_retries(lambda: self.api.check([item]), base_url=self.api.base_url,
                            should_stop=self.stop.is_set)
        return resp.present.get(job.sha256)

    # --- the loop -----------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._server_limits()
            while True:
                self._refill()
                if self.outstanding == 0:
                    break
                self._release_deferred()
                try:
                    timeout = CHECK_FLUSH_SECONDS if self.batch.items else 0.5
                    task = self.results.get(timeout=timeout)
                except queue.Empty:
                    task = None
                if task is not None:
                    self._run_tasks(task)
                if self.batch.items and self.checking.idle and (
                    task is None or self.hashing.idle
                    or time.monotonic() - self.batch.started > CHECK_FLUSH_SECONDS
                    # Upload workers with nothing to do: batching would only keep them idle.
                    or self.uploading.load + self.sending.load + len(self.small) < self.cfg.policy.upload_concurrency
                ):
                    self._flush_checks()
                    self._release_deferred()
                if self.small and (task is None or self.sending.idle or len(self.small) >= BATCH_TARGET
                                   or (self.hashing.idle and self.checking.idle and not self.batch.items)):
                    # A batch grows while the one before it travels: full batches, never an idle link.
                    self._flush_small()
        except (PassAborted, ServerUnreachable) as exc:
            self._abort(Stop(exc.stop_code, exc.message))
        except KeyboardInterrupt:
            self._abort(Stop(StopCode.STOPPED, "interrupted; unfinished uploads resume on the next backup"))
            raise
        finally:
            self.stop.set()
            for stage in self.stages:
                stage.shutdown()
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
        # Files still in the pipeline or the feed when it stopped keep their state and are picked up next time.
        self.summary.files_waiting += max(0, self.pulled - self.finished)
        if not self.feed_done:
            self.summary.files_waiting += sum(1 for row in self.feed if self._over_limit(row) is None)
        if self.storage is not None and self.summary.stop is None:
            self.summary.stop = self.storage

    def _server_limits(self) -> None:
        """Ask the server what it accepts (size limit, media types) and whether this agent is new enough.
        A server that cannot say keeps the limits from last time; the uploads then tell."""
        try:
            info = with_retries(self.api.server_info, base_url=self.api.base_url, should_stop=self.stop.is_set)
        except ProblemError as exc:
            fatal = fatal_for_pass(exc)
            if fatal is not None:
                raise fatal from exc
            info = None
        except ServerUnreachable:
            raise
        except AgentError:
            info = None
        if info is not None:
            try:
                check_compatible(info, self.api.base_url)
            except AgentError as exc:
                raise PassAborted(too_old(info, exc), StopCode.CLIENT_TOO_OLD) from exc
            limits = ServerLimits(info.upload.max_file_size, frozenset(m.mime for m in info.media_types))
            if limits != self.limits:
                store_limits(self.db, self.cfg, self.limits, limits)
                self.limits = limits

    def _over_limit(self, row: FileRow) -> Decision | None:
        """The server's size limit, known only now (earlier skips under other limits are looked at
        again by the next pass: the rules' fingerprint)."""
        if self.limits.max_file_size is None:
            return None
        return check_stat(row.path, row.folder, row.size, row.mtime_ns, self.cfg.policy, self.limits,
                          settle_seconds=0)

    def _refill(self) -> None:
        """Take files from the feed while fewer than ``WINDOW`` are in the pipeline."""
        if self.feed_done or self.outstanding >= WINDOW or self.stop.is_set():
            return
        with self.db.batch():
            while self.outstanding < WINDOW:
                row = next(self.feed, None)
                if row is None:
                    self.feed_done = True
                    return
                d = self._over_limit(row)
                if d is not None:
                    record_decision(self.db, row, d)
                    count_decision(self.summary, row, d)
                    continue
                self._terminate_stale(row)
                item = Item(row)
                self.outstanding += 1
                self.pulled += 1
                if row.state == "failed" or row.attempts > 0:
                    self.deferred.append(item)
                else:
                    self._start(item)

    def _start(self, item: Item) -> None:
        if item.row.sha256 and item.row.mime:
            item.sha256, item.mime = item.row.sha256, item.row.mime
            self._add_to_batch(item)
        else:
            self.hashing.submit(item)

    def _release_deferred(self) -> None:
        """Retries go behind fresh work: start them once fresh files are hashed and checked."""
        if self.deferred and self.hashing.idle and self.checking.idle and not self.batch.items:
            while self.deferred:
                self._start(self.deferred.popleft())

    def _run_tasks(self, first: Handler) -> None:
        """Handle ``first`` and whatever else is already queued in one database transaction."""
        with self.db.batch():
            first()
            for _ in range(500):
                try:
                    task = self.results.get_nowait()
                except queue.Empty:
                    break
                task()

    def _abort(self, stop: Stop) -> None:
        """Stop the pass; the first reason given is the one kept."""
        if self.summary.stop is None:
            self.summary.stop = stop
        self.stop.set()

    def _terminate_stale(self, row: FileRow) -> None:
        """A changed file may carry an upload of its old bytes: end it before hashing again."""
        if row.upload_url and not row.sha256:
            import httpx

            with contextlib.suppress(ProblemError, httpx.TransportError):
                self.tus.delete(row.upload_url)
            self.db.set_upload(row.id, None, None)
            row.upload_url = None

    # --- outcomes (coordinator thread) --------------------------------------------------------------
    def _finish_item(self, item: Item, outcome: Outcome, reason: str) -> None:
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

    def _fail(self, item: Item, reason: str, code: str = "failed", fix: str = "") -> None:
        from camroll.agent.backup.retry import next_retry_delay

        attempts = item.row.attempts + 1
        at = time.time() + next_retry_delay(attempts)
        when = time.strftime("%H:%M", time.localtime(at))
        fix = (fix + " " if fix else "") + f"camroll retries it by itself after {when}; 'camroll retry' tries it now."
        self.db.set_failed(item.row.id, reason, at, code=code, fix=fix)
        self._finish_item(item, "failed", reason)

    def _cancelled(self, item: Item) -> None:
        self._finish_item(item, "waiting", "not handled: the pass stopped")

    def _crashed(self, item: Item, exc: BaseException) -> None:
        if isinstance(exc, (PassAborted, ServerUnreachable)):
            self._abort(Stop(exc.stop_code, exc.message))
            self._finish_item(item, "waiting", exc.message)
            return
        # A bug must not stop the other files; the reason says what happened.
        self._fail(item, f"internal error: {type(exc).__name__}: {exc}")

    # --- hashing ------------------------------------------------------------------------------------
    def _admit_hash(self, item: Item) -> bool:
        if self.stop.is_set():
            self._finish_item(item, "waiting", "not hashed: the pass stopped")
            return False
        if item.row.size >= VISIBLE_HASH_BYTES:
            # Long enough to be seen in 'camroll status' while it runs.
            self.db.set_state(item.row.id, "hashing", "computing its SHA-256")
        return True

    def _hash_crashed(self, item: Item, exc: BaseException) -> None:
        self._crashed(item, exc)

    def _hash_worker(self, item: Item) -> Handler:
        """Hash one file (worker thread); returns what the coordinator does with the result."""
        from camroll.agent.backup.hasher import FileChanged, NotMedia, hash_file

        if self.stop.is_set():
            return lambda: self._finish_item(item, "waiting", "not hashed: the pass stopped")
        # The file's stat from the open descriptor (hash_file's own, before and after reading) is compared
        # with the scan's afterwards: one stat call less per file than a look before reading.
        try:
            res = hash_file(item.row.path, self.cfg.policy.chunk_size)
        except NotMedia as exc:
            # A file still being written may not have its first bytes yet: that is not a verdict.
            moved = self._moved_since_scan(item)
            if moved is not None:
                return lambda: self._hashed_decision(item, moved)
            nd = not_media(str(exc))
            return lambda: self._hashed_decision(item, nd)
        except FileChanged as exc:
            # Changed since the scan as well as while read: a copy going on, which waits for a later pass
            # rather than being read again at once (a pause in the copy would pass for the end).
            copying = self._moved_since_scan(item)
            if copying is not None:
                return lambda: self._hashed_decision(item, copying)
            reason = str(exc)
            return lambda: self._changed(item, reason)
        except FileNotFoundError:
            return lambda: self._hashed_gone(item)
        except OSError as exc:
            reason = f"cannot read the file: {exc.strerror or exc}"
            return lambda: self._fail(item, reason, "unreadable", UNREADABLE_FIX)
        if item.rehashes == 0 and res.stat_key != item.row.stat_key:
            # (A rehash already knows the file changed and reads it again, as designed.)
            d = still_being_written(f"{item.row.size:,} -> {res.stat_key[0]:,} bytes since the scan")
            return lambda: self._hashed_decision(item, d)
        return lambda: self._hashed_ok(item, res)

    def _moved_since_scan(self, item: Item) -> Decision | None:
        """'Still being written' when the file's stat differs from the scan's (worker thread)."""
        from camroll.agent.backup.hasher import stat_key

        if item.rehashes:
            return None
        try:
            now_key = stat_key(item.row.path)
        except OSError:
            return None
        if now_key == item.row.stat_key:
            return None
        return still_being_written(f"{item.row.size:,} -> {now_key[0]:,} bytes since the scan")

    def _hashed_ok(self, item: Item, res: HashResult) -> None:
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

    def _hashed_decision(self, item: Item, d: Decision) -> None:
        record_decision(self.db, item.row, d)
        self._finish_item(item, "skipped" if d.state == "skipped" else "waiting", d.reason)

    def _hashed_gone(self, item: Item) -> None:
        self.db.set_state(item.row.id, "vanished", "the file disappeared before it was read", "gone")
        self._finish_item(item, "skipped", "the file disappeared before it was read")

    def _changed(self, item: Item, reason: str) -> None:
        item.rehashes += 1
        if item.rehashes > MAX_REHASH_PER_PASS:
            d = still_being_written(f"{reason}; it kept changing while camroll read it")
            self.db.set_waiting(item.row.id, d.reason, d.code, d.fix, clear_hash=True)
            self._finish_item(item, "waiting", d.reason)
            return
        self.db.set_pending(item.row.id, reason, clear_hash=True)
        item.sha256 = item.mime = None
        item.chunk_digests, item.digest_chunk_size = (), 0
        self.hashing.submit(item)

    # --- checking -----------------------------------------------------------------------------------
    def _add_to_batch(self, item: Item) -> None:
        from camroll import wire

        if not self.batch.items:
            self.batch.started = time.monotonic()
        self.batch.items.append(item)
        if len(self.batch.items) >= wire.MAX_CHECK_BATCH:
            self._flush_checks()

    def _flush_checks(self) -> None:
        items, self.batch = self.batch.items, _Batch()
        self.checking.submit(items)

    def _admit_check(self, items: list[Item]) -> bool:
        if self.stop.is_set():
            for it in items:
                self._finish_item(it, "waiting", "not checked: the pass stopped")
            return False
        return True

    def _check_cancelled(self, items: list[Item]) -> None:
        for it in items:
            self._cancelled(it)

    def _check_crashed(self, items: list[Item], exc: BaseException) -> None:
        for it in items:
            self._crashed(it, exc)

    def _check_worker(self, items: list[Item]) -> Handler:
        """Ask the server which of ``items``' hashes it has (worker thread)."""
        from camroll.agent.fsnames import check_item

        req = [check_item(it.sha256 or "", it.row.path, it.row.mtime_ns) for it in items]
        try:
            resp = with_retries(lambda: self.api.check(req), base_url=self.api.base_url,
                                should_stop=self.stop.is_set)
        except ProblemError as exc:
            err = exc
            return lambda: self._check_refused(items, err)
        except (PassAborted, ServerUnreachable) as exc:
            abort = exc
            return lambda: self._check_aborted(items, abort)
        return lambda: self._checked(items, resp)

    def _check_aborted(self, items: list[Item], exc: PassAborted | ServerUnreachable) -> None:
        # The items keep their state (counted as waiting when the pass ends); the loop stops the pass.
        raise exc

    def _check_refused(self, items: list[Item], exc: ProblemError) -> None:
        fatal = fatal_for_pass(exc)
        if fatal is not None:
            raise fatal from exc
        for it in items:
            self._fail(it, f"the server could not check it: {exc}")

    def _checked(self, items: list[Item], resp: wire.CheckResponse) -> None:
        if resp.room is not None:
            with self.lock:
                # Within a pass the room only shrinks: the server's figure cannot know the bodies this
                # pass has promised but not yet created, and room that grows meanwhile costs at most a
                # bodiless creation (one more request), never a refused body.
                got = resp.room.bytes
                self.room = got if self.room is None else min(self.room, got)
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
                self._send(it)

    # --- batches of small files ---------------------------------------------------------------------
    def _send(self, item: Item) -> None:
        """A checked file to the batch stage (small) or the upload stage (tus)."""
        # Under a metered daily cap every file goes through tus, whose pieces the cap can stop between.
        if (self.batching and not item.no_batch and item.row.size <= batch.THRESHOLD
                and not item.row.upload_url and self.meter is None):
            self.small.append(item)
            self.small_bytes += item.row.size
            if len(self.small) >= batch.MAX_FILES or self.small_bytes >= batch.MAX_BYTES:
                self._flush_small()
            return
        self.uploading.submit(item)

    def _flush_small(self) -> None:
        items, self.small, self.small_bytes = self.small, [], 0
        cur: list[Item] = []
        size = 0
        for it in items:
            if cur and (len(cur) >= batch.MAX_FILES or size + it.row.size > batch.MAX_BYTES):
                self.sending.submit(cur)
                cur, size = [], 0
            cur.append(it)
            size += it.row.size
        if cur:
            self.sending.submit(cur)

    def _admit_batch(self, items: list[Item]) -> bool:
        if self.stop.is_set() or self.storage is not None:
            for it in items:
                self._not_uploaded(it)
            return False
        return True

    def _batch_cancelled(self, items: list[Item]) -> None:
        for it in items:
            self._cancelled(it)

    def _batch_crashed(self, items: list[Item], exc: BaseException) -> None:
        for it in items:
            self._upload_crashed(it, exc)

    def _batch_file(self, item: Item) -> batch.BatchFile:
        from camroll.agent.fsnames import check_item

        ci = check_item(item.sha256 or "", item.row.path, item.row.mtime_ns)
        return batch.BatchFile(local=item.row.path, size=item.row.size, sha256=item.sha256 or "",
                               path=ci.path or "", filename=ci.filename, mtime_ns=ci.mtime_ns, path_raw=ci.path_raw)

    def _batch_worker(self, items: list[Item]) -> Handler:
        """Send one batch (worker thread); each file's outcome is handled as its own upload's would be."""
        files = [self._batch_file(it) for it in items]
        item_of = {id(f): it for f, it in zip(files, items, strict=True)}

        def sent(f: batch.BatchFile) -> None:
            self._on_bytes(item_of[id(f)].row.path, f.size)
            self._on_sent(f.size)

        try:
            results = batch.send_batch(self.client, files, pace=self._pace if (self.bucket or self.meter) else None,
                                       sent=sent)
        except batch.BatchUnsupported:
            self.batching = False  # an older server: tus for the rest of the pass
            results = [batch.FileResult(f, batch.Outcome.NOT_SENT) for f in files]
        handlers = [self._batch_outcome(item_of[id(r.file)], r) for r in results]

        def handle() -> None:
            for h in handlers:
                h()
        return handle

    def _batch_outcome(self, item: Item, r: batch.FileResult) -> Handler:
        if r.outcome is batch.Outcome.STORED and r.asset_id is not None:
            return lambda: self._uploaded(item, r.asset_id or 0, False)
        if r.outcome is batch.Outcome.ALREADY_THERE and r.asset_id is not None:
            return lambda: self._uploaded(item, r.asset_id or 0, True)
        if r.outcome is batch.Outcome.REFUSED and r.code == "checksum_mismatch":
            reason = f"the server's checksum of the file did not match ({r.detail}); hashing it again"
            return lambda: self._upload_changed(item, reason)
        if r.outcome is batch.Outcome.REFUSED and r.code is not None and r.code in batch.AS_PROBLEM:
            status, code = batch.AS_PROBLEM[r.code]
            exc = ProblemError(status, code, r.detail or code, r.fix or None)
            if (stop := storage_stop(exc)) is not None and self.storage is None:
                self.storage = stop
            return lambda: self._upload_problem(item, exc)

        def resend() -> None:
            # Not delivered (or not stored): the same file goes alone through tus, resumable mid-file.
            item.no_batch = True
            self.uploading.submit(item)
        return resend

    # --- uploading ----------------------------------------------------------------------------------
    def _admit_upload(self, item: Item) -> bool:
        if self.stop.is_set() or self.storage is not None:
            self._not_uploaded(item)
            return False
        return True

    def _upload_crashed(self, item: Item, exc: BaseException) -> None:
        self._release_followers(item, ok=False)
        self._crashed(item, exc)

    def _not_uploaded(self, item: Item) -> None:
        self._release_followers(item, ok=False)
        if self.storage is not None:
            self.db.set_waiting(item.row.id, self.storage.sentence, self.storage.code.value, self.storage.fix)
            self._finish_item(item, "waiting", self.storage.sentence)
        else:
            self._finish_item(item, "waiting", "not uploaded: the pass stopped")

    def _upload_task(self, item: Item) -> Handler:
        # A storage stop seen by another worker: do not start an upload that cannot succeed.
        if self.storage is not None:
            return lambda: self._not_uploaded(item)
        return self._upload_worker(item)

    def _upload_worker(self, item: Item) -> Handler:
        """Upload one file (worker thread); returns what the coordinator does with the outcome."""
        from camroll.agent.backup.uploader import FileChangedDuringUpload, ServerHashMismatch, Stopped

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
            stop = storage_stop(exc)
            if stop is not None and self.storage is None:
                # Set here, not only on the coordinator, so uploads already queued in the pool see
                # it before they start.
                self.storage = stop
            return lambda: self._upload_problem(item, err)
        except OSError as exc:
            reason = f"cannot read the file: {exc.strerror or exc}"
            return lambda: self._upload_failed(item, reason)
        return lambda: self._uploaded(item, done.asset_id, done.already_there)

    def _release_followers(self, item: Item, *, ok: bool) -> None:
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
            self.uploading.submit(first)

    def _uploaded(self, item: Item, asset_id: int, already_there: bool) -> None:
        reason = "already on the server" if already_there else "uploaded and verified by the server"
        with self.lock:
            sent = self.reported.get(item.row.path, 0)
        if sent:
            from camroll.units import format_size

            self.db.add_event(item.row.id, "sent", f"{format_size(sent)} sent this pass")
        self.db.set_backed_up(item.row.id, asset_id, reason)
        self._finish_item(item, "already_on_server" if already_there else "uploaded", reason)
        self._release_followers(item, ok=True)

    def _upload_changed(self, item: Item, reason: str) -> None:
        self._release_followers(item, ok=False)
        # The unfinished upload carries the old hash in its metadata: end it so the new version
        # starts a fresh one.
        url = self.db.get(item.row.id).upload_url
        if url:
            import httpx

            with contextlib.suppress(ProblemError, httpx.TransportError):
                TusClient(self.client).delete(url)
            self.db.set_upload(item.row.id, None, None)
        self._changed(item, reason)

    def _upload_gone(self, item: Item) -> None:
        self._release_followers(item, ok=False)
        self.db.set_state(item.row.id, "vanished", "the file disappeared during upload", "gone")
        self._finish_item(item, "skipped", "the file disappeared during upload")

    def _upload_waiting(self, item: Item, reason: str) -> None:
        self._release_followers(item, ok=False)
        self._finish_item(item, "waiting", reason)

    def _upload_failed(self, item: Item, reason: str) -> None:
        self._release_followers(item, ok=False)
        self._fail(item, reason)

    def _upload_problem(self, item: Item, exc: ProblemError) -> None:
        fatal = fatal_for_pass(exc)
        if fatal is not None:
            self._abort(Stop(fatal.stop_code, fatal.message))
            self._finish_item(item, "waiting", fatal.message)
            return
        stop = storage_stop(exc)
        if stop is not None:
            if self.storage is None:
                # Every further upload would fail the same way: stop uploading, keep checking.
                self.storage = stop
            # Not this file's fault: it waits with the others and goes when there is room.
            self._release_followers(item, ok=False)
            self.db.set_waiting(item.row.id, stop.sentence, self.storage.code.value, self.storage.fix)
            self._finish_item(item, "waiting", stop.sentence)
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
