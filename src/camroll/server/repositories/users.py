"""Users and what they store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Connection, Table, bindparam, func, select
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


_USERS = cast(Table, User.__table__)
_ASSETS = cast(Table, Asset.__table__)
_QUOTA = select(_USERS.c.quota_bytes).where(_USERS.c.id == bindparam("b_user"))
_USED = select(func.coalesce(func.sum(_ASSETS.c.size), 0)).where(_ASSETS.c.user_id == bindparam("b_user"))


def quota_of(conn: Connection, user_id: int) -> int | None:
    """The user's quota in bytes; ``None`` for no quota or no such user."""
    found = conn.scalar(_QUOTA, {"b_user": user_id})
    return None if found is None else int(found)


def used_bytes_core(conn: Connection, user_id: int) -> int:
    return int(conn.scalar(_USED, {"b_user": user_id}) or 0)


def used_by_user(db: Session) -> dict[int, int]:
    """Stored bytes of every user that stores anything."""
    rows = db.execute(select(Asset.user_id, func.sum(Asset.size)).group_by(Asset.user_id))
    return {int(user_id): int(total or 0) for user_id, total in rows}
