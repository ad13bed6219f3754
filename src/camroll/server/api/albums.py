"""Albums: ``/api/v1/albums``.  A login session only (like the rest of the library); another user's
album ids are answered like missing ones."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from camroll import wire
from camroll.server.api.deps import Caller, Ctx, PathId
from camroll.server.services import albums, timeline

router = APIRouter(prefix="/albums", tags=["albums"])
Limit = Annotated[int, Query(ge=1, le=wire.MAX_TIMELINE_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=timeline.MAX_CURSOR)]


@router.get("", response_model=list[wire.AlbumInfo])
def list_albums(ctx: Ctx, who: Caller) -> list[wire.AlbumInfo]:
    """Your albums by name, each with its item count and cover."""
    return albums.list_albums(ctx, who)


@router.post("", response_model=wire.AlbumInfo, status_code=201)
def create_album(ctx: Ctx, who: Caller, body: wire.AlbumCreate) -> wire.AlbumInfo:
    """A new album, optionally with items; a name you already use is 409."""
    return albums.create(ctx, who, body)


@router.get("/{album_id}", response_model=wire.AlbumInfo)
def get_album(ctx: Ctx, who: Caller, album_id: PathId) -> wire.AlbumInfo:
    return albums.get(ctx, who, album_id)


@router.patch("/{album_id}", response_model=wire.AlbumInfo)
def update_album(ctx: Ctx, who: Caller, album_id: PathId, body: wire.AlbumUpdate) -> wire.AlbumInfo:
    """Rename it, or choose its cover (or clear_cover to show the newest item)."""
    return albums.update(ctx, who, album_id, body)


@router.delete("/{album_id}", status_code=204, response_class=Response)
def delete_album(ctx: Ctx, who: Caller, album_id: PathId) -> Response:
    """The album goes; the photos in it stay in your library."""
    albums.delete(ctx, who, album_id)
    return Response(status_code=204)


@router.get("/{album_id}/items", response_model=wire.TimelinePage)
def album_items(ctx: Ctx, who: Caller, album_id: PathId, cursor: Cursor = None,
                limit: Limit = timeline.DEFAULT_LIMIT) -> wire.TimelinePage:
    """The album's items like the timeline: newest first, by day; items in the trash are left out."""
    return albums.items(ctx, who, album_id, cursor, limit)


@router.post("/{album_id}/items", response_model=wire.AlbumChange)
def add_items(ctx: Ctx, who: Caller, album_id: PathId, body: wire.AssetIds) -> wire.AlbumChange:
    """Add your assets (ids already in it, in the trash or not yours are skipped and not counted)."""
    return albums.add(ctx, who, album_id, body.ids)


@router.post("/{album_id}/items/remove", response_model=wire.AlbumChange)
def remove_items(ctx: Ctx, who: Caller, album_id: PathId, body: wire.AssetIds) -> wire.AlbumChange:
    """Take items out of the album; they stay in your library."""
    return albums.remove(ctx, who, album_id, body.ids)
