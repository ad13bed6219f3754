"""Login and the current user."""

from __future__ import annotations

from fastapi import APIRouter, Request

from camroll import wire
from camroll.server.api.deps import BackupCaller, Ctx
from camroll.server.services import accounts
from camroll.server.services import login as login_service

router = APIRouter()


@router.post("/auth/login", response_model=wire.LoginResponse)
async def login(request: Request, ctx: Ctx, body: wire.LoginRequest) -> wire.LoginResponse:
    """A session token; wrong passwords earn a growing wait (429 with Retry-After)."""
    address = request.client.host if request.client else None
    return await login_service.login(ctx, body.username, body.password, address)


@router.get("/me", response_model=wire.UserInfo)
def me(ctx: Ctx, who: BackupCaller) -> wire.UserInfo:
    return accounts.user_info(ctx, who.user_id)
