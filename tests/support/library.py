"""Assets put straight into an in-process server's store and database (a blob and its rows, as an upload
would leave them, jobs not run yet), for tests of what comes after the upload: jobs, listings, purges."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from camroll.server.context import Context
from camroll.server.repositories import assets as repo


def stored_assets(ctx: Context, user_id: int, files: Iterable[bytes], name: str = "IMG_{i}.jpg") -> list[int]:
    """One JPEG asset of ``user_id`` per item of ``files``, named ``name.format(i=index)``; their ids."""
    ids = []
    for i, data in enumerate(files):
        sha = hashlib.sha256(data).hexdigest()
        src = ctx.settings.data_dir / f"stored-{i}-{sha[:8]}.jpg"
        src.write_bytes(data)
        ctx.blobs.put_file(sha, src)
        with ctx.conn() as conn:
            repo.ensure_blob(conn, sha, len(data))
            ids.append(repo.get_or_create(conn, user_id, sha, len(data), "image/jpeg", name.format(i=i)))
    return ids
