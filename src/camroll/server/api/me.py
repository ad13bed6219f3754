"""The signed-in user's own account: changing the password and logging out (ending the session)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete

from camroll import wire
from camroll.server.api.deps import Caller, Ctx
from camroll.server.models import SessionToken, User
from camroll.server.problems import ProblemError
from camroll.server.ratelimit import retry_after
from camroll.server.security import SESSION_PREFIX, hash_password, token_hash, verify_password

router = APIRouter()

MIN_PASSWORD_LENGTH = 8


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    old: str = Field(max_length=wire.MAX_PASSWORD_LENGTH, description="The current password.")
    new: str = Field(max_length=wire.MAX_PASSWORD_LENGTH, description=f"At least {MIN_PASSWORD_LENGTH} characters.")


@router.post("/me/password", status_code=204)
def change_password(ctx: Ctx, who: Caller, body: PasswordChange,
                    authorization: Annotated[str | None, Header()] = None) -> Response:
    """Other sessions of this user end; this one and device tokens keep working.  Wrong current passwords
    count against the account like wrong logins (a stolen session must not become a guessing oracle)."""
    account = who.username.casefold()
    if wait := ctx.throttles.login_accounts.wait(account):
        raise ProblemError(429, "rate_limited", f"Too many wrong passwords; try again in {retry_after(wait)} s.",
                           "Wait, then type the password you logged in with.",
                           headers={"Retry-After": retry_after(wait)})
    if len(body.new) < MIN_PASSWORD_LENGTH:
        raise ProblemError(400, "bad_request",
                           f"The new password has {len(body.new)} characters; it needs at least "
                           f"{MIN_PASSWORD_LENGTH}.", f"Choose a password of {MIN_PASSWORD_LENGTH} or more characters.")
    with ctx.db() as db:
        user = db.get(User, who.user_id)
        if user is None or not verify_password(user.password_hash, body.old):
            ctx.throttles.login_accounts.failed(account)
            raise ProblemError(403, "forbidden", "The current password is wrong; nothing was changed.",
                               "Type the password you logged in with.")
    new_hash = hash_password(body.new)
    current = token_hash(_token(authorization))
    with ctx.db() as db:
        user = db.get(User, who.user_id)
        assert user is not None
        user.password_hash = new_hash
        db.execute(delete(SessionToken).where(SessionToken.user_id == who.user_id,
                                              SessionToken.token_hash != current))
    return Response(status_code=204)


@router.post("/auth/logout", status_code=204)
def logout(ctx: Ctx, who: Caller, authorization: Annotated[str | None, Header()] = None) -> Response:
    """Ends the calling session (its token stops working at once); device tokens are revoked instead."""
    token = _token(authorization)
    if who.device_id is not None or not token.startswith(SESSION_PREFIX):
        raise ProblemError(400, "bad_request", "Only a session token can log out.",
                           "Revoke a device token with DELETE /api/v1/devices/{id}.")
    with ctx.db() as db:
        db.execute(delete(SessionToken).where(SessionToken.token_hash == token_hash(token)))
    return Response(status_code=204)


def _token(authorization: str | None) -> str:
    # The Caller dependency already proved the header is a valid 'Bearer <token>'.
    return (authorization or "").partition(" ")[2].strip()
