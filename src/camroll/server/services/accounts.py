"""Creating and listing users (the admin CLI) and describing them (the API)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from camroll import wire
from camroll.server.context import Context
from camroll.server.models import User
from camroll.server.repositories import users
from camroll.server.security import hash_password


class UserExists(Exception):
    pass


def add_user(ctx: Context, username: str, password: str, *, is_admin: bool = False,
             quota_bytes: int | None = None) -> User:
    pw_hash = hash_password(password)
    try:
        with ctx.db() as db:
            if users.by_name(db, username) is not None:
                raise UserExists(username)
            user = User(username=username, password_hash=pw_hash, is_admin=is_admin, quota_bytes=quota_bytes)
            db.add(user)
            db.flush()
            return user
    except IntegrityError:
        # Lost a race with another process adding the same name.
        raise UserExists(username) from None


def update_user(ctx: Context, username: str, *, set_quota: bool = False, quota_bytes: int | None = None,
                is_admin: bool | None = None) -> wire.UserInfo | None:
    """Change a user's quota (when ``set_quota``; ``None`` = unlimited) and/or admin flag; None if there
    is no such user.
    Lowering a quota below what is used keeps every stored file: only new uploads are refused."""
    with ctx.db() as db:
        user = users.by_name(db, username)
        if user is None:
            return None
        if set_quota:
            user.quota_bytes = quota_bytes
        if is_admin is not None:
            user.is_admin = is_admin
        db.flush()
        uid = user.id
    return user_info(ctx, uid)


def user_info(ctx: Context, user_id: int) -> wire.UserInfo:
    with ctx.db() as db:
        user = users.by_id(db, user_id)
        assert user is not None
        return wire.UserInfo(id=user.id, username=user.username, is_admin=user.is_admin,
                             quota_bytes=user.quota_bytes, used_bytes=users.used_bytes(db, user.id))


def list_users(ctx: Context) -> list[wire.UserInfo]:
    with ctx.db() as db:
        return [
            wire.UserInfo(id=u.id, username=u.username, is_admin=u.is_admin, quota_bytes=u.quota_bytes,
                          used_bytes=users.used_bytes(db, u.id))
            for u in users.all_users(db)
        ]
