"""tus uploads in the database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from camroll.server.models import Upload

ACTIVE = "active"
COMPLETE = "complete"
EXPIRED = "expired"


def get(db: Session, upload_id: str) -> Upload | None:
    return db.get(Upload, upload_id)


def reserved_bytes(db: Session, user_id: int, now: datetime) -> int:
    """Bytes promised to the user's unfinished, unexpired uploads."""
    q = select(func.coalesce(func.sum(Upload.length), 0)).where(
        Upload.user_id == user_id, Upload.state == ACTIVE, Upload.expires_at > now
    )
    return int(db.scalar(q) or 0)


def advance(db: Session, upload_id: str, start: int, new_offset: int, now: datetime,
            expires_at: datetime) -> bool:
    """Move the offset from ``start`` to ``new_offset``; False if someone else moved it first."""
    res = db.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.offset == start, Upload.state == ACTIVE)
        .values(offset=new_offset, updated_at=now, expires_at=expires_at)
    )
    return bool(getattr(res, "rowcount", 0))


def expired_active(db: Session, now: datetime) -> Sequence[Upload]:
    return db.scalars(select(Upload).where(Upload.state == ACTIVE, Upload.expires_at <= now)).all()


def purge_finished(db: Session, before: datetime) -> None:
    """Forget completed and expired uploads whose tombstones nobody will ask about any more."""
    db.execute(delete(Upload).where(Upload.state != ACTIVE, Upload.expires_at <= before))


def active(db: Session) -> Sequence[Upload]:
    return db.scalars(select(Upload).where(Upload.state == ACTIVE)).all()


def all_ids(db: Session) -> Sequence[str]:
    return db.scalars(select(Upload.id)).all()
