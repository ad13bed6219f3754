"""Session and device tokens (stored as hashes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from camroll.server.models import Device, SessionToken


def session_by_hash(db: Session, token_hash: str) -> SessionToken | None:
    return db.scalars(select(SessionToken).where(SessionToken.token_hash == token_hash)).first()


def device_by_hash(db: Session, token_hash: str) -> Device | None:
    return db.scalars(select(Device).where(Device.token_hash == token_hash)).first()


def devices_of(db: Session, user_id: int) -> Sequence[Device]:
    return db.scalars(select(Device).where(Device.user_id == user_id).order_by(Device.id)).all()


def touch_device(db: Session, device_id: int, now: datetime) -> None:
    db.execute(update(Device).where(Device.id == device_id).values(last_seen_at=now))


def delete_expired_sessions(db: Session, now: datetime) -> None:
    db.execute(delete(SessionToken).where(SessionToken.expires_at <= now))
