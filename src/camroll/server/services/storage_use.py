"""What a user stores: used bytes against their quota, by kind, and how much of it is in the trash."""

from __future__ import annotations

from typing import Literal

from camroll import wire
from camroll.server.context import Context
from camroll.server.repositories import assets as repo
from camroll.server.repositories import users
from camroll.server.services.auth import Principal

KINDS: tuple[Literal["image", "video", "other"], ...] = ("image", "video", "other")


def info(ctx: Context, who: Principal) -> wire.StorageInfo:
    with ctx.db() as db:
        by_kind, trashed = repo.usage(db, who.user_id)
        user = users.by_id(db, who.user_id)
        quota = user.quota_bytes if user is not None else None
    uses = [wire.StorageUse(kind=k, files=by_kind.get(k, (0, 0))[0],
                            bytes=by_kind.get(k, (0, 0))[1]) for k in KINDS]
    # Trashed bytes are still stored, so they count until the purge deletes them (as the quota does).
    used = sum(u.bytes for u in uses) + trashed
    return wire.StorageInfo(used_bytes=used, quota_bytes=quota, by_kind=uses, trashed_bytes=trashed)
