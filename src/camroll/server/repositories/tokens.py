"""Session and device tokens (stored as hashes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, select, update
from sqlalchemy.orm import Session

from camroll.server.models import Device, SessionToken, User


def session_by_hash(db: Session, token_hash: str) -> SessionToken | None:
    return db.scalars(select(SessionToken).where(SessionToken.token_hash == token_hash)).first()


def device_by_hash(db: Session, token_hash: str) -> Device | None:
    return db.scalars(select(Device).where(Device.token_hash == token_hash)).first()


def devices_of(db: Session, user_id: int) -> Sequence[Device]:
    return db.scalars(select(Device).where(Device.user_id == user_id).order_by(Device.id)).all()


def delete_expired_sessions(db: Session, now: datetime) -> None:
    db.execute(delete(SessionToken).where(SessionToken.expires_at <= now))


# --- Core statements for the per-request token check (no ORM objects; built once) -------------------
_D = cast(Table, Device.__table__)
_S = cast(Table, SessionToken.__table__)
_U = cast(Table, User.__table__)

_DEVICE_PRINCIPAL = (
    select(_D.c.id, _D.c.user_id, _D.c.name, _D.c.revoked_at, _D.c.last_seen_at, _U.c.username, _U.c.is_admin)
    .select_from(_D.outerjoin(_U, _U.c.id == _D.c.user_id))
    .where(_D.c.token_hash == bindparam("token_hash"))
)
_SESSION_PRINCIPAL = (
    select(_S.c.user_id, _S.c.expires_at, _U.c.username, _U.c.is_admin)
    .select_from(_S.outerjoin(_U, _U.c.id == _S.c.user_id))
    .where(_S.c.token_hash == bindparam("token_hash"))
)
_TOUCH = update(_D).where(_D.c.id == bindparam("b_id"))


def device_with_user(conn: Connection, token_hash: str) -> Any:
    """The device of ``token_hash`` with its user's name and admin flag (``None`` if the user is gone)."""
    return conn.execute(_DEVICE_PRINCIPAL, {"token_hash": token_hash}).first()


def session_with_user(conn: Connection, token_hash: str) -> Any:
    return conn.execute(_SESSION_PRINCIPAL, {"token_hash": token_hash}).first()


def touch_device(conn: Connection, device_id: int, now: datetime) -> None:
    conn.execute(_TOUCH, {"b_id": device_id, "last_seen_at": now})
