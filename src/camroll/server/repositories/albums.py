"""Albums and their items: DB reads and writes only (the rules are in services/albums.py).

An item row's existence is the membership; which items an album *shows* is decided here too, in one
place: assets not in the trash, and not the hidden MOV half of a Live Photo (as the timeline)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, Table, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from camroll.server.models import Album, AlbumItem, Asset

_ITEMS = cast(Table, AlbumItem.__table__)
_ALBUMS = cast(Table, Album.__table__)
# Both dialects spell ON CONFLICT DO NOTHING alike; the unique index decides, not a read before.
_ITEM_INSERT = {name: ins(_ITEMS).on_conflict_do_nothing(index_elements=["album_id", "asset_id"])
                for name, ins in (("sqlite", sqlite_insert), ("postgresql", pg_insert))}
_ALBUM_INSERT = {name: ins(_ALBUMS).on_conflict_do_nothing(index_elements=["user_id", "name"])
                 for name, ins in (("sqlite", sqlite_insert), ("postgresql", pg_insert))}
_CHUNK = 500  # ids per IN list: under every backend's bound-parameter limit


def _shown() -> list[ColumnElement[bool]]:
    return [Asset.trashed_at.is_(None), Asset.live_of_id.is_(None)]


def of_user(db: Session, user_id: int) -> Sequence[Album]:
    return db.scalars(select(Album).where(Album.user_id == user_id).order_by(func.lower(Album.name), Album.id)).all()


def get(db: Session, user_id: int, album_id: int) -> Album | None:
    """The user's album; another user's id is answered exactly like a missing one."""
    return db.scalars(select(Album).where(Album.id == album_id, Album.user_id == user_id)).first()


def by_name(db: Session, user_id: int, name: str) -> Album | None:
    return db.scalars(select(Album).where(Album.user_id == user_id, Album.name == name)).first()


def count_of_user(db: Session, user_id: int) -> int:
    return int(db.scalar(select(func.count()).select_from(Album).where(Album.user_id == user_id)) or 0)


def insert_if_new(db: Session, user_id: int, name: str, now: datetime) -> bool:
    """Insert the album unless the user has one of that name (two racing creators: one row)."""
    conn = db.connection()
    result = conn.execute(_ALBUM_INSERT[conn.dialect.name],
                          {"user_id": user_id, "name": name, "created_at": now, "updated_at": now})
    return bool(result.rowcount)


def shown_counts(db: Session, album_ids: Sequence[int]) -> dict[int, int]:
    out = dict.fromkeys(album_ids, 0)
    for i in range(0, len(album_ids), _CHUNK):
        rows = db.execute(select(AlbumItem.album_id, func.count()).join(Asset, Asset.id == AlbumItem.asset_id)
                          .where(AlbumItem.album_id.in_(album_ids[i:i + _CHUNK]), *_shown())
                          .group_by(AlbumItem.album_id))
        out.update({int(a): int(n) for a, n in rows})
    return out


def newest_shown(db: Session, album_ids: Sequence[int]) -> dict[int, int]:
    """Each album's newest shown item (by capture time): the cover when none is chosen."""
    out: dict[int, int] = {}
    for i in range(0, len(album_ids), _CHUNK):
        ranked = (select(AlbumItem.album_id, AlbumItem.asset_id,
                         func.row_number().over(partition_by=AlbumItem.album_id,
                                                order_by=(Asset.taken_at.desc(), Asset.id.desc())).label("n"))
                  .join(Asset, Asset.id == AlbumItem.asset_id)
                  .where(AlbumItem.album_id.in_(album_ids[i:i + _CHUNK]), *_shown()).subquery())
        rows = db.execute(select(ranked.c.album_id, ranked.c.asset_id).where(ranked.c.n == 1))
        out.update({int(a): int(s) for a, s in rows})
    return out


def shown_among(db: Session, asset_ids: Sequence[int]) -> set[int]:
    """Which of ``asset_ids`` an album would show now (not trashed)."""
    out: set[int] = set()
    for i in range(0, len(asset_ids), _CHUNK):
        out.update(int(x) for x in db.scalars(select(Asset.id).where(Asset.id.in_(asset_ids[i:i + _CHUNK]),
                                                                        *_shown())))
    return out


def addable(db: Session, user_id: int, asset_ids: Sequence[int]) -> list[int]:
    """The user's assets among ``asset_ids`` that may go into an album: not trashed (unknown ids and
    another user's are left out, so they tell nothing)."""
    wanted = list(dict.fromkeys(asset_ids))
    found: set[int] = set()
    for i in range(0, len(wanted), _CHUNK):
        found.update(int(x) for x in db.scalars(select(Asset.id).where(
            Asset.user_id == user_id, Asset.id.in_(wanted[i:i + _CHUNK]), Asset.trashed_at.is_(None))))
    return [a for a in wanted if a in found]


def item_count(db: Session, album_id: int) -> int:
    """Every membership row, shown or not (what the per-album bound counts)."""
    return int(db.scalar(select(func.count()).select_from(AlbumItem).where(AlbumItem.album_id == album_id)) or 0)


def is_item(db: Session, album_id: int, asset_id: int) -> bool:
    return db.scalar(select(AlbumItem.asset_id).where(AlbumItem.album_id == album_id,
                                                      AlbumItem.asset_id == asset_id)) is not None


def add_items(db: Session, album_id: int, asset_ids: Sequence[int], now: datetime) -> int:
    """Insert the missing item rows; returns how many rows the album gained (the rowcount of an
    executemany with ON CONFLICT is not reliable on every driver, the album's count is)."""
    conn = db.connection()
    stmt = _ITEM_INSERT[conn.dialect.name]
    before = item_count(db, album_id)
    for i in range(0, len(asset_ids), _CHUNK):
        conn.execute(stmt, [{"album_id": album_id, "asset_id": a, "added_at": now} for a in asset_ids[i:i + _CHUNK]])
    return item_count(db, album_id) - before


def remove_items(db: Session, album_id: int, asset_ids: Sequence[int]) -> int:
    removed = 0
    wanted = list(dict.fromkeys(asset_ids))
    for i in range(0, len(wanted), _CHUNK):
        result = db.execute(delete(AlbumItem).where(AlbumItem.album_id == album_id,
                                                    AlbumItem.asset_id.in_(wanted[i:i + _CHUNK])))
        removed += int(getattr(result, "rowcount", 0) or 0)
    return removed


def delete_album(db: Session, album: Album) -> None:
    """The album and its item rows; the assets stay."""
    db.execute(delete(AlbumItem).where(AlbumItem.album_id == album.id))
    db.delete(album)
