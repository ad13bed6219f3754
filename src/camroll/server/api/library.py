"""The library the web UI browses: timeline, asset details, thumbnails, trash, zip downloads, storage.

Included before ``api/assets.py`` so that ``/assets/zip`` is not taken for an asset id."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from camroll import wire
from camroll.server.api.deps import Caller, Ctx, PathId
from camroll.server.problems import ProblemError
from camroll.server.repositories.assets import Filters
from camroll.server.services import archive, library, media, storage_use, timeline, trash
from camroll.server.storage.base import BlobNotFound, ReadStream

router = APIRouter()

_IMMUTABLE = "private, max-age=31536000, immutable"
_THUMB_READ = 256 * 2**10
Limit = Annotated[int, Query(ge=1, le=wire.MAX_TIMELINE_LIMIT)]


def _filters(from_: str | None, to: str | None, kind: Literal["image", "video"] | None, camera: str | None,
             device: int | None, *, trashed: bool = False) -> Filters:
    return Filters(start=timeline.parse_bound(from_, "from", end=False), end=timeline.parse_bound(to, "to", end=True),
                   kind=kind, camera=camera or None, device_id=device, trashed=trashed)


@router.get("/timeline", response_model=wire.TimelinePage)
def get_timeline(ctx: Ctx, who: Caller, cursor: str | None = None, limit: Limit = timeline.DEFAULT_LIMIT,
                 from_: Annotated[str | None, Query(alias="from", description="YYYY-MM-DD or ISO time")] = None,
                 to: Annotated[str | None, Query(description="YYYY-MM-DD (inclusive) or ISO time")] = None,
                 kind: Literal["image", "video"] | None = None,
                 camera: Annotated[str | None, Query(max_length=wire.MAX_CODE * 2,
                                                      description="Camera make, model or 'make model'")] = None,
                 device: Annotated[int | None, Query(ge=1, le=wire.INT64_MAX,
                                                     description="Only assets this device id holds")] = None,
                 ) -> wire.TimelinePage:
    """Newest first by capture time, grouped by day; a Live Photo's MOV is folded into its still."""
    return timeline.page(ctx, who, _filters(from_, to, kind, camera, device), cursor, limit)


@router.get("/trash", response_model=wire.TimelinePage)
def get_trash(ctx: Ctx, who: Caller, cursor: str | None = None, limit: Limit = timeline.DEFAULT_LIMIT,
              ) -> wire.TimelinePage:
    """Trashed assets, listed like the timeline; purged after the retention period."""
    return timeline.page(ctx, who, _filters(None, None, None, None, None, trashed=True), cursor, limit)


@router.post("/assets/trash", response_model=wire.TrashResult)
def trash_assets(ctx: Ctx, who: Caller, body: wire.AssetIds) -> wire.TrashResult:
    return trash.trash(ctx, who, body.ids)


@router.post("/assets/restore", response_model=wire.TrashResult)
def restore_assets(ctx: Ctx, who: Caller, body: wire.AssetIds) -> wire.TrashResult:
    return trash.restore(ctx, who, body.ids)


def _zip(ctx: Ctx, who: Caller, ids: list[int]) -> StreamingResponse:
    items = archive.entries(ctx, who, ids)
    return StreamingResponse(archive.stream(ctx, items), media_type="application/zip",
                             headers={"Content-Disposition": 'attachment; filename="camroll.zip"'})


# The web UI links up to 300 ids (longer selections are POSTed).  The HTTP layer refuses a request
# line over 64 KiB with a plain-text 400 before camroll sees it, and one character can take 12 bytes
# percent-encoded: 5,000 characters always reach camroll and its problem document.
MAX_ZIP_LINK = 5000
_ZIP: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("/assets/zip", response_class=StreamingResponse, responses=_ZIP)
def zip_post(ctx: Ctx, who: Caller, body: wire.AssetIds) -> StreamingResponse:
    """The originals of ``ids`` as one streamed zip (stored, ZIP64, names made unique)."""
    return _zip(ctx, who, body.ids)


@router.get("/assets/zip", response_class=StreamingResponse, responses=_ZIP)
def zip_get(ctx: Ctx, who: Caller,
            ids: Annotated[str, Query(max_length=MAX_ZIP_LINK,
                                      description="Comma-separated asset ids, e.g. 1,2,3")]) -> StreamingResponse:
    """Like POST /assets/zip, for a plain download link (longer lists: POST)."""
    parts = [p for p in ids.split(",", wire.MAX_ASSET_IDS + 1) if p.strip()]
    try:
        parsed = [wire.parse_int64(p) for p in parts]
    except ValueError:
        parsed = []
    if not parsed or len(parsed) > wire.MAX_ASSET_IDS or min(parsed) < 1:
        raise ProblemError(400, "bad_request", f"ids={ids[:100]!r} is not a list of 1 to 10,000 asset ids.",
                           "Pass ids as comma-separated numbers, e.g. ?ids=1,2,3.")
    return _zip(ctx, who, parsed)


@router.get("/assets/{asset_id}", response_model=wire.AssetDetail)
def get_asset(ctx: Ctx, who: Caller, asset_id: PathId) -> wire.AssetDetail:
    """The asset, where devices hold it, its metadata and its background-job state."""
    return library.detail(ctx, who, asset_id)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


@router.get("/assets/{asset_id}/thumbnail", response_class=StreamingResponse,
            responses={200: {"content": {"image/webp": {}}}, 304: {"description": "Not modified"}})
def thumbnail(ctx: Ctx, who: Caller, asset_id: PathId, size: wire.ThumbSize = "grid",
              if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None) -> Response:
    """A WebP thumbnail (grid ~250 px, preview ~1440 px); the same bytes forever, so cache them."""
    asset = library.original(ctx, who, asset_id)
    from camroll.media.thumbs import VERSION

    etag = f'"{asset.sha256}-{size}-v{VERSION}"'
    headers = {"ETag": etag, "Cache-Control": _IMMUTABLE}
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    found = None
    if asset.thumbs_at is not None:
        with contextlib.suppress(BlobNotFound):
            found = media.thumb_store(ctx).open(asset.sha256, size)
    if found is None:
        if asset.kind == "other":
            raise ProblemError(404, "not_found", f"Asset {asset_id} is not a photo or video, so it has no thumbnail.",
                               f"Show a file icon; the file itself is at /api/v1/assets/{asset_id}/original.")
        if asset.job_error:
            raise ProblemError(404, "not_found", f"Asset {asset_id} has no thumbnail: {asset.job_error}",
                               "The original can still be downloaded; an admin sees the failure in "
                               "'camroll admin jobs'.")
        if asset.thumbs_at is not None:
            # Recorded as made but the file is gone (deleted, or made by an older recipe): make it again.
            ctx.work.redo(asset.id)
        raise ProblemError(404, "not_found", f"The thumbnail of asset {asset_id} is not ready yet.",
                           "Retry in a few seconds: the server makes thumbnails in the background after an upload.")
    stream, length = found
    headers["Content-Length"] = str(length)
    return StreamingResponse(_chunks(stream), media_type=media.THUMB_MIME, headers=headers)


def _chunks(stream: ReadStream) -> Iterator[bytes]:
    try:
        while block := stream.read(_THUMB_READ):
            yield block
    finally:
        stream.close()


@router.get("/storage", response_model=wire.StorageInfo)
def get_storage(ctx: Ctx, who: Caller) -> wire.StorageInfo:
    """Bytes stored against the quota, by kind, and how many of them are in the trash; for an admin, the
    replicas' backlog too."""
    info = storage_use.info(ctx, who)
    if who.is_admin:
        from camroll.server.replicas.status import backlogs

        info.replicas = backlogs(ctx)
    return info
