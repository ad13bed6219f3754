"""The sweep for blobs nothing points to: no asset row of any user, no upload on its way in.

Such a blob is left by an upload that failed after its bytes were stored (its asset row never
committed) or by a crash in a purge; it takes disk space no quota counts.  The sweep runs at start
and periodically in ``camroll serve``.

Why it cannot remove a blob that is about to get its asset row: an upload commits the computed hash
on its row (``uploads.complete``: ``mark_hashed``) *before* ``BlobStore.put_file``, and the row stays
active until the asset row commits.  The sweep lists the store first and reads the database after,
so a blob it lists was put after its upload row said so; and the final check and the delete share
one transaction under the blob's lock (``repositories.locks.blob``), which ``mark_hashed``'s transaction
takes too (on SQLite the single writer is that lock), so no upload can record the same hash in
between.  The grace age also spares any blob written in the last hour, whatever wrote it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from camroll.server.context import Context
from camroll.server.repositories import assets as asset_repo
from camroll.server.repositories import locks
from camroll.server.storage.base import Housekeeping
from camroll.server.storage.thumbs import ThumbStore

log = logging.getLogger("camroll.server.orphans")

GRACE_SECONDS = 3600.0
# Blobs looked up in the database at a time: memory stays flat however large the store (a 10-million-blob
# bucket once meant two sets of every hash in memory, 3-4 GB), and each batch is still read from the
# database after the store listed it, which is the order the reasoning above needs.
BATCH = 1000


def sweep(ctx: Context, *, grace_seconds: float = GRACE_SECONDS, clock: Callable[[], float] = time.time,
          batch: int = BATCH) -> int:
    """Delete blobs older than ``grace_seconds`` that nothing points to; returns how many."""
    from camroll.server.services.media import thumb_store

    cutoff = clock() - grace_seconds
    thumbs = thumb_store(ctx)
    removed = 0
    old: list[str] = []
    for b in ctx.blobs.list():
        if b.modified is None or b.modified < cutoff:
            old.append(b.sha256)
            if len(old) >= batch:
                removed += _sweep_batch(ctx, old, thumbs)
                old = []
    if old:
        removed += _sweep_batch(ctx, old, thumbs)
    if isinstance(ctx.blobs, Housekeeping):
        # The store's own leftovers (a pack whose index commit a crash cut off), by the same grace age.
        leftovers = ctx.blobs.sweep_leftovers(cutoff)
        if leftovers:
            log.info("removed %d leftover files of the blob store", leftovers)
    if removed:
        log.info("removed %d unreferenced blobs", removed)
    return removed


def _sweep_batch(ctx: Context, old: list[str], thumbs: ThumbStore) -> int:
    with ctx.db() as db:
        needed = asset_repo.shas_in_use(db, old)
    removed = 0
    for sha in old:
        if sha in needed:
            continue
        try:
            with ctx.db() as db:
                locks.blob(db.connection(), sha)
                if asset_repo.sha_in_use(db, sha):
                    continue
                asset_repo.delete_blob_row(db, sha)
                ctx.blobs.delete(sha)
            thumbs.delete(sha)
        except Exception:
            # One blob that cannot be removed (permissions, a busy database) must not stop the rest.
            log.exception("could not remove unreferenced blob %s", sha)
            continue
        removed += 1
        log.warning("removed blob %s: no asset or upload points to it", sha)
    return removed
