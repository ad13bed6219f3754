"""A ceiling on request bodies, so no request can make the server hold megabytes it never needed.

Every route reads a small JSON document except the tus uploads, whose bodies stream to disk and are
bounded by their own Upload-Length; those are exempt.  A body announced larger than its route's limit is
refused with 413 before a byte is read; a chunked body is counted as it arrives and cut off there."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from camroll import wire
from camroll.server.problems import problem_response

DEFAULT_LIMIT = 1 * 2**20
# A full hash-check batch (wire.MAX_CHECK_BATCH items, each with its device path) is the largest.
LIMITS: dict[str, int] = {
    f"{wire.API_PREFIX}/assets/check": 24 * 2**20,
    f"{wire.API_PREFIX}/auth/login": 16 * 2**10,
}
EXEMPT_PREFIX = wire.UPLOADS_PATH.rstrip("/")


class BodyTooLarge(HTTPException):
    # An HTTPException, because FastAPI passes those on unchanged when reading the body raises one.
    def __init__(self, limit: int) -> None:
        super().__init__(413)
        self.limit = limit


def limit_for(path: str) -> int | None:
    if path == EXEMPT_PREFIX or path.startswith(EXEMPT_PREFIX + "/"):
        return None
    return LIMITS.get(path, DEFAULT_LIMIT)


def _problem(limit: int, path: str) -> Response:
    return problem_response(413, "request_too_large",
                            f"The request body is larger than the {limit:,} bytes {path} accepts.",
                            "Send a smaller request (fewer items per batch).", path)


async def _on_too_large(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BodyTooLarge)
    return _problem(exc.limit, request.url.path)


def _refusal(limit: int, path: str) -> tuple[Message, Message]:
    response = _problem(limit, path)
    start: Message = {"type": "http.response.start", "status": 413,
                      "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]}
    return start, {"type": "http.response.body", "body": bytes(response.body)}


class BodyLimit:
    """ASGI middleware applying :func:`limit_for` to every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = limit_for(scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > limit
                except ValueError:
                    too_large = False  # the app answers a malformed length itself
                if too_large:
                    for message in _refusal(limit, scope["path"]):
                        await send(message)
                    return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if not started:
                for message in _refusal(limit, scope["path"]):
                    await send(message)


def install(app: FastAPI) -> None:
    app.add_exception_handler(BodyTooLarge, _on_too_large)
    app.add_middleware(BodyLimit)
