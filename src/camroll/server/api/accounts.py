"""Login, the current user and their devices."""

from __future__ import annotations

from fastapi import APIRouter, Response

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


@router.post("/devices", response_model=wire.DeviceCreated, status_code=201)
def create_device(ctx: Ctx, who: Caller, body: wire.DeviceCreate) -> wire.DeviceCreated:
    return auth.create_device(ctx, who, body)


@router.get("/devices", response_model=list[wire.DeviceInfo])
def list_devices(ctx: Ctx, who: Caller) -> list[wire.DeviceInfo]:
    return auth.list_devices(ctx, who)


@router.delete("/devices/{device_id}", status_code=204)
def revoke_device(ctx: Ctx, who: Caller, device_id: int) -> Response:
    auth.revoke_device(ctx, who, device_id)
    return Response(status_code=204)
