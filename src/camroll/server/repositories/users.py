"""Users and what they store."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from camroll.server.models import Asset, User


def by_name(db: Session, username: str) -> User | None:
    return db.scalars(select(User).where(User.username == username)).first()


def by_id(db: Session, user_id: int) -> User | None:
    return db.get(User, user_id)


def all_users(db: Session) -> Sequence[User]:
    return db.scalars(select(User).order_by(User.id)).all()


def used_bytes(db: Session, user_id: int) -> int:
    return int(db.scalar(select(func.coalesce(func.sum(Asset.size), 0)).where(Asset.user_id == user_id)) or 0)
