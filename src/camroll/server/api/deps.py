"""Dependencies shared by the routers: the context, the caller, and the client-version gate.

Two kinds of caller: ``Caller`` needs a login session and is what every route takes unless it is one of
the few a backup agent needs (``BackupCaller``: a device token or a session).  A device token lives in a
config file on a phone or a laptop; whoever copies it may back files up as that device and nothing more,
so it cannot mint tokens, read the library, change alerts, revoke devices or trash anything."""

from __future__ import annotations

import re
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Header, Path, Request

from camroll import wire
from camroll.server.context import Context
from camroll.server.problems import ProblemError
from camroll.server.services import auth
from camroll.server.services.auth import Principal


# The dependencies below are ``async def`` because they never block: FastAPI runs a plain ``def``
# dependency in a worker thread, a hand-off that costs more than the function itself on every request.
def context_of(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


async def get_ctx(request: Request) -> Context:
    return context_of(request)


Ctx = Annotated[Context, Depends(get_ctx)]


async def current_principal(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> Principal:
    """Whoever the bearer token names: a login session or a device."""
    return await anyio.to_thread.run_sync(auth.authenticate, ctx, authorization)


async def session_principal(who: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """The caller, if it holds a login session; a device token is refused with 403."""
    if who.device_id is not None:
        raise auth.device_token_refused()
    return who


# The default for every route: a new route is an account action until someone decides otherwise.
Caller = Annotated[Principal, Depends(session_principal)]
# Only what a backup agent needs: server info, its quota (/me), hash checks, uploads, heartbeats.
BackupCaller = Annotated[Principal, Depends(current_principal)]

# Ids in paths: bounded like the database's 64-bit keys, so a huge number is a 422, never an overflow.
PathId = Annotated[int, Path(ge=1, le=wire.INT64_MAX)]


def _version_tuple(text: str) -> tuple[int, ...] | None:
    # ASCII digits, a few of them per part: int() of a 5,000-digit part raises, and other scripts'
    # digits are no version anyone sends.
    m = re.match(r"^\s*v?([0-9]{1,9}(?:\.[0-9]{1,9}){0,9})(?![0-9])", text[:200])
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


async def check_client_version(request: Request) -> None:
    sent = request.headers.get(wire.CLIENT_VERSION_HEADER)
    # The server description stays readable so an old client can say which version it needs.
    if sent is None or request.url.path == f"{wire.API_PREFIX}/server":
        return
    ctx = context_of(request)
    minimum = ctx.settings.min_client_version
    have, need = _version_tuple(sent), _version_tuple(minimum)
    if have is None:
        raise ProblemError(400, "bad_request", f"{wire.CLIENT_VERSION_HEADER} must be a version such as 1.2.3, "
                           f"got {sent[:40]!r}.", f"Send {wire.CLIENT_VERSION_HEADER}: <major.minor.patch>, or leave "
                           "the header out.")
    if need is None:
        return
    width = max(len(have), len(need))
    if have + (0,) * (width - len(have)) < need + (0,) * (width - len(need)):
        raise ProblemError(426, "client_too_old",
                           f"This server needs camroll {minimum} or later; this client is {sent.strip()}.",
                           f"Update camroll to {minimum} or later.")
