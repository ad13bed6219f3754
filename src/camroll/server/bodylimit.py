"""A size limit on every request body outside tus (whose bodies are bounded by their Upload-Length).

FastAPI reads a JSON body whole before validating it, so without a limit one request could make the
server hold any amount of memory.  The limit is checked on ``Content-Length`` before anything is read,
and again on the bytes as they arrive (a chunked body has no length to check)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from camroll import wire
from camroll.server.problems import ProblemError, problem_response
from camroll.units import format_size

# A heartbeat of MAX_HEARTBEAT_PROBLEMS problems with the longest fields fits; a check batch of
# MAX_CHECK_BATCH items with long paths gets the larger limit.
DEFAULT_LIMIT = 4 * 2**20
# A login needs a few hundred bytes; it is also the one body anyone may send without a token.
LIMITS = {f"{wire.API_PREFIX}/assets/check": wire.MAX_JSON_BODY, f"{wire.API_PREFIX}/auth/login": 16 * 2**10}


def _too_large(limit: int, path: str) -> ProblemError:
    return ProblemError(413, "request_too_large", f"The request body is larger than the {format_size(limit)} "
                        f"{path} accepts.", "Send a smaller body: fewer items, shorter texts.")


class BodyLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path or path.startswith(wire.UPLOADS_PATH.rstrip("/")):
            await self.app(scope, receive, send)
            return
        limit = LIMITS.get(path, DEFAULT_LIMIT)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or len(declared) > 19 or int(declared) > limit):
            exc = _too_large(limit, path)
            await problem_response(exc.status, exc.code, exc.detail, exc.fix, path)(scope, receive, send)
            return
        seen = 0
        answered = False

        async def counted() -> Message:
            nonlocal seen, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Answered here: FastAPI would turn an error raised while it reads the body into
                    # its own 400.  The app then sees a client that went away, and what it sends is dropped.
                    answered = True
                    exc = _too_large(limit, path)
                    await problem_response(exc.status, exc.code, exc.detail, exc.fix, path)(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not answered:
                await send(message)

        await self.app(scope, counted, guarded_send)
