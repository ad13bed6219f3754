"""tus uploads in the database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from camroll import wire
from camroll.server.models import Upload, UTCDateTime

ACTIVE = "active"
COMPLETE = "complete"
EXPIRED = "expired"


def get(db: Session, upload_id: str) -> Upload | None:
    return db.get(Upload, upload_id)


def expired_active(db: Session, now: datetime) -> Sequence[Upload]:
    return db.scalars(select(Upload).where(Upload.state == ACTIVE, Upload.expires_at <= now)).all()


def purge_finished(db: Session, before: datetime) -> None:
    """Forget completed and expired uploads whose tombstones nobody will ask about any more."""
    db.execute(delete(Upload).where(Upload.state != ACTIVE, Upload.expires_at <= before))


def active(db: Session) -> Sequence[Upload]:
    return db.scalars(select(Upload).where(Upload.state == ACTIVE)).all()


def all_ids(db: Session) -> Sequence[str]:
    return db.scalars(select(Upload.id)).all()


# --- Core statements for the upload hot path (no ORM objects) ----------------------------------------
# Built once: a prebuilt statement's compiled form and cache key are reused, and the SET columns of
# the updates come from the parameter names (bound parameters in WHERE are prefixed ``b_``).
UPLOADS = cast(Table, Upload.__table__)
_U = UPLOADS.c
_INSERT = insert(UPLOADS)
_GET = select(UPLOADS).where(_U.id == bindparam("b_id"))
# In flight: not expired yet, or hashed (its blob may be in the store already, uncounted by any asset row,
# until the upload finishes or the sweeps remove it).
_RESERVED = select(func.coalesce(func.sum(_U.length), 0)).where(
    _U.user_id == bindparam("b_user"), _U.state == ACTIVE, _U.id != bindparam("b_exclude"),
    or_(_U.expires_at > bindparam("b_now", type_=UTCDateTime()), _U.computed_sha256.is_not(None)),
)
_UPDATE_ACTIVE = update(UPLOADS).where(_U.id == bindparam("b_id"), _U.state == ACTIVE)
_UPDATE_ACTIVE_AT = _UPDATE_ACTIVE.where(_U.offset == bindparam("b_offset"))
_UPDATE = update(UPLOADS).where(_U.id == bindparam("b_id"))
# Unfinished uploads of one file from one device that nothing is hashing or storing yet.
_ABANDONED = select(_U.id, _U.metadata).where(
    _U.user_id == bindparam("b_user"), _U.device_id == bindparam("b_device"),
    _U.declared_sha256 == bindparam("b_sha"), _U.state == ACTIVE, _U.computed_sha256.is_(None),
)


def insert_row(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(_INSERT, values)


def get_row(conn: Connection, upload_id: str) -> Any:
    """The upload's row (columns as attributes; ``meta`` is ``metadata``'s key) or ``None``."""
    return conn.execute(_GET, {"b_id": upload_id}).first()


def abandoned(conn: Connection, user_id: int, device_id: int, sha256: str, path: str) -> list[str]:
    """Unfinished uploads of these bytes from this path of this device that nothing is storing yet."""
    rows = conn.execute(_ABANDONED, {"b_user": user_id, "b_device": device_id, "b_sha": sha256})
    return [str(i) for i, meta in rows if (meta or {}).get(wire.META_PATH, "") == path]


def expire(conn: Connection, upload_ids: list[str], now: datetime) -> None:
    """Mark active uploads expired (their tombstones answer 410); the caller removes their bytes."""
    conn.execute(update(UPLOADS).where(_U.id.in_(upload_ids), _U.state == ACTIVE)
                 .values(state=EXPIRED, updated_at=now))


def reserved_bytes(conn: Connection, user_id: int, now: datetime, exclude: str = "") -> int:
    """Declared lengths of the user's uploads in flight (all but ``exclude``)."""
    return int(conn.scalar(_RESERVED, {"b_user": user_id, "b_now": now, "b_exclude": exclude}) or 0)


def hashed_shas(db: Session) -> set[str]:
    """Hashes of active uploads whose bytes are on their way into the blob store, or there already."""
    return set(db.scalars(select(Upload.computed_sha256).where(Upload.state == ACTIVE,
                                                               Upload.computed_sha256.is_not(None))))


def advance(conn: Connection, upload_id: str, start: int, new_offset: int, now: datetime,
                 expires_at: datetime) -> bool:
    """Move the offset from ``start`` to ``new_offset``; False if someone else moved it first."""
    res = conn.execute(_UPDATE_ACTIVE_AT, {"b_id": upload_id, "b_offset": start, "offset": new_offset,
                                           "updated_at": now, "expires_at": expires_at})
    return bool(res.rowcount)


def mark_hashed(conn: Connection, upload_id: str, digest: str, mime: str | None, length: int,
                from_offset: int | None, now: datetime, expires_at: datetime) -> bool:
    """Record the server-computed hash (before the blob store gets the bytes) and the full offset.

    With ``from_offset`` the row must still be at that offset (the request that wrote the last bytes
    moves it straight to ``length``); False if the row changed meanwhile."""
    values: dict[str, Any] = {"b_id": upload_id, "computed_sha256": digest, "mime": mime, "offset": length,
                              "updated_at": now, "expires_at": expires_at}
    if from_offset is None:
        res = conn.execute(_UPDATE_ACTIVE, values)
    else:
        res = conn.execute(_UPDATE_ACTIVE_AT, {**values, "b_offset": from_offset})
    return bool(res.rowcount)


def mark_complete(conn: Connection, upload_id: str, asset_id: int, length: int, now: datetime,
                  expires_at: datetime) -> None:
    conn.execute(_UPDATE, {"b_id": upload_id, "state": COMPLETE, "asset_id": asset_id, "offset": length,
                           "updated_at": now, "expires_at": expires_at})
