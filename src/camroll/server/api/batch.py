"""``POST /uploads/batch``: many small files in one request (format in wire.py; rules in services/batch.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.requests import ClientDisconnect

from camroll import wire
from camroll.server.api.deps import BackupCaller, Ctx
from camroll.server.problems import ProblemError
from camroll.server.services import batch
from camroll.server.services.receive import BodyInterrupted

router = APIRouter()

_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {wire.BATCH_CONTENT_TYPE: {"schema": {
    "type": "string", "format": "binary",
    "description": "CRB1, a 4-byte big-endian manifest length, a BatchManifest as JSON, then every file's "
                   "bytes back to back in manifest order."}}}}}


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise BodyInterrupted from None


@router.post(wire.BATCH_PATH.removeprefix(wire.API_PREFIX), response_model=wire.BatchResponse, openapi_extra=_BODY)
async def upload_batch(request: Request, ctx: Ctx, who: BackupCaller) -> wire.BatchResponse | Response:
    """Upload up to MAX_BATCH_FILES small files at once; each file is verified by its own SHA-256 and
    gets its own result (created, duplicate, or refused with a reason), and one bad file fails alone."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != wire.BATCH_CONTENT_TYPE:
        raise ProblemError(415, "unsupported_media_type", f"A batch must have Content-Type {wire.BATCH_CONTENT_TYPE}, "
                           f"not {content_type or '(none)'}.", f"Send the batch with 'Content-Type: "
                           f"{wire.BATCH_CONTENT_TYPE}'.")
    length: int | None = None
    if (declared := request.headers.get("content-length")) is not None:
        try:
            length = wire.parse_int64(declared)
        except ValueError:
            raise ProblemError(400, "bad_request", "Content-Length is not a number.",
                               "Send Content-Length as ASCII digits.") from None
    try:
        return await batch.receive_batch(ctx, who, _body(request), length)
    except BodyInterrupted:
        # Nobody is listening any more; the files that arrived whole are stored.
        return Response(status_code=400)
