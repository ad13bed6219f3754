"""tus 1.0 at ``wire.UPLOADS_PATH``: core, creation, creation-with-upload, checksum, termination,
expiration.  Protocol headers are parsed here; :mod:`services.uploads` and :mod:`services.receive`
decide what happens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Request, Response
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from camroll import wire
from camroll.server import diskspace
from camroll.server.api.deps import BackupCaller, Ctx
from camroll.server.problems import ProblemError
from camroll.server.services import receive, uploads
from camroll.server.services.receive import BodyInterrupted

OCTET = "application/offset+octet-stream"
COLLECTION = wire.UPLOADS_PATH.removeprefix(wire.API_PREFIX)


async def require_tus_version(tus_resumable: Annotated[str | None, Header()] = None) -> None:
    if tus_resumable != wire.TUS_VERSION:
        raise ProblemError(412, "tus_version",
                           f"This server speaks tus {wire.TUS_VERSION}; the request said "
                           f"Tus-Resumable: {tus_resumable or '(missing)'}.",
                           f"Send 'Tus-Resumable: {wire.TUS_VERSION}' with every tus request.",
                           headers={"Tus-Version": wire.TUS_VERSION})


router = APIRouter()
tus = APIRouter(dependencies=[Depends(require_tus_version)])


class TusHeaders:
    """ASGI middleware: every response under the uploads path carries ``Tus-Resumable``, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive_: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(wire.UPLOADS_PATH.rstrip("/")):
            await self.app(scope, receive_, send)
            return

        async def send_with_tus(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"tus-resumable", wire.TUS_VERSION.encode())]
            await send(message)

        await self.app(scope, receive_, send_with_tus)


def _expires(when: datetime | None) -> dict[str, str]:
    return {"Upload-Expires": format_datetime(when, usegmt=True)} if when else {}


def _int_header(name: str, value: str | None, *, required: bool = True) -> int | None:
    if value is None:
        if required:
            raise ProblemError(400, "bad_request", f"The {name} header is missing.",
                               f"Send {name} as a non-negative integer.")
        return None
    try:
        return wire.parse_int64(value)
    except ValueError as exc:
        raise ProblemError(400, "bad_request", f"{name} must be a non-negative integer: {exc}.",
                           f"Send {name} as a non-negative integer of ASCII digits, e.g. '{name}: 1024'.") from None


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise BodyInterrupted from None


def _location(upload_id: str) -> str:
    return f"{wire.UPLOADS_PATH}{upload_id}"


def _options(ctx: Ctx) -> Response:
    return Response(status_code=204, headers={
        "Tus-Version": wire.TUS_VERSION,
        "Tus-Extension": ",".join(wire.TUS_EXTENSIONS),
        "Tus-Max-Size": str(ctx.settings.max_file_size),
        "Tus-Checksum-Algorithm": ",".join(wire.TUS_CHECKSUM_ALGORITHMS),
    })


@router.options(COLLECTION, status_code=204, response_class=Response)
def options(ctx: Ctx) -> Response:
    """tus discovery: the version, extensions, largest size and checksum algorithms this server speaks."""
    return _options(ctx)


@router.options(COLLECTION + "{upload_id}", status_code=204, response_class=Response)
def options_upload(ctx: Ctx, upload_id: str) -> Response:
    """tus discovery on an upload's URL; the same answer for any id."""
    return _options(ctx)


_CREATED: dict[int | str, dict[str, Any]] = {
    201: {"description": f"Created; Location is the upload's URL (with Upload-Offset and {wire.ASSET_ID_HEADER} "
                         "when the body completed it)."}}


@tus.post(COLLECTION, status_code=201, response_class=Response, responses=_CREATED)
@tus.post(COLLECTION.rstrip("/"), status_code=201, include_in_schema=False)
async def create(request: Request, ctx: Ctx,
                 authorization: Annotated[str | None, Header()] = None,
                 upload_length: Annotated[str | None, Header()] = None,
                 upload_defer_length: Annotated[str | None, Header()] = None,
                 upload_metadata: Annotated[str | None, Header()] = None,
                 upload_checksum: Annotated[str | None, Header()] = None) -> Response:
    # The token is checked in the same worker-thread call and transaction as the upload is created
    # (instead of the BackupCaller dependency's own); header errors are raised after it, as before.
    # Content-Type and Content-Length are HTTP's own framing, read here rather than declared as
    # parameters of the operation (a client generated from the document sets them itself).
    with_body = (request.headers.get("content-type") or "").split(";")[0].strip().lower() == OCTET
    checksum: receive.Checksum | None = None
    parsed: tuple[int, dict[str, str]] | ProblemError
    try:
        if upload_defer_length is not None:
            raise ProblemError(400, "bad_request", "This server does not support Upload-Defer-Length.",
                               "Send Upload-Length with the file's size.")
        length = _int_header("Upload-Length", upload_length)
        assert length is not None
        meta = uploads.parse_metadata(upload_metadata)
        checksum = receive.parse_checksum(upload_checksum) if with_body else None
        parsed = (length, meta)
    except ProblemError as exc:
        parsed = exc
    who, state = await anyio.to_thread.run_sync(uploads.authenticate_and_create, ctx, authorization, parsed)
    length = state.length
    headers = {"Location": _location(state.id), **_expires(state.expires_at)}
    if with_body or length == 0:
        try:
            got = await receive.receive(ctx, state.id, 0, length, _body(request), checksum, known=state)
        except BodyInterrupted:
            return Response(status_code=400)
        except ProblemError:
            # The first chunk was refused: leave nothing behind, the client starts over.  (A refusal of
            # the whole file, e.g. a type the server does not store, has discarded the upload already.)
            try:
                await anyio.to_thread.run_sync(uploads.terminate, ctx, who, state.id)
            except Exception as exc:
                # Already gone, or a full disk refuses even the delete: the sweeper ends it later.
                if not (isinstance(exc, ProblemError) or diskspace.is_out_of_space(exc)):
                    raise
            raise
        headers["Upload-Offset"] = str(got.offset)
        headers.update(_expires(got.expires_at))
        if got.asset_id is not None:
            headers[wire.ASSET_ID_HEADER] = str(got.asset_id)
    return Response(status_code=201, headers=headers)


HEAD_WAITS_FOR_WRITER = 5.0  # seconds
HEAD_POLLS_LEASE = 0.05  # seconds between looks at another replica's writer lease


@tus.head(COLLECTION + "{upload_id}", response_class=Response,
          responses={200: {"description": "Upload-Offset, Upload-Length, Upload-Metadata and, once complete, "
                                          f"{wire.ASSET_ID_HEADER}; no body."}})
async def head(ctx: Ctx, who: BackupCaller, upload_id: str) -> Response:
    # A client asks right after its connection was cut, often before this server noticed: let the
    # request still writing to the upload finish first, so the offset is where the bytes that arrived
    # end.  Otherwise the client resumes from an older offset and sends a whole body only to be told
    # 409 (or finds the upload busy).
    # With a shared part store the writer may be another replica: its lease on the upload row says so.
    deadline = anyio.current_time() + HEAD_WAITS_FOR_WRITER
    while anyio.current_time() < deadline:
        if upload_id in ctx.busy:
            await anyio.sleep(0.02)
        elif ctx.parts.shared and await anyio.to_thread.run_sync(uploads.writing_elsewhere, ctx, upload_id):
            await anyio.sleep(HEAD_POLLS_LEASE)
        else:
            break
    try:
        state = await anyio.to_thread.run_sync(uploads.status, ctx, who, upload_id)
    except ProblemError as exc:
        exc.headers["Cache-Control"] = "no-store"
        raise
    headers = {
        "Upload-Offset": str(state.offset),
        "Upload-Length": str(state.length),
        "Cache-Control": "no-store",
        **_expires(state.expires_at),
    }
    if state.metadata:
        headers["Upload-Metadata"] = wire.encode_upload_metadata(state.metadata)
    if state.asset_id is not None:
        headers[wire.ASSET_ID_HEADER] = str(state.asset_id)
    return Response(status_code=200, headers=headers)


@tus.patch(COLLECTION + "{upload_id}", status_code=204, response_class=Response)
async def patch(request: Request, ctx: Ctx, who: BackupCaller, upload_id: str,
                upload_offset: Annotated[str | None, Header()] = None,
                upload_checksum: Annotated[str | None, Header()] = None) -> Response:
    content_type = request.headers.get("content-type")
    content_length = request.headers.get("content-length")
    if (content_type or "").split(";")[0].strip().lower() != OCTET:
        raise ProblemError(415, "unsupported_media_type",
                           f"A tus PATCH must have Content-Type {OCTET}, not {content_type or '(none)'}.",
                           f"Send the chunk with 'Content-Type: {OCTET}'.")
    offset = _int_header("Upload-Offset", upload_offset)
    assert offset is not None
    checksum = receive.parse_checksum(upload_checksum)
    declared = _int_header("Content-Length", content_length, required=False)
    state = await anyio.to_thread.run_sync(uploads.check_patch, ctx, who, upload_id, offset, declared)
    if state.asset_id is not None:
        return Response(status_code=204, headers={"Upload-Offset": str(state.offset),
                                                  wire.ASSET_ID_HEADER: str(state.asset_id)})
    try:
        got = await receive.receive(ctx, upload_id, offset, state.length, _body(request), checksum,
                                    known=state)
    except BodyInterrupted:
        # Nobody is listening any more; what could be kept is kept.
        return Response(status_code=400)
    headers = {"Upload-Offset": str(got.offset), **_expires(got.expires_at or state.expires_at)}
    if got.asset_id is not None:
        headers[wire.ASSET_ID_HEADER] = str(got.asset_id)
    return Response(status_code=204, headers=headers)


@tus.delete(COLLECTION + "{upload_id}", status_code=204, response_class=Response)
async def terminate(ctx: Ctx, who: BackupCaller, upload_id: str) -> Response:
    await anyio.to_thread.run_sync(uploads.terminate, ctx, who, upload_id)
    return Response(status_code=204)


router.include_router(tus)
