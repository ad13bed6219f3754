"""Login and the current user."""

from __future__ import annotations

from fastapi import APIRouter

from camroll import wire
from camroll.server.api.deps import Caller, Ctx
from camroll.server.services import accounts, auth

router = APIRouter()


@router.post("/auth/login", response_model=wire.LoginResponse)
def login(ctx: Ctx, body: wire.LoginRequest) -> wire.LoginResponse:
    return auth.login(ctx, body.username, body.password)


@router.get("/me", response_model=wire.UserInfo)
def me(ctx: Ctx, who: Caller) -> wire.UserInfo:
    return accounts.user_info(ctx, who.user_id)
