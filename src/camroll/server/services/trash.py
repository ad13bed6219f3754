"""Trash and restore, and the purge that deletes what has been in the trash for longer than the
retention (30 days by default).

A trashed asset still counts against the quota (its bytes are still stored) until it is purged.  The
purge deletes the asset rows first, then each blob no other asset row (of any user) or in-flight
upload still needs, then its thumbnails: a crash in between leaves an unreferenced blob, which the
next purge finds again, never an asset without its bytes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from camroll import wire
from camroll.server.context import Context
from camroll.server.jobs.config import DEFAULT_TRASH_DAYS
from camroll.server.repositories import assets as repo
from camroll.server.repositories import locks
from camroll.server.services.auth import Principal

log = logging.getLogger("camroll.server.trash")

_BATCH = 500


def _days(days: float | None) -> float:
    if days is not None:
        return days
    from camroll.server.jobs.config import JobSettings

    return JobSettings.from_env().trash_days


def trash(ctx: Context, who: Principal, ids: list[int], *, days: float | None = None) -> wire.TrashResult:
    with ctx.db() as db:
        changed = repo.set_trashed(db, who.user_id, ids, ctx.clock.now())
    return wire.TrashResult(changed=changed, purge_after_days=round(_days(days)))


def restore(ctx: Context, who: Principal, ids: list[int], *, days: float | None = None) -> wire.TrashResult:
    with ctx.db() as db:
        changed = repo.set_trashed(db, who.user_id, ids, None)
    return wire.TrashResult(changed=changed, purge_after_days=round(_days(days)))


def purge(ctx: Context, *, days: float = DEFAULT_TRASH_DAYS, now: datetime | None = None) -> int:
    """Delete assets trashed more than ``days`` before ``now``; returns how many were deleted."""
    from camroll.server.services.media import thumb_store

    cutoff = (now or ctx.clock.now()) - timedelta(days=days)
    deleted = 0
    candidates: set[str] = set()
    while True:
        with ctx.db() as db:
            batch = repo.trashed_before(db, cutoff, _BATCH)
            if not batch:
                break
            for a in batch:
                candidates.add(a.sha256)
                db.delete(a)
            deleted += len(batch)
    with ctx.db() as db:
        # Blobs left behind by a purge that crashed after deleting their last asset row.
        candidates.update(repo.unreferenced_blobs(db, _BATCH))
    thumbs = thumb_store(ctx)
    for sha in sorted(candidates):
        # The check and the delete share one transaction under the blob's lock (on SQLite, the write
        # lock): an upload of the same bytes records them (mark_hashed, under the same lock) either
        # before the check, which then keeps the blob, or after the delete, and then stores them anew.
        with ctx.db() as db:
            locks.blob(db.connection(), sha)
            if repo.sha_in_use(db, sha):
                continue
            repo.delete_blob_row(db, sha)
            ctx.blobs.delete(sha)
        thumbs.delete(sha)
    if deleted:
        log.info("purged %d assets trashed before %s", deleted, cutoff.isoformat())
    return deleted

