"""The signed-in user's own account: changing the password and logging out (ending the session)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete

from camroll import wire
from camroll.server.api.deps import Caller, Ctx
from camroll.server.models import SessionToken
from camroll.server.problems import ProblemError
from camroll.server.security import SESSION_PREFIX, token_hash
from camroll.server.services import password
from camroll.server.services.password import MIN_PASSWORD_LENGTH

router = APIRouter()


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    old: str = Field(max_length=wire.MAX_PASSWORD_LENGTH, description="The current password.")
    new: str = Field(max_length=wire.MAX_PASSWORD_LENGTH, description=f"At least {MIN_PASSWORD_LENGTH} characters.")


@router.post("/me/password", status_code=204)
async def change_password(ctx: Ctx, who: Caller, body: PasswordChange,
                          authorization: Annotated[str | None, Header()] = None) -> Response:
    """Other sessions of this user end; this one and device tokens keep working.  Wrong current passwords
    count against the account like wrong logins (a stolen session must not become a guessing oracle)."""
    await password.change(ctx, who, body.old, body.new, token_hash(_token(authorization)))
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
