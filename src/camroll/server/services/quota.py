"""Storage quotas: what a user has stored plus what their unfinished uploads have reserved."""

from __future__ import annotations

from sqlalchemy import Connection

from camroll.server.models import utcnow
from camroll.server.problems import ProblemError
from camroll.server.repositories import locks, uploads, users
from camroll.units import format_size

FIX = "Free space or ask the admin to raise your quota."


def ensure_fits(conn: Connection, user_id: int, new_bytes: int, *, completing: str = "") -> None:
    """Raise 413 ``quota_exceeded`` if ``new_bytes`` more would take the user over their quota.

    The user's other uploads in flight count too, at creation and when ``completing`` (the id of the
    upload whose bytes are about to be stored): each was admitted for its declared length, and a hashed
    one may already have its blob in the store before any asset row counts it.

    The caller inserts (or marks hashed) the upload in the same transaction: the user's quota lock
    taken here holds until it commits, so two replicas admitting uploads for one user at once decide
    one after the other, the second counting the first's reservation."""
    quota_bytes = users.quota_of(conn, user_id)
    if quota_bytes is None:
        return
    locks.quota(conn, user_id)
    used = users.used_bytes_core(conn, user_id)
    reserved = uploads.reserved_bytes(conn, user_id, utcnow(), completing)
    if used + reserved + new_bytes <= quota_bytes:
        return
    pending = f" (plus {format_size(reserved)} reserved by unfinished uploads)" if reserved else ""
    raise ProblemError(
        413, "quota_exceeded",
        f"Storage full: {format_size(used)} of {format_size(quota_bytes)} used{pending}; "
        f"this {format_size(new_bytes)} file does not fit.",
        FIX,
    )
