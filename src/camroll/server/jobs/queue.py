"""The task queue: huey on SQLite beside the database (the embedded default) or on Redis when
``$CAMROLL_REDIS_URL`` is set, consumed by worker threads inside ``camroll serve``.

Why huey: one small, maintained library whose storage is pluggable (SQLite for one box, Redis or
PostgreSQL when API replicas and workers are separate), with retries, delays and periodic tasks,
and a consumer that can run as threads inside our own process.  procrastinate needs PostgreSQL, so
it cannot serve the embedded default.

The database, not the queue, is the truth about what is done: each asset row records when its
metadata and thumbnails were made, or why they failed.  So the queue may be lost or flushed; at
start every unfinished asset is enqueued again, and a job that finds its work done returns at once.

Several replicas and ``camroll worker`` processes may hold jobs for the same asset (a fresh upload's,
a start-up re-queue's, a thumbnail endpoint's); each job first claims its asset in the database
(server/leases.py, ``asset:ID``), so one process at a time works on it and thumbnails are made once.
A job that finds the asset claimed looks again after the claim's TTL (its holder may have died, and
then its claim has run out); a live holder renews its claims while it works.  With Redis the queue is
shared, so the start-up re-queue runs in one replica (under a lease), and the trash purge always does.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from huey import Huey, PriorityRedisHuey
from huey.consumer import Consumer
from huey.storage import SqliteStorage

from camroll.media.sandbox import Sandbox
from camroll.server import leases as lease_names
from camroll.server import metrics
from camroll.server.jobs.config import JobSettings, queue_file, sandbox_limits
from camroll.server.jobs.yielding import lower_this_thread
from camroll.server.leases import Leases
from camroll.server.settings import Settings

if TYPE_CHECKING:
    from camroll.server.context import Context

log = logging.getLogger("camroll.server.jobs")

QUEUE_NAME = "camroll"
TASK_PROCESS = "process_asset"
TASK_PROCESS_GROUP = "process_assets"
# A batch of uploads is queued as groups of this many assets, one task each: one queue write per group
# instead of per asset (a 500-file batch paid 500 SQLite commits), while several worker threads can
# still share the catch-up.
GROUP_SIZE = 25
# An idle worker polls the embedded queue at most this often, so a fresh upload waits no longer.
_MAX_POLL_SECONDS = 1.0
_BACKFILL_BATCH = 1000
# A fresh upload jumps the backlog a start-up pass queued, so the photo just taken shows up first.
PRIORITY_NEW = 10
PRIORITY_BACKLOG = 0
# Jobs that met a full disk wait the retry delay, doubled at each consecutive full-disk round, up to this.
DISK_WAIT_MAX_SECONDS = 900.0
# An asset's claim runs out this long after its last renewal: a dead worker's asset is taken up again
# within about this long.  A live worker renews its claims every third of it (the housekeeping loop).
CLAIM_TTL_SECONDS = 60.0
# Replicas starting within this long of another one's re-queue of the shared queue skip theirs.
REQUEUE_TTL_SECONDS = 600.0


def make_huey(settings: Settings, jobs: JobSettings) -> Huey:
    """The queue for this data directory (SQLite) or for ``$CAMROLL_REDIS_URL``."""
    if jobs.redis_url:
        # huey imports redis only when it connects; fail here, with the fix, instead.
        if importlib.util.find_spec("redis") is None:
            raise RuntimeError("CAMROLL_REDIS_URL is set but the redis package is not installed; "
                               "run 'pip install camroll[redis]' or unset CAMROLL_REDIS_URL.")
        return PriorityRedisHuey(QUEUE_NAME, url=jobs.redis_url, results=False)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Huey(QUEUE_NAME, storage_class=_QueueStorage, filename=str(queue_file(settings.data_dir)), results=False)


class _QueueStorage(SqliteStorage):  # type: ignore[misc]
    """huey's SQLite storage with WAL commits that do not wait for fsync (synchronous=NORMAL).

    Every finished upload enqueues a job from its request: a synced commit cost 4 ms of the upload's
    response time here, an unsynced one 0.3 ms.  A power cut can lose the last few enqueues but never
    corrupts the file (WAL), and the start-up pass re-queues whatever the asset rows say is missing."""

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        conn.execute("pragma synchronous=1")
        return conn


class _Retryable:
    """Stands for a huey task with retries left: an error is raised (then queued alone) rather than
    recorded on the asset as final."""

    retries = 1


_RETRYABLE = _Retryable()


class _InProcessConsumer(Consumer):  # type: ignore[misc]
    """huey's consumer without its signal handlers: uvicorn owns SIGINT/SIGTERM in this process."""

    def _set_signal_handlers(self) -> None:
        pass


class JobQueue:
    """The server's queue: enqueue from request handlers, consume on threads, purge the trash.

    It is the server's ``WorkQueue`` (services/work.py): services ask through ``ctx.work``."""

    def __init__(self, ctx: Context, jobs: JobSettings | None = None,
                 clock: Callable[[], float] = time.monotonic, leases: Leases | None = None,
                 claim_ttl: float = CLAIM_TTL_SECONDS) -> None:
        self.ctx = ctx
        self.jobs = jobs or JobSettings.from_env()
        self.leases = leases or Leases(ctx)
        self.claim_ttl = claim_ttl
        # Claims this process holds now (asset lease names), renewed together while their jobs run.
        self._claims: set[str] = set()
        self._claims_lock = threading.Lock()
        self._renew_at = 0.0
        self.huey = make_huey(ctx.settings, self.jobs)
        self._run_timed = metrics.timed(ctx, TASK_PROCESS, self._run)
        self._process = self.huey.task(retries=self.jobs.retries, retry_delay=self.jobs.retry_delay_seconds,
                                       context=True, name=TASK_PROCESS)(self._run_timed)
        # No retries of its own: an asset of the group that fails is queued again alone, with them.
        self._process_group = self.huey.task(retries=0, context=True, name=TASK_PROCESS_GROUP)(self._run_group)
        # Every file is read in this sandbox's children, whether the consumer is in the server or in
        # 'camroll worker'; children start at the first job.
        self.sandbox = Sandbox(sandbox_limits())
        self._consumer: _InProcessConsumer | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clock = clock
        # Assets whose job met a full disk: queued again together after a back-off that doubles while
        # the disk stays full, kept in memory (the queue's own file may be on the full disk; a restart
        # re-queues them from the asset rows, which record no failure for them).
        self._parked: dict[int, None] = {}
        self._park_lock = threading.Lock()
        self._disk_waits = 0
        self._unpark_at = 0.0

    # --- producing ------------------------------------------------------------------------------
    def enqueue(self, asset_id: int, *, fresh: bool = True) -> None:
        self._process(asset_id, priority=PRIORITY_NEW if fresh else PRIORITY_BACKLOG)

    def asset_added(self, asset_id: int) -> None:
        """WorkQueue: a fresh upload, ahead of the backlog.  Never fails the caller: an asset that could
        not be queued now is queued at the next start."""
        try:
            self.enqueue(asset_id)
        except Exception:
            log.exception("could not queue jobs for asset %d; they are queued at the next start", asset_id)

    def assets_added(self, asset_ids: Sequence[int]) -> None:
        """WorkQueue: fresh uploads committed together (a batch), queued as groups of at most
        ``GROUP_SIZE``, and never fewer groups than worker threads, so a small batch keeps them all busy."""
        size = max(1, min(GROUP_SIZE, -(-len(asset_ids) // max(1, self.jobs.workers))))
        for i in range(0, len(asset_ids), size):
            group = list(asset_ids[i:i + size])
            try:
                self._process_group(group, priority=PRIORITY_NEW)
            except Exception:
                log.exception("could not queue jobs for %d assets; they are queued at the next start", len(group))

    def redo(self, asset_id: int) -> None:
        """WorkQueue: a result the row says exists is missing; the job does what is missing."""
        self.asset_added(asset_id)

    def enqueue_unfinished(self) -> int:
        """Enqueue every asset whose metadata or thumbnails are missing and that has not failed."""
        from camroll.server.repositories import assets as repo

        after, total = 0, 0
        while not self._stop.is_set():
            with self.ctx.db() as db:
                ids = repo.needing_jobs(db, after, _BACKFILL_BATCH)
            if not ids:
                break
            for asset_id in ids:
                self.enqueue(asset_id, fresh=False)
            total += len(ids)
            after = ids[-1]
        if total:
            log.info("queued %d assets that still need metadata or thumbnails", total)
        return total

    # --- consuming ------------------------------------------------------------------------------
    def _run_group(self, asset_ids: list[int], task: Any = None) -> str:
        """Each asset as its own job would be: its own claim, outcome and metric.  One that fails in a
        way worth retrying is queued again alone, where huey's retries take it over, so it never
        takes the rest of its group down with it."""
        for n, asset_id in enumerate(asset_ids):
            if self._stop.is_set():
                # Back to the queue: with Redis another replica or worker takes them now, not at some start.
                self._requeue_group(asset_ids[n:])
                break
            try:
                self._run_timed(asset_id, _RETRYABLE)
            except Exception:
                log.info("asset %d: its job is tried again on its own", asset_id, exc_info=True)
                self.asset_added(asset_id)
        return "group"

    def _requeue_group(self, asset_ids: list[int]) -> None:
        try:
            self._process_group(asset_ids, priority=PRIORITY_NEW)
        except Exception:
            log.exception("could not queue %d assets again; they are queued at the next start", len(asset_ids))

    def _run(self, asset_id: int, task: Any = None) -> str:
        lower_this_thread()
        with self.ctx.activity.turn(self._stop):
            return self._run_now(asset_id, task)

    def _run_now(self, asset_id: int, task: Any = None) -> str:
        from camroll.server.services import media

        claim = lease_names.asset_claim(asset_id)
        claimed = False
        # The lease's holder is this process, so it cannot tell two of its own threads apart (a
        # duplicate job is normal: an upload, a thumbnail request, the start-up re-queue): the set of
        # claims held here keeps a second thread off an asset the first is working on.
        with self._claims_lock:
            busy_here = claim in self._claims
            if not busy_here:
                self._claims.add(claim)
        if busy_here:
            self._look_again(asset_id)
            return "claimed_elsewhere"
        try:
            if not self.leases.acquire(claim, self.claim_ttl):
                with self._claims_lock:
                    self._claims.discard(claim)
                self._look_again(asset_id)
                return "claimed_elsewhere"
            claimed = True
            outcome = media.process(self.ctx, asset_id, self.sandbox)
            with self._park_lock:
                self._disk_waits = 0
            return outcome
        except Exception as exc:
            from camroll.server.storage.base import CopyTooLarge, StorageFailure

            if isinstance(exc, CopyTooLarge):
                # A limit on this file (CAMROLL_LOCAL_COPY_MAX), not a store that is down: a verdict.
                log.warning("asset %d: %s", asset_id, exc)
                media.record_failure(self.ctx, asset_id, str(exc))
                return "failed"
            if isinstance(exc, StorageFailure):
                # The store (a bucket that is down, keys that lost their rights), not the file: no verdict
                # is recorded on the asset, so fixing the store is enough; the job waits like on a full disk.
                log.warning("asset %d: the blob store failed (%s); its job waits and is tried again", asset_id, exc)
                self._park(asset_id)
                return "waiting_for_storage"
            if not _out_of_space(exc):
                return self._failed(asset_id, exc, task)
            # The server's disk, not the file: no failure is recorded on the asset.
            log.warning("asset %d: the server's disk is full (%s); its job waits and is tried again", asset_id, exc)
            self._park(asset_id)
            return "waiting_for_disk"
        finally:
            if claimed:
                self._unclaim(claim)
            _trim_heap()

    def _look_again(self, asset_id: int) -> None:
        """Another process works on the asset now.  Its job normally finishes it; if that process dies,
        its claim runs out, and this later job does the work (or finds it done and returns)."""
        try:
            self._process.schedule(args=(asset_id,), delay=self.claim_ttl, priority=PRIORITY_BACKLOG)
        except Exception:
            log.exception("could not schedule another look at asset %d; it is queued at the next start", asset_id)

    def _unclaim(self, claim: str) -> None:
        with self._claims_lock:
            self._claims.discard(claim)
        try:
            self.leases.release(claim)
        except Exception:
            # It runs out by itself after the TTL.
            log.warning("could not release %s; it runs out in %g s", claim, self.claim_ttl, exc_info=True)

    def renew_claims(self) -> int:
        """Extend the claims of the jobs running in this process, at most every third of their TTL;
        returns how many were renewed."""
        now = self._clock()
        with self._claims_lock:
            if now < self._renew_at or not self._claims:
                return 0
            names = list(self._claims)
            self._renew_at = now + self.claim_ttl / 3
        try:
            return self.leases.renew_many(names, self.claim_ttl)
        except Exception:
            log.warning("could not renew %d job claims; tried again shortly", len(names), exc_info=True)
            return 0

    def _failed(self, asset_id: int, exc: Exception, task: Any) -> str:
        from camroll.media.errors import MediaError
        from camroll.media.sandbox import SandboxFailure
        from camroll.server.services import media

        if isinstance(exc, SandboxFailure):
            if not exc.transient:
                # A verdict on the file (over the time or memory limit, crashed the decoder, unreadable):
                # recorded, so it is not queued again at every start until 'admin jobs --retry'.
                log.warning("asset %d: %s: %s", asset_id, exc.failure.kind, exc)
                media.record_failure(self.ctx, asset_id, str(exc))
                return "failed"
            # The cause is elsewhere (no process could start): huey retries later, and when its retries
            # run out the asset stays unfailed, so the next start queues it again.
            log.warning("asset %d: %s; retried later", asset_id, exc)
            if task is None or not task.retries:
                return "postponed"
            raise exc
        if isinstance(exc, MediaError):
            # A corrupt file or a missing ffmpeg: another attempt would fail the same way.
            log.warning("asset %d: %s", asset_id, exc)
            media.record_failure(self.ctx, asset_id, str(exc))
            return "failed"
        if task is None or not task.retries:
            media.record_failure(self.ctx, asset_id,
                                 f"The background job failed ({type(exc).__name__}: {exc}); "
                                 "run 'camroll admin jobs --retry' once the cause is fixed.")
        raise exc

    def _park(self, asset_id: int) -> None:
        with self._park_lock:
            if not self._parked:
                delay = min(DISK_WAIT_MAX_SECONDS, max(0.2, self.jobs.retry_delay_seconds) * 2 ** self._disk_waits)
                self._disk_waits += 1
                self._unpark_at = self._clock() + delay
            self._parked[asset_id] = None

    @property
    def waiting_for_disk(self) -> int:
        with self._park_lock:
            return len(self._parked)

    def requeue_parked(self) -> int:
        """Queue the parked assets again if their back-off is over; returns how many."""
        with self._park_lock:
            if not self._parked or self._clock() < self._unpark_at:
                return 0
            ids, self._parked = list(self._parked), {}
        for n, asset_id in enumerate(ids):
            try:
                self.enqueue(asset_id, fresh=False)
            except Exception as exc:
                # The queue's file is on the full disk too: wait another round.
                log.warning("could not queue asset %d again (%s); trying later", asset_id, exc)
                for rest in ids[n:]:
                    self._park(rest)
                return n
        return len(ids)

    def _housekeeping_loop(self) -> None:
        while not self._stop.wait(1.0):
            self.requeue_parked()
            self.renew_claims()

    def start(self) -> None:
        """Start worker threads, then enqueue unfinished assets and run the trash purge in the background."""
        if not self.jobs.redis_url:
            # The database says what is left to do: start from a clean queue instead of running
            # leftovers twice.  (A shared Redis queue may hold other replicas' fresh uploads.)
            self.huey.flush()
        if self.jobs.workers:
            self._consumer = _InProcessConsumer(self.huey, **self.consumer_options(self.jobs.workers))
            self._consumer.start()
        for target, name in ((self._backfill, "camroll-job-backfill"), (self._purge_loop, "camroll-trash-purge"),
                             (self._housekeeping_loop, "camroll-job-housekeeping")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    @staticmethod
    def consumer_options(workers: int) -> dict[str, Any]:
        return {"workers": workers, "worker_type": "thread", "periodic": False, "initial_delay": 0.05,
                "max_delay": _MAX_POLL_SECONDS, "check_worker_health": False, "shutdown_timeout": 10.0}

    def work_forever(self, workers: int) -> None:
        """Consume in this process until SIGINT/SIGTERM (``camroll worker``), letting running jobs finish."""
        # SIGTERM (a service manager stopping it) waits for running jobs; SIGINT stops at once.
        threading.Thread(target=self._housekeeping_loop, name="camroll-job-housekeeping", daemon=True).start()
        try:
            Consumer(self.huey, graceful_signal="TERM", **self.consumer_options(workers)).run()
        finally:
            self.sandbox.close()

    def _backfill(self) -> None:
        try:
            # The embedded queue is this server's own (flushed at start): it always fills it.  A shared
            # Redis queue needs it once, not once per replica.
            if self.jobs.redis_url and not self.leases.acquire(lease_names.REQUEUE, REQUEUE_TTL_SECONDS):
                log.info("another replica queues the unfinished assets (%s)", lease_names.REQUEUE)
                return
            self.enqueue_unfinished()
        except Exception:
            log.exception("queueing unfinished assets failed; they are queued again at the next start")

    def _purge_loop(self) -> None:
        from camroll.server.services import trash

        # Once soon after start (a server restarted more often than the interval still purges), then
        # every interval, in the one replica that holds the lease.
        wait = min(self.jobs.purge_interval_seconds, 30.0)
        ttl = lease_names.period_ttl(self.jobs.purge_interval_seconds)
        while not self._stop.wait(wait):
            try:
                if self.leases.acquire(lease_names.TRASH_PURGE, ttl):
                    trash.purge(self.ctx, days=self.jobs.trash_days)
            except Exception:
                log.exception("purging the trash failed; it is tried again later")
            wait = self.jobs.purge_interval_seconds

    def stop(self) -> None:
        """Let running jobs finish (up to 10 s), then stop the workers."""
        self._stop.set()
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
        for t in self._threads:
            t.join(timeout=5)
        self.sandbox.close()


def _out_of_space(exc: BaseException) -> bool:
    """A full disk, met here or in the sandboxed child (which reports the errno behind it)."""
    from camroll.media.errors import OUT_OF_SPACE_ERRNOS
    from camroll.media.sandbox import SandboxFailure
    from camroll.server.diskspace import is_out_of_space

    if isinstance(exc, SandboxFailure):
        return exc.failure.errno in OUT_OF_SPACE_ERRNOS
    return is_out_of_space(exc)


@functools.cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def _trim_heap() -> None:
    """Give the decoder's freed buffers back to the OS: glibc keeps them in per-thread arenas, so a
    server that made thumbnails an hour ago would otherwise still hold their peak (145 -> 45 MB here)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def asset_added(ctx: Context, asset_id: int) -> None:
    """Kept for callers from before services/work.py: the same as ``ctx.work.asset_added``."""
    ctx.work.asset_added(asset_id)
