"""Albums: named sets of a user's assets, with a cover.

Rules: a name is 1-200 characters after trimming, without control characters, unique per user; a user
has at most ``wire.MAX_ALBUMS_PER_USER`` albums of at most ``wire.MAX_ALBUM_ITEMS`` items.  Deleting an
album or removing items never touches an asset.  A trashed asset stays a member but is not shown (nor
counted, nor the cover) until it is restored; purging it removes the membership (the item rows cascade).
Another user's album ids are answered exactly like missing ones, and another user's asset ids are
skipped like unknown ones: nothing tells them apart.

:func:`fill` is the entry point for importers (a Google Takeout album folder): create-or-get the album
by name, then add assets, idempotently."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from camroll import wire
from camroll.server.context import Context
from camroll.server.models import Album, utcnow
from camroll.server.problems import ProblemError
from camroll.server.repositories import albums as repo
from camroll.server.repositories.assets import Filters
from camroll.server.services import timeline
from camroll.server.services.auth import Principal

_LIST_FIX = "List your albums with GET /api/v1/albums (or 'camroll admin album list USER')."


def clean_name(name: str) -> str:
    """The name as stored: trimmed; refused if empty, too long or holding control characters."""
    text = name.strip()
    if not text:
        raise ProblemError(400, "bad_request", "An album name cannot be empty or only spaces.",
                           "Give the album a name, e.g. 'Summer 2024'.")
    if len(text) > wire.MAX_ALBUM_NAME:
        raise ProblemError(400, "bad_request", f"The album name is {len(text)} characters long; at most "
                           f"{wire.MAX_ALBUM_NAME} are allowed.", "Choose a shorter name.")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text):
        raise ProblemError(400, "bad_request", "The album name holds control or invisible format characters.",
                           "Use letters, digits, spaces and punctuation only.")
    return text


def _missing(album_id: int) -> ProblemError:
    return ProblemError(404, "not_found", f"You have no album with id {album_id}.", _LIST_FIX)


def _taken(name: str) -> ProblemError:
    return ProblemError(409, "conflict", f"You already have an album named {name!r}.",
                        "Choose another name, or add the items to that album.")


def own_album(db: Session, who: Principal, album_id: int) -> Album:
    album = repo.get(db, who.user_id, album_id)
    if album is None:
        raise _missing(album_id)
    return album


def _infos(db: Session, albums: Sequence[Album]) -> list[wire.AlbumInfo]:
    ids = [a.id for a in albums]
    counts = repo.shown_counts(db, ids)
    newest = repo.newest_shown(db, ids)
    chosen = repo.shown_among(db, [a.cover_asset_id for a in albums if a.cover_asset_id is not None])
    out = []
    for a in albums:
        picked = a.cover_asset_id is not None and a.cover_asset_id in chosen
        out.append(wire.AlbumInfo(id=a.id, name=a.name, item_count=counts[a.id],
                                  cover_asset_id=a.cover_asset_id if picked else newest.get(a.id),
                                  cover_chosen=picked, created_at=a.created_at, updated_at=a.updated_at))
    return out


def list_albums(ctx: Context, who: Principal) -> list[wire.AlbumInfo]:
    """Every album of the caller's, by name (bounded by MAX_ALBUMS_PER_USER)."""
    with ctx.db() as db:
        return _infos(db, repo.of_user(db, who.user_id))


def get(ctx: Context, who: Principal, album_id: int) -> wire.AlbumInfo:
    with ctx.db() as db:
        return _infos(db, [own_album(db, who, album_id)])[0]


def _add(db: Session, who: Principal, album: Album, ids: Sequence[int]) -> int:
    wanted = repo.addable(db, who.user_id, ids)
    if not wanted:
        return 0
    have = repo.item_count(db, album.id)
    if have + len(wanted) > wire.MAX_ALBUM_ITEMS:
        raise ProblemError(409, "conflict", f"Album {album.name!r} has {have:,} items; adding {len(wanted):,} "
                           f"would pass the limit of {wire.MAX_ALBUM_ITEMS:,} items in one album.",
                           "Put the rest in another album.")
    added = repo.add_items(db, album.id, wanted, utcnow())
    if added:
        album.updated_at = utcnow()
    return added


def _create(db: Session, who: Principal, name: str) -> tuple[Album, bool]:
    """The caller's album named ``name`` and whether it is new; refused past the per-user limit."""
    found = repo.by_name(db, who.user_id, name)
    if found is not None:
        return found, False
    if repo.count_of_user(db, who.user_id) >= wire.MAX_ALBUMS_PER_USER:
        raise ProblemError(409, "conflict", f"You have {wire.MAX_ALBUMS_PER_USER:,} albums, the most one user may "
                           "have.", "Delete albums you no longer need, or add to an existing one.")
    created = repo.insert_if_new(db, who.user_id, name, utcnow())
    album = repo.by_name(db, who.user_id, name)
    assert album is not None
    return album, created


def create(ctx: Context, who: Principal, body: wire.AlbumCreate) -> wire.AlbumInfo:
    name = clean_name(body.name)
    with ctx.db() as db:
        album, created = _create(db, who, name)
        if not created:
            raise _taken(name)
        _add(db, who, album, body.ids)
        db.flush()
        return _infos(db, [album])[0]


def update(ctx: Context, who: Principal, album_id: int, body: wire.AlbumUpdate) -> wire.AlbumInfo:
    """Rename, choose a cover (an item of the album), or go back to the automatic cover."""
    name = None if body.name is None else clean_name(body.name)
    with ctx.db() as db:
        album = own_album(db, who, album_id)
        if name is not None and name != album.name:
            other = repo.by_name(db, who.user_id, name)
            if other is not None:
                raise _taken(name)
            album.name = name
        if body.clear_cover:
            album.cover_asset_id = None
        elif body.cover_asset_id is not None:
            if not repo.is_item(db, album.id, body.cover_asset_id):
                raise ProblemError(400, "bad_request", f"Asset {body.cover_asset_id} is not in album {album.name!r}, "
                                   "so it cannot be its cover.", "Add it to the album first, or pick one of its items.")
            album.cover_asset_id = body.cover_asset_id
        album.updated_at = utcnow()
        db.flush()
        return _infos(db, [album])[0]


def delete(ctx: Context, who: Principal, album_id: int) -> None:
    """The album goes; every photo in it stays in the library."""
    with ctx.db() as db:
        repo.delete_album(db, own_album(db, who, album_id))


def add(ctx: Context, who: Principal, album_id: int, ids: Sequence[int]) -> wire.AlbumChange:
    with ctx.db() as db:
        album = own_album(db, who, album_id)
        added = _add(db, who, album, ids)
        db.flush()
        return wire.AlbumChange(changed=added, album=_infos(db, [album])[0])


def remove(ctx: Context, who: Principal, album_id: int, ids: Sequence[int]) -> wire.AlbumChange:
    """Take items out of the album (never out of the library); a removed cover falls back to the newest."""
    with ctx.db() as db:
        album = own_album(db, who, album_id)
        removed = repo.remove_items(db, album.id, ids)
        if album.cover_asset_id is not None and album.cover_asset_id in set(ids):
            album.cover_asset_id = None
        if removed:
            album.updated_at = utcnow()
        db.flush()
        return wire.AlbumChange(changed=removed, album=_infos(db, [album])[0])


def items(ctx: Context, who: Principal, album_id: int, cursor: str | None, limit: int) -> wire.TimelinePage:
    """The album's shown items, listed like the timeline (newest capture time first, by day)."""
    with ctx.db() as db:
        own_album(db, who, album_id)
    return timeline.page(ctx, who, Filters(album_id=album_id), cursor, limit)


@dataclass(frozen=True)
class Filled:
    album_id: int
    created: bool
    added: int


def fill(ctx: Context, user_id: int, name: str, asset_ids: Sequence[int]) -> Filled:
    """For importers: the user's album named ``name`` (made if new), with ``asset_ids`` added.

    Idempotent (running an import again adds nothing twice); assets that are not the user's, or are in
    the trash, are skipped; the bounds are the API's (raises ProblemError with the sentence)."""
    who = Principal(user_id=user_id, username="", is_admin=False, device_id=None)
    name = clean_name(name)
    with ctx.db() as db:
        album, created = _create(db, who, name)
        added = 0
        ids = list(asset_ids)
        for i in range(0, len(ids), wire.MAX_ASSET_IDS):
            added += _add(db, who, album, ids[i:i + wire.MAX_ASSET_IDS])
        return Filled(album_id=album.id, created=created, added=added)
