"""A WebDAV device's health: it sends no heartbeats, so each upload it completes stands for one.

The device's ``device_health`` row says ``idle`` with nothing pending, received at its last upload;
``services.health.assess`` then judges it like an agent's, so a phone whose app stopped uploading
turns ``silent`` after the same silence limit and raises the same alert.  Listing (PROPFIND) does not
count: an app that can still list but no longer uploads is exactly what the alert is for."""

from __future__ import annotations

from datetime import datetime

from camroll.server.context import Context
from camroll.server.models import Device, DeviceHealth
from camroll.server.services.health import when

AGENT_VERSION = "webdav"


def uploaded(ctx: Context, device_id: int, now: datetime | None = None) -> None:
    now = now or ctx.clock.now()
    with ctx.db() as db:
        hb = db.get(DeviceHealth, device_id)
        if hb is None:
            hb = DeviceHealth(device_id=device_id, progress_at=now, state_since=now, state="idle",
                              agent_version=AGENT_VERSION, headline="", problems=[])
            db.add(hb)
        hb.received_at = now
        hb.progress_at = now
        hb.last_success_at = now
        hb.state = "idle"
        hb.blocker = hb.blocker_code = None
        hb.pending_files = hb.pending_bytes = hb.failed_files = 0
        hb.headline = f"Backing up over WebDAV; last upload {when(now)}."
        device = db.get(Device, device_id)
        if device is not None:
            device.last_seen_at = now
