"""What each replica holds and owes: copies by state, the backlog (count, bytes, oldest waiting) and its
health; the one read ``admin replica status``, ``/metrics``, the storage page and the incidents share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from camroll.server.models import Asset, Blob, Replica, ReplicaCopy
from camroll.server.replicas.states import CopyState
from camroll.server.replicas.urls import shown_options


class ReplicaStatus(BaseModel):
    id: int
    name: str
    url: str
    kind: str
    options: dict[str, Any]
    paused: bool
    copies: dict[str, int]            # by state
    backlog_files: int                # not copied yet (pending, failed, or not even queued yet)
    backlog_bytes: int
    oldest_pending: datetime | None   # when the oldest blob not yet copied became durable here
    failing_since: datetime | None
    failure_kind: str | None
    failure: str | None               # the sentence
    fix: str | None
    last_ok_at: datetime | None
    retry_at: datetime | None


def read(db: Session, names: list[str] | None = None) -> list[ReplicaStatus]:
    q = select(Replica).order_by(Replica.name)
    if names:
        q = q.where(Replica.name.in_(names))
    out: list[ReplicaStatus] = []
    for r in db.scalars(q):
        by_state = {str(s): int(n) for s, n in db.execute(
            select(ReplicaCopy.state, func.count()).where(ReplicaCopy.replica_id == r.id).group_by(ReplicaCopy.state))}
        waiting = ReplicaCopy.state.in_([CopyState.PENDING.value, CopyState.FAILED.value])
        n, size, oldest = db.execute(select(func.count(), func.coalesce(func.sum(ReplicaCopy.size), 0),
                                            func.min(ReplicaCopy.since))
                                     .where(ReplicaCopy.replica_id == r.id, waiting)).one()
        # Blobs the copy loop has not queued yet are owed too.
        has_row = exists().where(ReplicaCopy.replica_id == r.id, ReplicaCopy.sha256 == Blob.sha256)
        needed = exists().where(Asset.sha256 == Blob.sha256)
        n2, size2, oldest2 = db.execute(select(func.count(), func.coalesce(func.sum(Blob.size), 0),
                                               func.min(Blob.created_at)).where(needed, ~has_row)).one()
        olds = [o for o in (oldest, oldest2) if o is not None]
        out.append(ReplicaStatus(
            id=r.id, name=r.name, url=r.url, kind=r.kind, options=shown_options(r.options or {}),
            paused=r.paused_at is not None, copies=by_state, backlog_files=int(n) + int(n2),
            backlog_bytes=int(size) + int(size2), oldest_pending=_utc(min(olds)) if olds else None,
            failing_since=r.failing_since, failure_kind=r.failure_kind, failure=r.failure_problem, fix=r.failure_fix,
            last_ok_at=r.last_ok_at, retry_at=r.retry_at))
    return out


def _utc(value: datetime) -> datetime:
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def copies_of(ctx: Any, sha256: str) -> dict[str, Any]:
    """The asset-details fields: ``verified_at`` (the primary's last proof) and ``copies`` (wire.AssetCopy)."""
    from camroll import wire
    from camroll.server.models import BlobCheck

    with ctx.db() as db:
        check = db.get(BlobCheck, sha256)
        rows = db.execute(select(Replica.name, ReplicaCopy.state, ReplicaCopy.reason, ReplicaCopy.copied_at,
                                 ReplicaCopy.verified_at).join(Replica, Replica.id == ReplicaCopy.replica_id)
                          .where(ReplicaCopy.sha256 == sha256).order_by(Replica.name).limit(100)).all()
    return {"verified_at": check.verified_at if check else None,
            "copies": [wire.AssetCopy(replica=n, state=s, reason=r, copied_at=c, verified_at=v)
                       for n, s, r, c, v in rows]}


def backlogs(ctx: Any) -> list[Any]:
    """``wire.ReplicaBacklog`` of every replica (the storage page's section)."""
    from camroll import wire

    with ctx.db() as db:
        rows = read(db)
    return [wire.ReplicaBacklog(name=r.name, paused=r.paused, backlog_files=r.backlog_files,
                                backlog_bytes=r.backlog_bytes, oldest_pending=r.oldest_pending,
                                failing=f"{r.failure} Fix: {r.fix}"[:4100] if r.failing_since else None)
            for r in rows]
