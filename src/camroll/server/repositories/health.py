"""Device heartbeats and the upload times health is derived from."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from camroll.server.models import AssetFile, Device, DeviceHealth, Upload


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


def last_activity(db: Session, device_ids: Iterable[int]) -> dict[int, datetime]:
    """Per device, when bytes of one of its uploads last arrived (a long video shows progress here
    long before it becomes a file)."""
    ids = list(device_ids)
    if not ids:
        return {}
    rows = db.execute(select(Upload.device_id, func.max(Upload.updated_at))
                      .where(Upload.device_id.in_(ids)).group_by(Upload.device_id))
    return {int(device_id): at for device_id, at in rows if at is not None and device_id is not None}


def server_progress(db: Session, device_ids: Iterable[int]) -> tuple[dict[int, datetime], dict[int, datetime]]:
    """(last file recorded, last sign of progress the server saw: a file recorded or upload bytes received)."""
    ids = list(device_ids)
    files = last_uploads(db, ids)
    progress = dict(files)
    for device_id, at in last_activity(db, ids).items():
        progress[device_id] = max(at, progress[device_id]) if device_id in progress else at
    return files, progress


def active_devices(db: Session) -> Sequence[Device]:
    """Every device whose token still works, of every user."""
    return db.scalars(select(Device).where(Device.revoked_at.is_(None)).order_by(Device.user_id, Device.id)).all()
