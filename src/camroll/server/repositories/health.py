"""Device heartbeats and the upload times health is derived from."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from camroll.server.models import AssetFile, Device, DeviceHealth


def of_device(db: Session, device_id: int) -> DeviceHealth | None:
    return db.get(DeviceHealth, device_id)


def of_devices(db: Session, device_ids: Iterable[int]) -> dict[int, DeviceHealth]:
    ids = list(device_ids)
    if not ids:
        return {}
    return {h.device_id: h for h in db.scalars(select(DeviceHealth).where(DeviceHealth.device_id.in_(ids)))}


def last_uploads(db: Session, device_ids: Iterable[int]) -> dict[int, datetime]:
    """Per device, when the server last recorded a file from it (an upload or a matching hash check)."""
    ids = list(device_ids)
    if not ids:
        return {}
    rows = db.execute(select(AssetFile.device_id, func.max(AssetFile.created_at))
                      .where(AssetFile.device_id.in_(ids)).group_by(AssetFile.device_id))
    return {int(device_id): at for device_id, at in rows if at is not None and device_id is not None}


def active_devices(db: Session) -> Sequence[Device]:
    """Every device whose token still works, of every user."""
    return db.scalars(select(Device).where(Device.revoked_at.is_(None)).order_by(Device.user_id, Device.id)).all()
