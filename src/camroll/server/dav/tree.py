"""A device's WebDAV tree in the database: its files are the asset file rows the device recorded (the
newest row at a path wins, trashed assets are hidden), its empty folders the ``dav_folders`` rows MKCOL
made.  Reads and writes only; the rules live in provider.py."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, func, insert, select, update
from sqlalchemy.orm import Session

from camroll.server.models import Asset, AssetFile, DavFolder, utcnow
from camroll.server.repositories import assets as asset_repo

# A folder listed in one PROPFIND: more would make one answer of tens of megabytes.
MAX_LISTING = 100_000
# Files one MOVE, COPY or DELETE of a folder may touch in one transaction.
MAX_TREE_CHANGE = 100_000


class TooLarge(Exception):
    """A folder holds more entries than one request may list or change."""


@dataclass(frozen=True)
class File:
    path: str
    row_id: int
    asset_id: int
    sha256: str
    size: int
    mime: str | None
    mtime_ns: int | None
    recorded_at: datetime | None
    created_at: datetime


def _under(prefix: str) -> ColumnElement[bool]:
    return func.substr(AssetFile.path, 1, len(prefix) + 1) == prefix + "/"


_FILE_COLUMNS = (AssetFile.path, AssetFile.id, AssetFile.asset_id, Asset.sha256, Asset.size, Asset.mime,
                 AssetFile.mtime_ns, AssetFile.created_at, Asset.created_at)


def _file(row: Any) -> File:
    return File(row[0], int(row[1]), int(row[2]), row[3], int(row[4]), row[5],
                None if row[6] is None else int(row[6]), row[7], row[8])


def _live(device_id: int) -> list[ColumnElement[bool]]:
    return [AssetFile.device_id == device_id, Asset.trashed_at.is_(None)]


def file_at(conn: Connection, device_id: int, path: str) -> File | None:
    row = conn.execute(select(*_FILE_COLUMNS).join(Asset, Asset.id == AssetFile.asset_id)
                       .where(*_live(device_id), AssetFile.path == path)
                       .order_by(AssetFile.id.desc()).limit(1)).first()
    return None if row is None else _file(row)


def files_under(conn: Connection, device_id: int, prefix: str, limit: int = MAX_LISTING) -> dict[str, File]:
    """Every live file at or below folder ``prefix`` ("" = the device's root), newest row per path."""
    q = select(*_FILE_COLUMNS).join(Asset, Asset.id == AssetFile.asset_id).where(*_live(device_id))
    if prefix:
        q = q.where(_under(prefix))
    out: dict[str, File] = {}
    for row in conn.execute(q.order_by(AssetFile.id).limit(limit + 1)):
        out[row[0]] = _file(row)
    if len(out) > limit:
        raise TooLarge(f"more than {limit} files below '{prefix or '/'}'")
    return out


def folders_under(conn: Connection, device_id: int, prefix: str) -> list[str]:
    q = select(DavFolder.path).where(DavFolder.device_id == device_id)
    if prefix:
        q = q.where(func.substr(DavFolder.path, 1, len(prefix) + 1) == prefix + "/")
    return list(conn.scalars(q.limit(MAX_LISTING + 1)))


def is_folder(conn: Connection, device_id: int, path: str) -> bool:
    if not path:
        return True
    if conn.scalar(select(DavFolder.id).where(DavFolder.device_id == device_id, DavFolder.path == path)):
        return True
    return conn.scalar(select(AssetFile.id).join(Asset, Asset.id == AssetFile.asset_id)
                       .where(*_live(device_id), _under(path)).limit(1)) is not None


def children(conn: Connection, device_id: int, path: str) -> tuple[set[str], dict[str, File]]:
    """The folder's member folders (names) and files (name -> file)."""
    cut = len(path) + 1 if path else 0
    folders: set[str] = set()
    files: dict[str, File] = {}
    for p, f in files_under(conn, device_id, path).items():
        rest = p[cut:]
        if "/" in rest:
            folders.add(rest.split("/", 1)[0])
        else:
            files[rest] = f
    for p in folders_under(conn, device_id, path):
        folders.add(p[cut:].split("/", 1)[0])
    return folders - set(files), files


def make_folder(conn: Connection, device_id: int, path: str) -> None:
    conn.execute(insert(DavFolder).values(device_id=device_id, path=path, created_at=utcnow()))


def _renamed(path: str, src: str, dst: str) -> str:
    return dst + path[len(src):]


def move(conn: Connection, device_id: int, src: str, dst: str, *, folder: bool) -> None:
    """Every row at ``src`` (and below it, for a folder) now says ``dst``: trashed ones too, so a restore
    brings a file back where it was moved to."""
    rows: Iterable[Any]
    where = [AssetFile.device_id == device_id]
    rows = conn.execute(select(AssetFile.id, AssetFile.path).where(
        *where, _under(src) if folder else AssetFile.path == src).limit(MAX_TREE_CHANGE + 1)).all()
    if len(list(rows)) > MAX_TREE_CHANGE:
        raise TooLarge(f"more than {MAX_TREE_CHANGE} files below '{src}'")
    for row_id, p in rows:
        new = _renamed(p, src, dst) if folder else dst
        conn.execute(update(AssetFile).where(AssetFile.id == row_id).values(
            path=new, filename=new.rsplit("/", 1)[-1]))
    if folder:
        for fid, p in conn.execute(select(DavFolder.id, DavFolder.path).where(
                DavFolder.device_id == device_id,
                (DavFolder.path == src) | (func.substr(DavFolder.path, 1, len(src) + 1) == src + "/"))).all():
            conn.execute(update(DavFolder).where(DavFolder.id == fid).values(path=_renamed(p, src, dst)))


def copy(conn: Connection, device_id: int, src: str, dst: str, *, folder: bool) -> None:
    """New rows at ``dst`` for the live files at ``src`` (below it, for a folder): the same assets."""
    files = files_under(conn, device_id, src, MAX_TREE_CHANGE) if folder else {}
    if not folder:
        f = file_at(conn, device_id, src)
        files = {src: f} if f is not None else {}
    for p, f in files.items():
        new = _renamed(p, src, dst) if folder else dst
        asset_repo.record_file_core(conn, f.asset_id, device_id, new, new.rsplit("/", 1)[-1], f.mtime_ns)
    if folder:
        make_folder(conn, device_id, dst)
        for p in folders_under(conn, device_id, src):
            make_folder(conn, device_id, _renamed(p, src, dst))


def drop_folders(conn: Connection, device_id: int, path: str) -> None:
    conn.execute(delete(DavFolder).where(
        DavFolder.device_id == device_id,
        (DavFolder.path == path) | (func.substr(DavFolder.path, 1, len(path) + 1) == path + "/")))


def drop_other_rows(conn: Connection, device_id: int, path: str, asset_id: int) -> None:
    """After a PUT replaced the file at ``path``: the path now means the new asset only (the old asset
    stays in the library, under its other paths and in the timeline)."""
    conn.execute(delete(AssetFile).where(AssetFile.device_id == device_id, AssetFile.path == path,
                                         AssetFile.asset_id != asset_id))


def set_mtime(conn: Connection, row_id: int, mtime_ns: int) -> None:
    conn.execute(update(AssetFile).where(AssetFile.id == row_id).values(mtime_ns=mtime_ns))


def trashed_asset_at(db: Session, device_id: int, path: str, asset_id: int) -> bool:
    a = db.get(Asset, asset_id)
    return a is not None and a.trashed_at is not None
