"""Assets, the blobs behind them and the device files they came from."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from camroll.server.models import Asset, AssetFile, Blob, Device, utcnow


def by_hashes(db: Session, user_id: int, hashes: Iterable[str]) -> dict[str, Asset]:
    wanted = list(set(hashes))
    out: dict[str, Asset] = {}
    # Chunked so no backend hits its bound-parameter limit.
    for i in range(0, len(wanted), 500):
        rows = db.scalars(select(Asset).where(Asset.user_id == user_id, Asset.sha256.in_(wanted[i:i + 500])))
        out.update({a.sha256: a for a in rows})
    return out


def by_id(db: Session, user_id: int, asset_id: int) -> Asset | None:
    return db.scalars(select(Asset).where(Asset.id == asset_id, Asset.user_id == user_id)).first()


def page(db: Session, user_id: int, before_id: int | None, limit: int) -> Sequence[Asset]:
    q = select(Asset).where(Asset.user_id == user_id)
    if before_id is not None:
        q = q.where(Asset.id < before_id)
    return db.scalars(q.order_by(Asset.id.desc()).limit(limit)).all()


def files_of(db: Session, asset_ids: Sequence[int]) -> dict[int, list[tuple[AssetFile, str | None]]]:
    out: dict[int, list[tuple[AssetFile, str | None]]] = {i: [] for i in asset_ids}
    if not asset_ids:
        return out
    rows = db.execute(
        select(AssetFile, Device.name)
        .outerjoin(Device, Device.id == AssetFile.device_id)
        .where(AssetFile.asset_id.in_(asset_ids))
        .order_by(AssetFile.id)
    )
    for f, name in rows:
        out[f.asset_id].append((f, name))
    return out


def record_file(db: Session, asset_id: int, device_id: int | None, path: str, filename: str,
                mtime_ns: int | None) -> None:
    """Remember that ``device_id`` holds the asset at ``path``; idempotent."""
    existing = db.scalars(
        select(AssetFile).where(
            AssetFile.asset_id == asset_id,
            AssetFile.device_id.is_(None) if device_id is None else AssetFile.device_id == device_id,
            AssetFile.path == path,
        )
    ).first()
    if existing is None:
        db.add(AssetFile(asset_id=asset_id, device_id=device_id, path=path, filename=filename,
                         mtime_ns=mtime_ns))
    elif mtime_ns is not None and existing.mtime_ns != mtime_ns:
        existing.mtime_ns = mtime_ns
    db.flush()


# --- Core statements for completing an upload (no ORM objects; built once) ---------------------------
_BLOBS = cast(Table, Blob.__table__)
_ASSETS = cast(Table, Asset.__table__)
_FILES = cast(Table, AssetFile.__table__)
_BLOB_EXISTS = select(_BLOBS.c.sha256).where(_BLOBS.c.sha256 == bindparam("b_sha"))
_BLOB_INSERT = insert(_BLOBS)
_ASSET_ID = select(_ASSETS.c.id).where(_ASSETS.c.user_id == bindparam("b_user"),
                                       _ASSETS.c.sha256 == bindparam("b_sha"))
_ASSET_INSERT = insert(_ASSETS)
_FILE_AT = select(_FILES.c.id, _FILES.c.mtime_ns).where(
    _FILES.c.asset_id == bindparam("b_asset"), _FILES.c.device_id == bindparam("b_device"),
    _FILES.c.path == bindparam("b_path"))
_FILE_AT_NO_DEVICE = select(_FILES.c.id, _FILES.c.mtime_ns).where(
    _FILES.c.asset_id == bindparam("b_asset"), _FILES.c.device_id.is_(None), _FILES.c.path == bindparam("b_path"))
_FILE_INSERT = insert(_FILES)
_FILE_UPDATE = update(_FILES).where(_FILES.c.id == bindparam("b_id"))


def asset_id_of(conn: Connection, user_id: int, sha256: str) -> int | None:
    found = conn.scalar(_ASSET_ID, {"b_user": user_id, "b_sha": sha256})
    return None if found is None else int(found)


def ensure_blob(conn: Connection, sha256: str, size: int) -> None:
    if conn.scalar(_BLOB_EXISTS, {"b_sha": sha256}) is None:
        conn.execute(_BLOB_INSERT, {"sha256": sha256, "size": size, "created_at": utcnow()})


def get_or_create(conn: Connection, user_id: int, sha256: str, size: int, mime: str | None,
                       filename: str) -> int:
    found = asset_id_of(conn, user_id, sha256)
    if found is not None:
        return found
    res = conn.execute(_ASSET_INSERT, {"user_id": user_id, "sha256": sha256, "size": size, "mime": mime,
                                       "filename": filename, "created_at": utcnow()})
    pk = res.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def record_file_core(conn: Connection, asset_id: int, device_id: int | None, path: str, filename: str,
                     mtime_ns: int | None) -> None:
    """Like :func:`record_file`, on a Core connection."""
    if device_id is None:
        existing = conn.execute(_FILE_AT_NO_DEVICE, {"b_asset": asset_id, "b_path": path}).first()
    else:
        existing = conn.execute(_FILE_AT, {"b_asset": asset_id, "b_device": device_id, "b_path": path}).first()
    if existing is None:
        conn.execute(_FILE_INSERT, {"asset_id": asset_id, "device_id": device_id, "path": path,
                                    "filename": filename, "mtime_ns": mtime_ns})
    elif mtime_ns is not None and existing.mtime_ns != mtime_ns:
        conn.execute(_FILE_UPDATE, {"b_id": existing.id, "mtime_ns": mtime_ns})
