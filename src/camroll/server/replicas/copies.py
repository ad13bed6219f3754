"""Copying blobs to one replica: find what is missing (``discover``), copy it (``copy_round``), and remove
copies nothing needs any more (``forget_unneeded``).

Rules:

* Only what is durable and verified here is copied: a ``blobs`` row exists only once its bytes are stored
  and their SHA-256 verified, and the copy needs an asset (of any user) pointing at it.  The bytes are
  hashed again as they are read for the copy, so a blob that rotted on the primary is never spread
  (its row is ``failed/primary_corrupt`` until scrub repairs it).
* A copy is atomic on every target (``target.py``): a replica that goes away mid-copy keeps nothing under
  the key, the row stays pending, and the next round copies it again from the start; what was copied
  before is never copied again.
* A copy on a replica is deleted only once no asset of any user and no blob row needs its bytes: after
  the trash purge (or the orphan sweep) removed the blob here.
* One process at a time works on a replica: its rounds run under the lease ``replica-copy:ID``
  (server/leases.py), renewed between copies, so several server replicas and workers never copy one
  thing twice at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, func, insert, literal, or_, select, update

from camroll.server.context import Context
from camroll.server.models import Asset, Blob, Replica, ReplicaCopy
from camroll.server.replicas.settings import ReplicaSettings
from camroll.server.replicas.states import CopyState, Reason, reason_of
from camroll.server.replicas.target import ReplicaTarget
from camroll.server.storage.base import BlobNotFound, StorageFailure

log = logging.getLogger("camroll.server.replicas")

BATCH = 200
_HASH_BLOCK = 4 * 2**20
Clock = Callable[[], datetime]


def copy_lease(replica_id: int) -> str:
    return f"replica-copy:{replica_id}"


def discover(ctx: Context, replica_id: int) -> int:
    """Add a pending row for every blob an asset holds that has no row on this replica; returns how many."""
    needed = exists().where(Asset.sha256 == Blob.sha256)
    has_row = exists().where(ReplicaCopy.replica_id == replica_id, ReplicaCopy.sha256 == Blob.sha256)
    rows = select(literal(replica_id), Blob.sha256, Blob.size, literal(CopyState.PENDING.value), Blob.created_at,
                  literal(0)).where(needed, ~has_row)
    stmt = insert(ReplicaCopy).from_select(["replica_id", "sha256", "size", "state", "since", "attempts"], rows)
    with ctx.conn() as conn:
        return int(conn.execute(stmt).rowcount or 0)


def hash_file(path: object, pace: Callable[[int], None] | None = None) -> tuple[str, int]:
    """SHA-256 and size of a local file (``pace`` is told each block's size: the scrub's throttle)."""
    h = hashlib.sha256()
    n = 0
    with open(str(path), "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
            n += len(block)
            if pace is not None:
                pace(len(block))
    return h.hexdigest(), n


@dataclass
class RoundResult:
    copied: int = 0
    verified: int = 0
    bytes: int = 0
    failed: int = 0
    primary_bad: int = 0
    failure: StorageFailure | None = None
    skipped: str | None = None  # why the round did nothing (paused, backing off)
    shas: list[str] = field(default_factory=list)


def _backoff(settings: ReplicaSettings, failures: int) -> float:
    return float(min(settings.retry_max_seconds, settings.retry_min_seconds * 2 ** max(0, failures - 1)))


def record_failure(ctx: Context, replica_id: int, exc: StorageFailure, now: datetime,
                   settings: ReplicaSettings) -> None:
    """The replica failed: remember the sentence and the fix, and back the whole replica off."""
    with ctx.db() as db:
        r = db.get(Replica, replica_id)
        if r is None:
            return
        r.failures = (r.failures or 0) + 1
        r.failing_since = r.failing_since or now
        r.failure_kind = reason_of(exc).value
        r.failure_problem = exc.problem[:2000]
        r.failure_fix = exc.fix[:2000]
        r.retry_at = now + timedelta(seconds=_backoff(settings, r.failures))


def record_ok(ctx: Context, replica_id: int, now: datetime) -> None:
    with ctx.db() as db:
        r = db.get(Replica, replica_id)
        if r is None:
            return
        r.last_ok_at = now
        if r.failing_since is not None or r.failures:
            log.info("replica %s works again", r.name)
        r.failures, r.failing_since, r.failure_kind, r.failure_problem, r.failure_fix, r.retry_at = \
            0, None, None, None, None, None


def _set_row(ctx: Context, replica_id: int, sha256: str, **values: object) -> None:
    with ctx.conn() as conn:
        conn.execute(update(ReplicaCopy).where(ReplicaCopy.replica_id == replica_id, ReplicaCopy.sha256 == sha256)
                     .values(**values))


def copy_one(ctx: Context, target: ReplicaTarget, replica_id: int, sha256: str, size: int, now: datetime) -> CopyState:
    """Copy blob ``sha256`` from the primary to ``target`` and record the outcome; raises ``StorageFailure``
    when the replica failed (the caller backs the replica off).  A primary that lost the blob or whose
    bytes no longer hash right is recorded on the row (nothing is copied) and returns FAILED."""
    try:
        with ctx.blobs.local_file(sha256) as path:
            digest, n = hash_file(path)
            if digest != sha256 or n != size:
                log.error("blob %s on the primary store hashes to %s (%d of %d bytes): not copied; scrub repairs it",
                          sha256, digest, n, size)
                _set_row(ctx, replica_id, sha256, state=CopyState.FAILED.value, reason=Reason.PRIMARY_CORRUPT.value,
                         detail="The primary store's copy no longer hashes right; run 'camroll admin scrub' to "
                                "repair it from another replica.", retry_at=now + timedelta(hours=1))
                return CopyState.FAILED
            target.put(sha256, path)
    except BlobNotFound:
        _set_row(ctx, replica_id, sha256, state=CopyState.FAILED.value, reason=Reason.PRIMARY_MISSING.value,
                 detail="The primary store has lost this blob; run 'camroll admin scrub' to repair it from another "
                        "replica.", retry_at=now + timedelta(hours=1))
        return CopyState.FAILED
    stored = target.stat(sha256)
    if stored.size != size:
        raise StorageFailure(f"{target.where} kept {stored.size} bytes of blob {sha256} where {size} were sent.",
                             "The replica may be full or faulty; check it.")
    provider = target.checksum(sha256)
    if provider is not None and provider != sha256:
        _set_row(ctx, replica_id, sha256, state=CopyState.FAILED.value, reason=Reason.COPY_CORRUPT.value,
                 detail=f"{target.where} reports another SHA-256 ({provider}) for the bytes it kept.",
                 retry_at=now + timedelta(minutes=5))
        return CopyState.FAILED
    state = CopyState.VERIFIED if provider == sha256 else CopyState.COPIED
    _set_row(ctx, replica_id, sha256, state=state.value, reason=None, detail=None, retry_at=None, copied_at=now,
             verified_at=now if state is CopyState.VERIFIED else None)
    return state


def due_rows(ctx: Context, replica_id: int, now: datetime, limit: int = BATCH) -> list[tuple[str, int]]:
    """Blobs to copy now, oldest first: pending ones, and failed ones whose retry time has come."""
    waiting = or_(ReplicaCopy.state == CopyState.PENDING.value,
                  and_(ReplicaCopy.state == CopyState.FAILED.value,
                       or_(ReplicaCopy.retry_at.is_(None), ReplicaCopy.retry_at <= now)))
    with ctx.db() as db:
        rows = db.execute(select(ReplicaCopy.sha256, ReplicaCopy.size)
                          .where(ReplicaCopy.replica_id == replica_id, waiting)
                          .order_by(ReplicaCopy.since, ReplicaCopy.sha256).limit(limit)).all()
    return [(str(s), int(n)) for s, n in rows]


def copy_round(ctx: Context, replica_id: int, target: ReplicaTarget, *, settings: ReplicaSettings,
               clock: Clock, renew: Callable[[], bool] = lambda: True,
               deadline: float | None = None) -> RoundResult:
    """Copy what is due to one replica until nothing is, the deadline (monotonic) passes, the lease is
    lost, the replica is paused or removed, or the replica fails."""
    result = RoundResult()
    now = clock()
    with ctx.db() as db:
        r = db.get(Replica, replica_id)
        if r is None:
            result.skipped = "removed"
            return result
        if r.paused_at is not None:
            result.skipped = "paused"
            return result
        if r.retry_at is not None and r.retry_at > now:
            result.skipped = "backing_off"
            return result
    while True:
        rows = due_rows(ctx, replica_id, clock())
        if not rows:
            return result
        for sha256, size in rows:
            if deadline is not None and time.monotonic() > deadline:
                return result
            if not renew() or _stopped(ctx, replica_id):
                result.skipped = "stopped"
                return result
            now = clock()
            with ctx.conn() as conn:
                conn.execute(update(ReplicaCopy).where(ReplicaCopy.replica_id == replica_id,
                                                       ReplicaCopy.sha256 == sha256)
                             .values(attempts=ReplicaCopy.attempts + 1))
            try:
                state = copy_one(ctx, target, replica_id, sha256, size, now)
            except StorageFailure as exc:
                log.warning("replica %d: copying %s failed: %s", replica_id, sha256, exc)
                _set_row(ctx, replica_id, sha256, state=CopyState.FAILED.value, reason=reason_of(exc).value,
                         detail=f"{exc.problem} {exc.fix}"[:2000], retry_at=None)
                record_failure(ctx, replica_id, exc, now, settings)
                result.failed += 1
                result.failure = exc
                return result
            if state is CopyState.FAILED:
                result.primary_bad += 1
                continue
            result.copied += 1
            result.bytes += size
            result.shas.append(sha256)
            if state is CopyState.VERIFIED:
                result.verified += 1
            if result.copied == 1:
                record_ok(ctx, replica_id, now)


def _stopped(ctx: Context, replica_id: int) -> bool:
    with ctx.db() as db:
        r = db.get(Replica, replica_id)
        return r is None or r.paused_at is not None


def unneeded(ctx: Context, replica_id: int, limit: int = BATCH) -> list[str]:
    """Copies whose blob is gone here and that no asset of any user holds: deletable on the replica."""
    held = exists().where(Asset.sha256 == ReplicaCopy.sha256)
    blob = exists().where(Blob.sha256 == ReplicaCopy.sha256)
    with ctx.db() as db:
        return list(db.scalars(select(ReplicaCopy.sha256).where(ReplicaCopy.replica_id == replica_id, ~held, ~blob)
                               .limit(limit)))


def forget_unneeded(ctx: Context, replica_id: int, target: ReplicaTarget) -> int:
    """Delete the unneeded copies on the replica, then their rows; returns how many.  Each blob is checked
    again just before its delete, in the transaction that removes the row."""
    n = 0
    for sha256 in unneeded(ctx, replica_id):
        with ctx.db() as db:
            if db.scalar(select(func.count()).select_from(Asset).where(Asset.sha256 == sha256)) or \
                    db.get(Blob, sha256) is not None:
                continue
            target.delete(sha256)
            db.execute(delete(ReplicaCopy).where(ReplicaCopy.replica_id == replica_id, ReplicaCopy.sha256 == sha256))
        n += 1
    return n


def mark_pending(ctx: Context, replica_id: int, sha256: str, reason: Reason, detail: str) -> None:
    """Copy this blob again (scrub found the replica's copy bad)."""
    with contextlib.suppress(Exception):
        _set_row(ctx, replica_id, sha256, state=CopyState.PENDING.value, reason=reason.value, detail=detail[:2000],
                 retry_at=None, verified_at=None)
