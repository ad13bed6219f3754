"""The library: hash check, asset pages, single assets and their originals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from camroll import wire
from camroll.server.api.deps import BackupCaller, Caller, Ctx, PathId
from camroll.server.problems import ProblemError
from camroll.server.repositories import assets as repo
from camroll.server.services import library
from camroll.server.storage.base import ReadStream

router = APIRouter()

_BINARY = {"schema": {"type": "string", "format": "binary"}}
# An original is sent with the type sniffed from its bytes at upload; a Motion Photo's video is MP4.
_ORIGINAL = {"content": {"image/*": _BINARY, "video/*": _BINARY, "application/octet-stream": _BINARY}}
_MOTION = {"content": {"video/mp4": _BINARY}}
_RANGE_DOC = {"description": "The requested byte range (a single Range header)."}

_READ = 1 * 2**20
# ASCII digits only: anything else is "malformed", and RFC 9110 lets us ignore it.
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
# A 64-bit size has at most 19 digits; a longer position is outside any file.
_MAX_DIGITS = 19


@router.post("/assets/check", response_model=wire.CheckResponse)
def check(ctx: Ctx, who: BackupCaller, body: wire.CheckRequest) -> wire.CheckResponse:
    return library.check(ctx, who, body)


@router.get("/assets", response_model=wire.AssetPage)
def list_assets(ctx: Ctx, who: Caller, cursor: str | None = None,
                limit: Annotated[int, Query(ge=1, le=library.MAX_LIMIT)] = library.DEFAULT_LIMIT,
                device_id: Annotated[int | None, Query(ge=1, le=wire.INT64_MAX,
                                                       description="Only assets this device holds.")] = None,
                album_id: Annotated[int | None, Query(ge=1, le=wire.INT64_MAX,
                                                      description="Only this album's items (and the videos "
                                                      "of its Live Photos).")] = None,
                since: Annotated[datetime | None, Query(description="Taken at or after (ISO 8601).")] = None,
                until: Annotated[datetime | None, Query(description="Taken before (ISO 8601).")] = None,
                trashed: Annotated[bool | None, Query(description="true: only the trash; false: none of "
                                                      "it; absent: both.")] = None,
                ) -> wire.AssetPage:
    """Every asset with the paths its devices recorded, newest id first (what a restore walks)."""
    listing = repo.Listing(device_id=device_id, album_id=album_id, start=_aware(since), end=_aware(until),
                           trashed=trashed)
    return library.page(ctx, who, cursor, limit, listing)


def _aware(t: datetime | None) -> datetime | None:
    """A time without a zone is UTC (the API's times all carry one; a hand-written query may not)."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single-range request, None for the whole file; 416 if unsatisfiable."""
    if header is None:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        # Multiple or malformed ranges: RFC 9110 lets us ignore Range and send the whole file.
        return None
    first, last = m.group(1), m.group(2)
    if len(first) > _MAX_DIGITS or len(last) > _MAX_DIGITS:
        raise ProblemError(416, "bad_request", f"The range {header[:60]}... has positions longer than "
                           f"{_MAX_DIGITS} digits, outside this {size}-byte file.",
                           "Ask for bytes between 0 and size-1.", headers={"Content-Range": f"bytes */{size}"})
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
    else:
        start, end = max(0, size - int(last)), size - 1
        if int(last) == 0:
            start = size
    if start >= size:
        raise ProblemError(416, "bad_request", f"The range {header} lies outside this {size}-byte file.",
                           "Ask for bytes between 0 and size-1.", headers={"Content-Range": f"bytes */{size}"})
    return start, end


def _stream(reader: ReadStream) -> Iterator[bytes]:
    try:
        while block := reader.read(_READ):
            yield block
    finally:
        reader.close()


def _ranged(ctx: Ctx, sha256: str, offset: int, size: int, media_type: str, etag: str,
            range_: str | None, if_range: str | None, headers: dict[str, str]) -> Response:
    """Stream the ``size`` bytes at ``offset`` of blob ``sha256`` as one resource, honouring a single Range."""
    if if_range is not None and if_range.strip() != etag:
        range_ = None
    span = _byte_range(range_, size)
    headers = {**headers, "ETag": etag, "Accept-Ranges": "bytes"}
    if span is None:
        headers["Content-Length"] = str(size)
        reader = ctx.blobs.open(sha256) if offset == 0 else ctx.blobs.open(sha256, offset, size)
        return StreamingResponse(_stream(reader), media_type=media_type, headers=headers)
    start, end = span
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(_stream(ctx.blobs.open(sha256, offset + start, end - start + 1)), status_code=206,
                             media_type=media_type, headers=headers)


@router.get("/assets/{asset_id}/original", response_class=StreamingResponse,
            responses={200: _ORIGINAL, 206: {**_RANGE_DOC, **_ORIGINAL}, 416: {"description": "Range Not Satisfiable"}})
def original(ctx: Ctx, who: Caller, asset_id: PathId,
             range_: Annotated[str | None, Header(alias="Range")] = None,
             if_range: Annotated[str | None, Header(alias="If-Range")] = None,
             replica: Annotated[str | None, Query(max_length=64, description="Read the copy on this replica "
                                                  "instead of the primary store (whole file, no Range): "
                                                  "a restore when the primary is damaged.")] = None,
             ) -> Response:
    asset = library.original(ctx, who, asset_id)
    disposition = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(asset.filename)}"}
    if replica is not None:
        reader = library.replica_copy(ctx, replica, asset)
        return StreamingResponse(_stream(reader), media_type=asset.mime or "application/octet-stream",
                                 headers={**disposition, "Content-Length": str(asset.size),
                                          "ETag": f'"{asset.sha256}"'})
    return _ranged(ctx, asset.sha256, 0, asset.size, asset.mime or "application/octet-stream",
                   f'"{asset.sha256}"', range_, if_range, disposition)


@router.get("/assets/{asset_id}/motion", response_class=StreamingResponse,
            responses={200: _MOTION, 206: {**_RANGE_DOC, **_MOTION}, 416: {"description": "Range Not Satisfiable"}})
def motion(ctx: Ctx, who: Caller, asset_id: PathId,
           range_: Annotated[str | None, Header(alias="Range")] = None,
           if_range: Annotated[str | None, Header(alias="If-Range")] = None) -> Response:
    """The MP4 embedded in a Motion Photo, as its own video (the bytes recorded by the metadata job)."""
    asset = library.original(ctx, who, asset_id)
    offset, length = asset.motion_video_offset, asset.motion_video_length
    if offset is None or not length or offset + length > asset.size:
        raise ProblemError(404, "not_found", f"Asset {asset_id} has no embedded Motion Photo video.",
                           "Only Motion Photos have one; GET /api/v1/assets/{id} shows motion_video_length.")
    return _ranged(ctx, asset.sha256, offset, length, "video/mp4", f'"{asset.sha256}-motion"', range_, if_range,
                   {"Content-Disposition": "inline"})
