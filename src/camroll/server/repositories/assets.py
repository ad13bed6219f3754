"""Assets, the blobs behind them and the device files they came from."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from camroll.server.models import AlbumItem, Asset, AssetFile, Blob, Device, Upload, User, UTCDateTime, utcnow


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


@dataclass(frozen=True)
class Listing:
    """What ``GET /assets`` is narrowed to (a restore's choices); unlike the timeline's ``Filters`` it keeps
    the MOV half of a Live Photo, which a restore must write too."""

    device_id: int | None = None
    album_id: int | None = None  # the caller checks the album is the user's
    start: datetime | None = None  # taken_at >= start
    end: datetime | None = None  # taken_at < end
    trashed: bool | None = None  # None: both


def page(db: Session, user_id: int, before_id: int | None, limit: int, f: Listing = Listing()) -> Sequence[Asset]:
    q = select(Asset).where(Asset.user_id == user_id)
    if before_id is not None:
        q = q.where(Asset.id < before_id)
    if f.trashed is not None:
        q = q.where(Asset.trashed_at.is_not(None) if f.trashed else Asset.trashed_at.is_(None))
    if f.start is not None:
        q = q.where(Asset.taken_at >= f.start)
    if f.end is not None:
        q = q.where(Asset.taken_at < f.end)
    if f.device_id is not None:
        q = q.where(exists().where(AssetFile.asset_id == Asset.id, AssetFile.device_id == f.device_id))
    if f.album_id is not None:
        # A Live Photo's video is not an album item itself: it goes with its still.
        in_album = select(AlbumItem.asset_id).where(AlbumItem.album_id == f.album_id)
        q = q.where(or_(Asset.id.in_(in_album), Asset.live_of_id.in_(in_album)))
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
                mtime_ns: int | None, path_raw: bytes | None = None) -> None:
    """Remember that ``device_id`` holds the asset at ``path`` (``path_raw``: its exact bytes when they are
    not UTF-8); idempotent."""
    existing = db.scalars(
        select(AssetFile).where(
            AssetFile.asset_id == asset_id,
            AssetFile.device_id.is_(None) if device_id is None else AssetFile.device_id == device_id,
            AssetFile.path == path,
        )
    ).first()
    if existing is None:
        db.add(AssetFile(asset_id=asset_id, device_id=device_id, path=path, filename=filename,
                         mtime_ns=mtime_ns, path_raw=path_raw))
    elif mtime_ns is not None and existing.mtime_ns != mtime_ns:
        existing.mtime_ns = mtime_ns
    db.flush()


# --- Core statements for completing an upload (no ORM objects; built once) ---------------------------
_BLOBS = cast(Table, Blob.__table__)
_ASSETS = cast(Table, Asset.__table__)
_FILES = cast(Table, AssetFile.__table__)
_ASSET_ID = select(_ASSETS.c.id).where(_ASSETS.c.user_id == bindparam("b_user"),
                                       _ASSETS.c.sha256 == bindparam("b_sha"))
# One blob row per hash and one asset per user and hash, decided by the database's unique indexes
# (INSERT ... ON CONFLICT DO NOTHING), not by a read before the insert that another replica's insert
# can slip past.  SQLite and PostgreSQL spell it alike; each dialect compiles its own statement.
_BLOB_INSERT = {name: dialect_insert(_BLOBS).on_conflict_do_nothing(index_elements=["sha256"])
                for name, dialect_insert in (("sqlite", sqlite_insert), ("postgresql", pg_insert))}
_ASSET_INSERT = {name: dialect_insert(_ASSETS).on_conflict_do_nothing(index_elements=["user_id", "sha256"])
                 .returning(_ASSETS.c.id)
                 for name, dialect_insert in (("sqlite", sqlite_insert), ("postgresql", pg_insert))}
# The same insert for many rows at once, reporting which hashes it created (RETURNING runs for the rows
# inserted, not for those the conflict skipped).
_ASSETS_INSERT = {name: dialect_insert(_ASSETS).on_conflict_do_nothing(index_elements=["user_id", "sha256"])
                  .returning(_ASSETS.c.sha256, _ASSETS.c.id)
                  for name, dialect_insert in (("sqlite", sqlite_insert), ("postgresql", pg_insert))}
_FILE_AT = select(_FILES.c.id, _FILES.c.mtime_ns).where(
    _FILES.c.asset_id == bindparam("b_asset"), _FILES.c.device_id == bindparam("b_device"),
    _FILES.c.path == bindparam("b_path"))
_FILE_AT_NO_DEVICE = select(_FILES.c.id, _FILES.c.mtime_ns).where(
    _FILES.c.asset_id == bindparam("b_asset"), _FILES.c.device_id.is_(None), _FILES.c.path == bindparam("b_path"))
_FILE_INSERT = {name: dialect_insert(_FILES).on_conflict_do_nothing(index_elements=["asset_id", "device_id", "path"])
                for name, dialect_insert in (("sqlite", sqlite_insert), ("postgresql", pg_insert))}
_FILE_UPDATE = update(_FILES).where(_FILES.c.id == bindparam("b_id"))


def asset_id_of(conn: Connection, user_id: int, sha256: str) -> int | None:
    found = conn.scalar(_ASSET_ID, {"b_user": user_id, "b_sha": sha256})
    return None if found is None else int(found)


def asset_ids_of(conn: Connection, user_id: int, hashes: Sequence[str]) -> dict[str, int]:
    """The user's asset ids for those of ``hashes`` they have, 500 a query."""
    out: dict[str, int] = {}
    for i in range(0, len(hashes), 500):
        rows = conn.execute(select(_ASSETS.c.sha256, _ASSETS.c.id).where(
            _ASSETS.c.user_id == user_id, _ASSETS.c.sha256.in_(hashes[i:i + 500])))
        out.update({str(r.sha256): int(r.id) for r in rows})
    return out


@dataclass(frozen=True)
class NewAsset:
    sha256: str
    size: int
    mime: str | None
    filename: str
    mtime: datetime | None


def create_many(conn: Connection, user_id: int, new: Sequence[NewAsset]) -> dict[str, int]:
    """Blob rows and assets for ``new`` in a few statements (a batch's group commit).  Returns the ids
    of the assets this call created; a hash another transaction created meanwhile is not among them
    (the caller looks it up, as ``get_or_create`` would)."""
    if not new:
        return {}
    now = utcnow()
    conn.execute(_BLOB_INSERT[conn.dialect.name],
                 [{"sha256": n.sha256, "size": n.size, "created_at": now} for n in new])
    rows = conn.execute(_ASSETS_INSERT[conn.dialect.name], [
        {"user_id": user_id, "sha256": n.sha256, "size": n.size, "mime": n.mime, "filename": n.filename,
         "created_at": now, "kind": kind_of(n.mime), "taken_at": n.mtime or now,
         "taken_source": "mtime" if n.mtime else "upload"} for n in new])
    return {str(r.sha256): int(r.id) for r in rows}


def record_new_files(conn: Connection, files: Sequence[dict[str, Any]]) -> None:
    """Device paths of assets just created (no row can exist yet but a concurrent one: then it stays)."""
    if files:
        conn.execute(_FILE_INSERT[conn.dialect.name], list(files))


def ensure_blob(conn: Connection, sha256: str, size: int) -> None:
    """The blob row for ``sha256``, inserted unless it exists (whoever inserts it first, once)."""
    conn.execute(_BLOB_INSERT[conn.dialect.name], {"sha256": sha256, "size": size, "created_at": utcnow()})


def get_or_create(conn: Connection, user_id: int, sha256: str, size: int, mime: str | None,
                       filename: str, mtime: datetime | None = None) -> int:
    """The user's asset for ``sha256``, created if new.  Until the metadata job reads a capture time,
    the asset was taken at the file's ``mtime`` if the device sent one, else when it was uploaded.

    Two transactions creating the same asset at once: PostgreSQL makes the second insert wait for the
    first to commit and then skip it; the second then reads the first's row."""
    now = utcnow()
    values = {"user_id": user_id, "sha256": sha256, "size": size, "mime": mime, "filename": filename,
              "created_at": now, "kind": kind_of(mime), "taken_at": mtime or now,
              "taken_source": "mtime" if mtime else "upload"}
    while True:
        created = conn.scalar(_ASSET_INSERT[conn.dialect.name], values)
        if created is not None:
            return int(created)
        found = asset_id_of(conn, user_id, sha256)
        if found is not None:
            return found
        # The row the insert ran into was deleted before this read (a trash purge): insert again.


def record_file_core(conn: Connection, asset_id: int, device_id: int | None, path: str, filename: str,
                     mtime_ns: int | None, path_raw: bytes | None = None) -> None:
    """Like :func:`record_file`, on a Core connection."""
    if device_id is None:
        existing = conn.execute(_FILE_AT_NO_DEVICE, {"b_asset": asset_id, "b_path": path}).first()
    else:
        existing = conn.execute(_FILE_AT, {"b_asset": asset_id, "b_device": device_id, "b_path": path}).first()
    if existing is None:
        # A concurrent completion of the same file may have inserted it since the read: then it is there.
        conn.execute(_FILE_INSERT[conn.dialect.name], {"asset_id": asset_id, "device_id": device_id, "path": path,
                                    "filename": filename, "mtime_ns": mtime_ns, "path_raw": path_raw})
    elif mtime_ns is not None and existing.mtime_ns != mtime_ns:
        conn.execute(_FILE_UPDATE, {"b_id": existing.id, "mtime_ns": mtime_ns})


# --- Library queries: timeline, trash, jobs, storage ---------------------------------------------------
def kind_of(mime: str | None) -> str:
    """``image``, ``video`` or ``other`` from a sniffed MIME type."""
    if mime and mime.startswith("image/"):
        return "image"
    if mime and mime.startswith("video/"):
        return "video"
    return "other"


@dataclass(frozen=True)
class Filters:
    """What a timeline or trash listing is narrowed to; every field is optional."""

    start: datetime | None = None  # taken_at >= start
    end: datetime | None = None  # taken_at < end
    kind: str | None = None
    camera: str | None = None  # make, model, or "make model"; case-insensitive
    device_id: int | None = None
    trashed: bool = False
    album_id: int | None = None  # only this album's items (the caller checks the album is the user's)


def _conditions(user_id: int, f: Filters) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [
        Asset.user_id == user_id,
        Asset.trashed_at.is_not(None) if f.trashed else Asset.trashed_at.is_(None),
        # The MOV half of a Live Photo travels with its still.
        Asset.live_of_id.is_(None),
    ]
    if f.start is not None:
        conds.append(Asset.taken_at >= f.start)
    if f.end is not None:
        conds.append(Asset.taken_at < f.end)
    if f.kind is not None:
        conds.append(Asset.kind == f.kind)
    if f.camera:
        wanted = f.camera.strip().lower()
        make = func.lower(func.coalesce(Asset.camera_make, ""))
        model = func.lower(func.coalesce(Asset.camera_model, ""))
        conds.append(or_(make == wanted, model == wanted, (make + " " + model) == wanted))
    if f.device_id is not None:
        conds.append(exists().where(AssetFile.asset_id == Asset.id, AssetFile.device_id == f.device_id))
    if f.album_id is not None:
        conds.append(exists().where(AlbumItem.asset_id == Asset.id, AlbumItem.album_id == f.album_id))
    return conds


def timeline_query(user_id: int, f: Filters, after: tuple[datetime, int] | None, limit: int) -> Select[Asset]:
    """Newest capture time first; ``after`` is the (taken_at, id) of the last item already shown.

    A row-value comparison, so the database seeks straight into ``ix_assets_timeline`` however deep
    the page is, and reads it in order (no sort of the user's whole library)."""
    q = select(Asset).where(*_conditions(user_id, f))
    if after is not None:
        q = q.where(tuple_(Asset.taken_at, Asset.id) < tuple_(literal(after[0], UTCDateTime()), literal(after[1])))
    return q.order_by(Asset.taken_at.desc(), Asset.id.desc()).limit(limit)


def timeline(db: Session, user_id: int, f: Filters, after: tuple[datetime, int] | None,
             limit: int) -> Sequence[Asset]:
    return db.scalars(timeline_query(user_id, f, after, limit)).all()


def count(db: Session, user_id: int, f: Filters) -> int:
    return int(db.scalar(select(func.count()).select_from(Asset).where(*_conditions(user_id, f))) or 0)


def owned(db: Session, user_id: int, ids: Iterable[int]) -> list[Asset]:
    """The user's assets among ``ids``, in the order asked; unknown or foreign ids are left out."""
    wanted = list(dict.fromkeys(ids))
    found: dict[int, Asset] = {}
    for i in range(0, len(wanted), 500):
        found.update((a.id, a) for a in db.scalars(
            select(Asset).where(Asset.user_id == user_id, Asset.id.in_(wanted[i:i + 500]))))
    return [found[i] for i in wanted if i in found]


def by_id_any_user(db: Session, asset_id: int) -> Asset | None:
    return db.get(Asset, asset_id)


def earliest_mtime_ns(db: Session, asset_id: int) -> int | None:
    """The oldest modification time any device reported for the asset (a copy is never older)."""
    found = db.scalar(select(func.min(AssetFile.mtime_ns)).where(AssetFile.asset_id == asset_id))
    return None if found is None else int(found)


def live_partner(db: Session, asset: Asset) -> Asset | None:
    """The other half of ``asset``'s Live Photo: same user and content identifier, other kind."""
    if not asset.live_photo_id:
        return None
    other = "image" if asset.kind == "video" else "video"
    return db.scalars(select(Asset).where(
        Asset.user_id == asset.user_id, Asset.live_photo_id == asset.live_photo_id, Asset.kind == other,
        Asset.id != asset.id).order_by(Asset.id)).first()


def needing_jobs(db: Session, after_id: int, limit: int) -> list[int]:
    """Ids of assets whose metadata or thumbnails are missing and that have not failed, by id."""
    rows = db.scalars(select(Asset.id).where(
        Asset.id > after_id, Asset.job_error.is_(None),
        or_(Asset.metadata_at.is_(None), and_(Asset.thumbs_at.is_(None), Asset.kind != "other")),
    ).order_by(Asset.id).limit(limit))
    return list(rows)


def job_counts(db: Session) -> dict[str, int]:
    """done / waiting / failed assets for ``camroll admin jobs``."""
    incomplete = or_(Asset.metadata_at.is_(None), and_(Asset.thumbs_at.is_(None), Asset.kind != "other"))
    rows = db.execute(select(
        func.count(),
        func.coalesce(func.sum(case((Asset.job_error.is_not(None), 1), else_=0)), 0),
        func.coalesce(func.sum(case((and_(Asset.job_error.is_(None), incomplete), 1), else_=0)), 0),
    ).select_from(Asset)).one()
    total, failed, waiting = int(rows[0]), int(rows[1]), int(rows[2])
    return {"done": total - failed - waiting, "waiting": waiting, "failed": failed}


def recent_failures(db: Session, limit: int) -> Sequence[Row[int, str, str, str | None, datetime | None]]:
    return db.execute(
        select(Asset.id, User.username, Asset.filename, Asset.job_error, Asset.job_error_at)
        .join(User, User.id == Asset.user_id)
        .where(Asset.job_error.is_not(None))
        .order_by(Asset.job_error_at.desc(), Asset.id.desc()).limit(limit)
    ).all()


def set_trashed(db: Session, user_id: int, ids: Sequence[int], when: datetime | None) -> int:
    """Trash (``when`` set) or restore (``None``) the user's assets among ``ids``; returns how many
    changed.  A Live Photo's MOV follows its still without being counted."""
    changed = 0
    for i in range(0, len(ids), 500):
        part = list(ids[i:i + 500])
        state = Asset.trashed_at.is_(None) if when is not None else Asset.trashed_at.is_not(None)
        mine = (Asset.user_id == user_id, Asset.id.in_(part), state)
        partners = list(db.scalars(select(Asset.live_video_id).where(*mine, Asset.live_video_id.is_not(None))))
        res = db.execute(update(Asset).where(*mine).values(trashed_at=when).execution_options(
            synchronize_session=False))
        changed += cast(CursorResult[Any], res).rowcount or 0
        if partners:
            db.execute(update(Asset).where(Asset.user_id == user_id, Asset.id.in_(partners)).values(
                trashed_at=when).execution_options(synchronize_session=False))
    return changed


def trashed_before(db: Session, cutoff: datetime, limit: int) -> Sequence[Asset]:
    return db.scalars(select(Asset).where(Asset.trashed_at.is_not(None), Asset.trashed_at < cutoff)
                      .order_by(Asset.id).limit(limit)).all()


def sha_in_use(db: Session, sha256: str) -> bool:
    """Whether any asset row, or an upload whose bytes are on their way into the store, needs the blob."""
    if db.scalar(select(Asset.id).where(Asset.sha256 == sha256).limit(1)) is not None:
        return True
    return db.scalar(select(Upload.id).where(Upload.computed_sha256 == sha256, Upload.state == "active")
                     .limit(1)) is not None


def shas_in_use(db: Session, shas: list[str]) -> set[str]:
    """Which of ``shas`` an asset row (any user, trashed too) or an active upload that recorded its hash
    still needs: two indexed lookups for a batch instead of two per blob."""
    used = set(db.scalars(select(Asset.sha256).where(Asset.sha256.in_(shas)).distinct()))
    used.update(db.scalars(select(Upload.computed_sha256).where(Upload.computed_sha256.in_(shas),
                                                                Upload.state == "active")))
    return used


def delete_blob_row(db: Session, sha256: str) -> None:
    db.execute(delete(Blob).where(Blob.sha256 == sha256))


def usage(db: Session, user_id: int) -> tuple[dict[str, tuple[int, int]], int]:
    """(files, bytes) per kind of the user's live assets, and the bytes in their trash."""
    rows = db.execute(select(Asset.kind, func.count(), func.coalesce(func.sum(Asset.size), 0))
                      .where(Asset.user_id == user_id, Asset.trashed_at.is_(None)).group_by(Asset.kind))
    by_kind = {str(k): (int(n), int(b)) for k, n, b in rows}
    trashed = db.scalar(select(func.coalesce(func.sum(Asset.size), 0)).where(
        Asset.user_id == user_id, Asset.trashed_at.is_not(None)))
    return by_kind, int(trashed or 0)


def unreferenced_blobs(db: Session, limit: int) -> list[str]:
    """Blob rows no asset refers to (left by an interrupted purge)."""
    return list(db.scalars(select(Blob.sha256).where(~exists().where(Asset.sha256 == Blob.sha256)).limit(limit)))


def clear_failures(db: Session) -> list[int]:
    """Forget every recorded job failure; returns the ids of the assets that had one."""
    ids = list(db.scalars(select(Asset.id).where(Asset.job_error.is_not(None)).order_by(Asset.id)))
    if ids:
        db.execute(update(Asset).where(Asset.job_error.is_not(None)).values(job_error=None, job_error_at=None)
                   .execution_options(synchronize_session=False))
    return ids
