"""The library: hash check, asset pages, single assets and their originals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from camroll import wire
from camroll.server.api.deps import Caller, Ctx
from camroll.server.problems import ProblemError
from camroll.server.services import library
from camroll.server.storage.base import ReadStream

router = APIRouter()

_READ = 1 * 2**20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@router.post("/assets/check", response_model=wire.CheckResponse)
def check(ctx: Ctx, who: Caller, body: wire.CheckRequest) -> wire.CheckResponse:
    return library.check(ctx, who, body)


@router.get("/assets", response_model=wire.AssetPage)
def list_assets(ctx: Ctx, who: Caller, cursor: str | None = None,
                limit: Annotated[int, Query(ge=1, le=library.MAX_LIMIT)] = library.DEFAULT_LIMIT
                ) -> wire.AssetPage:
    return library.page(ctx, who, cursor, limit)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single-range request, None for the whole file; 416 if unsatisfiable."""
    if header is None:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        # Multiple or malformed ranges: RFC 9110 lets us ignore Range and send the whole file.
        return None
    first, last = m.group(1), m.group(2)
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


@router.get("/assets/{asset_id}/original")
def original(ctx: Ctx, who: Caller, asset_id: int,
             range_: Annotated[str | None, Header(alias="Range")] = None,
             if_range: Annotated[str | None, Header(alias="If-Range")] = None) -> Response:
    asset = library.original(ctx, who, asset_id)
    etag = f'"{asset.sha256}"'
    if if_range is not None and if_range.strip() != etag:
        range_ = None
    span = _byte_range(range_, asset.size)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(asset.filename)}",
    }
    media_type = asset.mime or "application/octet-stream"
    if span is None:
        headers["Content-Length"] = str(asset.size)
        return StreamingResponse(_stream(ctx.blobs.open(asset.sha256)), media_type=media_type,
                                 headers=headers)
    start, end = span
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{asset.size}"
    return StreamingResponse(_stream(ctx.blobs.open(asset.sha256, start, end - start + 1)), status_code=206,
                             media_type=media_type, headers=headers)
