"""A user's devices, their health, and the heartbeat agents send."""

from __future__ import annotations

from fastapi import APIRouter, Response

from camroll import wire
from camroll.server.api.deps import BackupCaller, Caller, Ctx, PathId
from camroll.server.services import auth, health

router = APIRouter()


@router.post("/devices", response_model=wire.DeviceCreated, status_code=201)
def create_device(ctx: Ctx, who: Caller, body: wire.DeviceCreate) -> wire.DeviceCreated:
    return auth.create_device(ctx, who, body)


@router.get("/devices", response_model=list[wire.DeviceWithHealth])
def list_devices(ctx: Ctx, who: Caller) -> list[wire.DeviceWithHealth]:
    return health.list_devices(ctx, who)


@router.put("/devices/current/heartbeat", response_model=wire.HeartbeatAck)
def heartbeat(ctx: Ctx, who: BackupCaller, body: wire.Heartbeat) -> wire.HeartbeatAck:
    """Record the calling device's backup status; needs the device's own token."""
    return health.record_heartbeat(ctx, who, body)


@router.get("/devices/{device_id}", response_model=wire.DeviceWithHealth)
def get_device(ctx: Ctx, who: BackupCaller, device_id: PathId) -> wire.DeviceWithHealth:
    """A device token may read its own record (its health as the server sees it), no other."""
    if who.device_id is not None and who.device_id != device_id:
        raise auth.device_token_refused()
    return health.get_device(ctx, who, device_id)


@router.delete("/devices/{device_id}", status_code=204)
def revoke_device(ctx: Ctx, who: Caller, device_id: PathId) -> Response:
    auth.revoke_device(ctx, who, device_id)
    return Response(status_code=204)
