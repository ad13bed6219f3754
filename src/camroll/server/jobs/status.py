"""What ``camroll admin jobs`` shows: the queue's depth from huey, done/waiting/failed from the
asset rows (the truth about the work), and the latest failures with their reasons."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select

from camroll.server.context import Context
from camroll.server.jobs.config import JobSettings
from camroll.server.jobs.queue import make_huey
from camroll.server.leases import asset_claim_pattern
from camroll.server.models import Lease
from camroll.server.repositories import assets as repo


class Failure(BaseModel):
    asset_id: int
    user: str
    filename: str
    reason: str
    at: datetime | None


class JobsReport(BaseModel):
    backend: str
    queued: int  # tasks waiting in the queue
    scheduled: int  # retries waiting for their delay
    running: int  # assets a worker (of any replica or 'camroll worker') has claimed and works on now
    done: int  # assets with metadata and thumbnails
    waiting: int  # assets still missing either, not failed
    failed: int  # assets whose last job failed (reason on the asset)
    recent_failures: list[Failure]
    # Set when the disk holding the data dir is full: the waiting jobs wait for space, not for a fix
    # to their files (they are tried again by themselves once space is freed).
    disk_full: str | None = None


def report(ctx: Context, *, limit: int = 10) -> JobsReport:
    jobs = JobSettings.from_env()
    huey = make_huey(ctx.settings, jobs)
    with ctx.db() as db:
        counts = repo.job_counts(db)
        running = db.scalar(select(func.count()).select_from(Lease).where(
            Lease.name.like(asset_claim_pattern()), Lease.expires_at >= ctx.clock.now())) or 0
        failures = [Failure(asset_id=i, user=u, filename=f, reason=r or "", at=at)
                    for i, u, f, r, at in repo.recent_failures(db, limit)]
    return JobsReport(backend="redis" if jobs.redis_url else "sqlite", queued=huey.pending_count(),
                      scheduled=huey.scheduled_count(), running=running, recent_failures=failures,
                      disk_full=_disk_full(ctx), **counts)


def _disk_full(ctx: Context) -> str | None:
    from camroll.server import diskspace
    from camroll.server.jobs.config import thumbs_dir

    thumbs = thumbs_dir(ctx.settings.data_dir)
    try:
        state = diskspace.tightest([ctx.settings.data_dir, *([thumbs] if thumbs.is_dir() else [])],
                                   ctx.settings.data_dir)
    except OSError:
        return None
    if not state.full:
        return None
    return f"The server's disk is full: {state.sentence()}. {diskspace.FIX}"


def retry_failed(ctx: Context) -> int:
    """Clear the recorded failures and queue those assets again; a running server's workers pick them
    up at once (a stopped server queues them at its next start)."""
    from camroll.server.jobs.queue import JobQueue

    queue = JobQueue(ctx)
    with ctx.db() as db:
        ids = repo.clear_failures(db)
    for asset_id in ids:
        queue.enqueue(asset_id)
    return len(ids)
