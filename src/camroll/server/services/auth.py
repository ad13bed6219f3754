"""Logging in, bearer tokens and devices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from camroll import wire
from camroll.server.context import Context
from camroll.server.models import Device, SessionToken, utcnow
from camroll.server.problems import ProblemError
from camroll.server.repositories import tokens, users
from camroll.server.security import (
    DEVICE_PREFIX,
    SESSION_PREFIX,
    dummy_hash,
    new_token,
    token_hash,
    verify_password,
)
from camroll.server.services.accounts import user_info

# Recording every request would turn each read into a write; a minute is fine for "last seen".
LAST_SEEN_RESOLUTION = timedelta(minutes=1)

_RELOGIN = "Log in again (camroll login URL --user NAME) to get a new token."


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    is_admin: bool
    device_id: int | None


def device_token_refused() -> ProblemError:
    return ProblemError(403, "forbidden",
                        "A device token can only back files up (check, upload, heartbeat); this needs a login "
                        "session.",
                        "Log in with your username and password (the web UI, or POST /api/v1/auth/login) and "
                        "use that session token.")


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, "unauthorized", detail, _RELOGIN, headers={"WWW-Authenticate": "Bearer"})


def login(ctx: Context, username: str, password: str) -> wire.LoginResponse:
    with ctx.db() as db:
        user = users.by_name(db, username)
        stored = user.password_hash if user else dummy_hash()
    if not verify_password(stored, password) or user is None:
        raise ProblemError(401, "unauthorized", "Wrong username or password.",
                           "Check both; an admin can create accounts with 'camroll admin user add'.")
    token = new_token(SESSION_PREFIX)
    expires = ctx.clock.now() + timedelta(days=ctx.settings.session_days)
    with ctx.db() as db:
        db.add(SessionToken(user_id=user.id, token_hash=token_hash(token), expires_at=expires))
    return wire.LoginResponse(token=token, expires_at=expires, user=user_info(ctx, user.id))


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise _unauthorized("This request needs a token: send 'Authorization: Bearer <token>'.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("The Authorization header must be 'Bearer <token>'.")
    return token


def authenticate(ctx: Context, authorization: str | None) -> Principal:
    _bearer(authorization)
    with ctx.conn() as conn:
        return authenticate_on(conn, authorization, now=ctx.clock.now())


def authenticate_on(conn: Connection, authorization: str | None, *, now: datetime | None = None) -> Principal:
    """:func:`authenticate` inside the caller's transaction (which commits the last-seen update);
    ``now`` is the context's clock (the system's if None)."""
    token = _bearer(authorization)
    now = now or utcnow()
    # One joined Core query per request (token and its user), not two ORM loads.
    if token.startswith(DEVICE_PREFIX):
        device = tokens.device_with_user(conn, token_hash(token))
        if device is None:
            raise _unauthorized("This device token is not known to the server.")
        if device.revoked_at is not None:
            raise _unauthorized(f"The token of device '{device.name}' was revoked.")
        if device.username is None:
            raise _unauthorized("The account of this token no longer exists.")
        if device.last_seen_at is None or now - device.last_seen_at >= LAST_SEEN_RESOLUTION:
            tokens.touch_device(conn, device.id, now)
        return Principal(device.user_id, device.username, bool(device.is_admin), device.id)
    if token.startswith(SESSION_PREFIX):
        session = tokens.session_with_user(conn, token_hash(token))
        if session is None:
            raise _unauthorized("This session token is not known to the server.")
        if session.expires_at <= now:
            raise _unauthorized("This session has expired.")
        if session.username is None:
            raise _unauthorized("The account of this token no longer exists.")
        return Principal(session.user_id, session.username, bool(session.is_admin), None)
    raise _unauthorized("The token is not a camroll token.")


def device_info(d: Device) -> wire.DeviceInfo:
    return wire.DeviceInfo(id=d.id, name=d.name, platform=d.platform, created_at=d.created_at,
                           last_seen_at=d.last_seen_at, revoked=d.revoked_at is not None)


def create_device(ctx: Context, who: Principal, req: wire.DeviceCreate) -> wire.DeviceCreated:
    token = new_token(DEVICE_PREFIX)
    with ctx.db() as db:
        device = Device(user_id=who.user_id, name=req.name, platform=req.platform,
                        token_hash=token_hash(token), last_seen_at=ctx.clock.now())
        db.add(device)
        db.flush()
        return wire.DeviceCreated(**device_info(device).model_dump(), token=token)


def revoke_device(ctx: Context, who: Principal, device_id: int) -> None:
    with ctx.db() as db:
        device = db.get(Device, device_id)
        if device is None or device.user_id != who.user_id:
            raise ProblemError(404, "not_found", f"You have no device with id {device_id}.",
                               "List your devices with GET /api/v1/devices.")
        if device.revoked_at is None:
            device.revoked_at = ctx.clock.now()


def forget_expired_sessions(ctx: Context) -> None:
    with ctx.db() as db:
        tokens.delete_expired_sessions(db, ctx.clock.now())
