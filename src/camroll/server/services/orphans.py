"""The sweep for blobs nothing points to: no asset row of any user, no upload on its way in.

Such a blob is left by an upload that failed after its bytes were stored (its asset row never
committed) or by a crash in a purge; it takes disk space no quota counts.  The sweep runs at start
and periodically in ``camroll serve``.

Why it cannot remove a blob that is about to get its asset row: an upload commits the computed hash
on its row (``uploads.complete``: ``mark_hashed``) *before* ``BlobStore.put_file``, and the row stays
active until the asset row commits.  The sweep lists the store first and reads the database after,
so a blob it lists was put after its upload row said so; and the final check and the delete share
one write transaction, so on SQLite (one writer) no upload can record the same hash in between.  The
grace age also spares any blob written in the last hour, whatever wrote it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from camroll.server.context import Context
from camroll.server.repositories import assets as asset_repo
from camroll.server.repositories import uploads as upload_repo

log = logging.getLogger("camroll.server.orphans")

GRACE_SECONDS = 3600.0


def sweep(ctx: Context, *, grace_seconds: float = GRACE_SECONDS, clock: Callable[[], float] = time.time) -> int:
    """Delete blobs older than ``grace_seconds`` that nothing points to; returns how many."""
    from camroll.server.services.media import thumb_store

    cutoff = clock() - grace_seconds
    old = [b.sha256 for b in ctx.blobs.list() if b.modified is None or b.modified < cutoff]
    if not old:
        return 0
    with ctx.db() as db:
        needed = asset_repo.all_shas(db) | upload_repo.hashed_shas(db)
    removed = 0
    thumbs = thumb_store(ctx)
    for sha in old:
        if sha in needed:
            continue
        try:
            with ctx.db() as db:
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
    if removed:
        log.info("removed %d unreferenced blobs", removed)
    return removed
