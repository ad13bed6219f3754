"""The task queue: huey on SQLite beside the database (the embedded default) or on Redis when
``$CAMROLL_REDIS_URL`` is set, consumed by worker threads inside ``camroll serve``.

Why huey: one small, maintained library whose storage is pluggable (SQLite for one box, Redis or
PostgreSQL when API replicas and workers are separate), with retries, delays and periodic tasks,
and a consumer that can run as threads inside our own process.  procrastinate needs PostgreSQL, so
it cannot serve the embedded default.

The database, not the queue, is the truth about what is done: each asset row records when its
metadata and thumbnails were made, or why they failed.  So the queue may be lost or flushed; at
start every unfinished asset is enqueued again, and a job that finds its work done returns at once.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging
import sys
import threading
from typing import TYPE_CHECKING, Any

from huey import Huey, PriorityRedisHuey
from huey.consumer import Consumer
from huey.storage import SqliteStorage

from camroll.media.sandbox import Sandbox
from camroll.server.jobs.config import JobSettings, queue_file, sandbox_limits
from camroll.server.settings import Settings

if TYPE_CHECKING:
    from camroll.server.context import Context

log = logging.getLogger("camroll.server.jobs")

QUEUE_NAME = "camroll"
TASK_PROCESS = "process_asset"
# An idle worker polls the embedded queue at most this often, so a fresh upload waits no longer.
_MAX_POLL_SECONDS = 1.0
_BACKFILL_BATCH = 1000
# A fresh upload jumps the backlog a start-up pass queued, so the photo just taken shows up first.
PRIORITY_NEW = 10
PRIORITY_BACKLOG = 0


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


class _InProcessConsumer(Consumer):  # type: ignore[misc]
    """huey's consumer without its signal handlers: uvicorn owns SIGINT/SIGTERM in this process."""

    def _set_signal_handlers(self) -> None:
        pass


class JobQueue:
    """The server's queue: enqueue from request handlers, consume on threads, purge the trash."""

    def __init__(self, ctx: Context, jobs: JobSettings | None = None) -> None:
        self.ctx = ctx
        self.jobs = jobs or JobSettings.from_env()
        self.huey = make_huey(ctx.settings, self.jobs)
        self._process = self.huey.task(retries=self.jobs.retries, retry_delay=self.jobs.retry_delay_seconds,
                                       context=True, name=TASK_PROCESS)(self._run)
        # Every file is read in this sandbox's children, whether the consumer is in the server or in
        # 'camroll worker'; children start at the first job.
        self.sandbox = Sandbox(sandbox_limits())
        self._consumer: _InProcessConsumer | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- producing ------------------------------------------------------------------------------
    def enqueue(self, asset_id: int, *, fresh: bool = True) -> None:
        self._process(asset_id, priority=PRIORITY_NEW if fresh else PRIORITY_BACKLOG)

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
    def _run(self, asset_id: int, task: Any = None) -> str:
        from camroll.media.errors import MediaError
        from camroll.media.sandbox import SandboxFailure
        from camroll.server.services import media

        try:
            return media.process(self.ctx, asset_id, self.sandbox)
        except SandboxFailure as exc:
            if not exc.transient:
                # A verdict on the file (over the time or memory limit, crashed the decoder, unreadable):
                # recorded, so it is not queued again at every start until 'admin jobs --retry'.
                log.warning("asset %d: %s: %s", asset_id, exc.failure.kind, exc)
                media.record_failure(self.ctx, asset_id, str(exc))
                return "failed"
            # The cause is elsewhere (a full disk, no process could start): huey retries later, and
            # when its retries run out the asset stays unfailed, so the next start queues it again.
            log.warning("asset %d: %s; retried later", asset_id, exc)
            if task is None or not task.retries:
                return "postponed"
            raise
        except MediaError as exc:
            # A corrupt file or a missing ffmpeg: another attempt would fail the same way.
            log.warning("asset %d: %s", asset_id, exc)
            media.record_failure(self.ctx, asset_id, str(exc))
            return "failed"
        except Exception as exc:
            if task is None or not task.retries:
                media.record_failure(self.ctx, asset_id,
                                     f"The background job failed ({type(exc).__name__}: {exc}); "
                                     "run 'camroll admin jobs --retry' once the cause is fixed.")
            raise
        finally:
            _trim_heap()

    def start(self) -> None:
        """Start worker threads, then enqueue unfinished assets and run the trash purge in the background."""
        if not self.jobs.redis_url:
            # The database says what is left to do: start from a clean queue instead of running
            # leftovers twice.  (A shared Redis queue may hold other replicas' fresh uploads.)
            self.huey.flush()
        if self.jobs.workers:
            self._consumer = _InProcessConsumer(self.huey, **self.consumer_options(self.jobs.workers))
            self._consumer.start()
        for target, name in ((self._backfill, "camroll-job-backfill"), (self._purge_loop, "camroll-trash-purge")):
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
        try:
            Consumer(self.huey, graceful_signal="TERM", **self.consumer_options(workers)).run()
        finally:
            self.sandbox.close()

    def _backfill(self) -> None:
        try:
            self.enqueue_unfinished()
        except Exception:
            log.exception("queueing unfinished assets failed; they are queued again at the next start")

    def _purge_loop(self) -> None:
        from camroll.server.services import trash

        # Once soon after start (a server restarted more often than the interval still purges), then
        # every interval.
        wait = min(self.jobs.purge_interval_seconds, 30.0)
        while not self._stop.wait(wait):
            try:
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
    """Queue the jobs of an asset whose row has just been committed.  Never fails the caller: an
    asset that could not be queued now is queued at the next start."""
    queue = ctx.jobs
    if queue is None:
        return
    try:
        queue.enqueue(asset_id)
    except Exception:
        log.exception("could not queue jobs for asset %d; they are queued at the next start", asset_id)
