"""tus uploads in the database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from camroll import wire
from camroll.server.models import Upload, UploadPart, UTCDateTime
from camroll.server.services.partfiles import NOTHING, Part, Recorded

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
# For callers that change an active upload's columns (uploads.resize): bind b_id and the new values.
UPDATE_ACTIVE = _UPDATE_ACTIVE
_UPDATE = update(UPLOADS).where(_U.id == bindparam("b_id"))
# Unfinished uploads of one file from one device that nothing is hashing or storing yet.
_ABANDONED = select(_U.id, _U.metadata, _U.writer_id, _U.lease_until, _U.offset, _U.length, _U.expires_at).where(
    _U.user_id == bindparam("b_user"), _U.device_id == bindparam("b_device"),
    _U.declared_sha256 == bindparam("b_sha"), _U.state == ACTIVE, _U.computed_sha256.is_(None),
)


_ACTIVE_ROWS = select(UPLOADS).where(_U.state == ACTIVE)


def active_rows(conn: Connection) -> list[Any]:
    return list(conn.execute(_ACTIVE_ROWS))


def insert_row(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(_INSERT, values)


def get_row(conn: Connection, upload_id: str) -> Any:
    """The upload's row (columns as attributes; ``meta`` is ``metadata``'s key) or ``None``."""
    return conn.execute(_GET, {"b_id": upload_id}).first()


def abandoned(conn: Connection, user_id: int, device_id: int, sha256: str, path: str,
              now: datetime) -> list[str]:
    """Unfinished uploads of these bytes from this path of this device that nothing is storing yet
    (and no request on any replica is writing to)."""
    rows = conn.execute(_ABANDONED, {"b_user": user_id, "b_device": device_id, "b_sha": sha256})
    return [str(r.id) for r in rows if (r.metadata or {}).get(wire.META_PATH, "") == path
            and not leased(r, now) and not completing(r, now)]


def completing(row: Any, now: datetime) -> bool:
    """Whether the row's every byte is recorded and it has not expired: its completion may be running
    (hashing, copying) or is to be retried from the stored bytes, never superseded or swept meanwhile."""
    return bool(row.offset == row.length and row.expires_at > now)


def expire(conn: Connection, upload_ids: list[str], now: datetime) -> None:
    """Mark active uploads expired (their tombstones answer 410); the caller removes their bytes."""
    conn.execute(update(UPLOADS).where(_U.id.in_(upload_ids), _U.state == ACTIVE)
                 .values(state=EXPIRED, updated_at=now))


def reserved_bytes(conn: Connection, user_id: int, now: datetime, exclude: str = "") -> int:
    """Declared lengths of the user's uploads in flight (all but ``exclude``)."""
    return int(conn.scalar(_RESERVED, {"b_user": user_id, "b_now": now, "b_exclude": exclude}) or 0)


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


_UNWRITTEN = select(_U.id, _U.length, _U.offset).where(
    _U.state == ACTIVE, _U.expires_at > bindparam("b_now", type_=UTCDateTime()), _U.offset < _U.length
)


def unfinished(conn: Connection, now: datetime) -> list[tuple[str, int, int]]:
    """(id, length, offset) of every user's unfinished uploads that may still write to the disk."""
    return [(r.id, int(r.length), int(r.offset)) for r in conn.execute(_UNWRITTEN, {"b_now": now})]


# --- an upload's parts in object storage (migration 0007) ----------------------------------------------
PARTS = cast(Table, UploadPart.__table__)
_P = PARTS.c
_PARTS_OF = select(_P.number, _P.size, _P.etag).where(_P.upload_id == bindparam("b_id")).order_by(_P.number)
_INSERT_PART = insert(PARTS)


def recorded(conn: Connection, row: Any) -> Recorded:
    """The part store state the row (from ``get_row``) and its parts record."""
    if row.multipart_id is None and row.tail_key is None:
        return NOTHING
    parts = tuple(Part(int(n), int(s), str(e)) for n, s, e in conn.execute(_PARTS_OF, {"b_id": row.id}))
    return Recorded(row.multipart_id, parts, row.tail_key, int(row.tail_size or 0))


def advance_parts(conn: Connection, upload_id: str, start: int, new_offset: int, now: datetime,
                  expires_at: datetime, before: Recorded, after: Recorded, writer: str) -> bool:
    """Move the offset from ``start`` to ``new_offset`` and record ``after`` (the parts ``before`` had
    plus new ones, and the new tail), only while ``writer`` holds the upload's lease; False otherwise."""
    res = conn.execute(_UPDATE_ACTIVE_AT.where(_U.writer_id == bindparam("b_writer")), {
        "b_id": upload_id, "b_offset": start, "b_writer": writer, "offset": new_offset, "updated_at": now,
        "expires_at": expires_at, "multipart_id": after.multipart_id, "tail_key": after.tail_key,
        "tail_size": after.tail_size})
    if not res.rowcount:
        return False
    known = {p.number for p in before.parts}
    fresh = [{"upload_id": upload_id, "number": p.number, "size": p.size, "etag": p.etag}
             for p in after.parts if p.number not in known]
    if fresh:
        conn.execute(_INSERT_PART, fresh)
    return True


def delete_parts(conn: Connection, upload_ids: list[str]) -> None:
    conn.execute(delete(PARTS).where(_P.upload_id.in_(upload_ids)))


# --- the writer lease: one request on any replica writes to an upload at a time ---------------------
_TAKE_LEASE = _UPDATE_ACTIVE.where(or_(_U.writer_id.is_(None),
                                       _U.lease_until <= bindparam("b_now", type_=UTCDateTime())))
_MY_LEASE = _UPDATE.where(_U.writer_id == bindparam("b_writer"))


def take_lease(conn: Connection, upload_id: str, writer: str, now: datetime, until: datetime) -> bool:
    """Make ``writer`` the upload's only writer until ``until``; False while another writer's lease
    is live (or the upload is not active)."""
    res = conn.execute(_TAKE_LEASE, {"b_id": upload_id, "b_now": now, "writer_id": writer, "lease_until": until})
    return bool(res.rowcount)


def renew_lease(conn: Connection, upload_id: str, writer: str, until: datetime) -> bool:
    res = conn.execute(_MY_LEASE, {"b_id": upload_id, "b_writer": writer, "lease_until": until})
    return bool(res.rowcount)


def release_lease(conn: Connection, upload_id: str, writer: str) -> None:
    conn.execute(_MY_LEASE, {"b_id": upload_id, "b_writer": writer, "writer_id": None, "lease_until": None})


def leased(row: Any, now: datetime) -> bool:
    """Whether a request (on any replica) holds the row's writer lease now."""
    return row.writer_id is not None and row.lease_until is not None and row.lease_until > now
