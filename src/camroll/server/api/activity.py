"""Upload activity per device and day, for the small charts on the web UI's devices page."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from camroll import wire
from camroll.server.api.deps import Caller, Ctx
from camroll.server.models import Asset, AssetFile, utcnow

router = APIRouter()


@router.get("/activity/uploads", response_model=list[wire.DeviceActivity])
def uploads_per_day(ctx: Ctx, who: Caller,
                    days: Annotated[int, Query(ge=1, le=366)] = 14) -> list[wire.DeviceActivity]:
    """Copies the server learnt of per device and UTC day (an upload, or a hash check that matched)."""
    since = utcnow() - timedelta(days=days)
    day = func.date(AssetFile.created_at)
    query = (select(AssetFile.device_id, day.label("day"), func.count().label("files"),
                    func.coalesce(func.sum(Asset.size), 0).label("bytes"))
             .join(Asset, Asset.id == AssetFile.asset_id)
             .where(Asset.user_id == who.user_id, AssetFile.created_at >= since)
             .group_by(AssetFile.device_id, day).order_by(AssetFile.device_id, day))
    out: dict[int | None, wire.DeviceActivity] = {}
    with ctx.conn() as conn:
        for device_id, when, files, size in conn.execute(query):
            entry = out.setdefault(device_id, wire.DeviceActivity(device_id=device_id, days=[]))
            entry.days.append(wire.UploadDay(date=str(when)[:10], files=int(files), bytes=int(size)))
    return list(out.values())
