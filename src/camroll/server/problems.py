"""Every error the API returns is an RFC 9457 problem document built from ``wire.Problem``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from camroll import wire

log = logging.getLogger("camroll.server")


class ProblemError(Exception):
    """Raised anywhere in the server to answer with a problem document."""

    def __init__(self, status: int, code: wire.ProblemCode, detail: str, fix: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code: wire.ProblemCode = code
        self.detail = detail
        self.fix = fix
        self.headers = dict(headers or {})


def _title(status: int) -> str:
    if status == wire.STATUS_CHECKSUM_MISMATCH:
        return "Checksum Mismatch"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(status: int, code: wire.ProblemCode, detail: str, fix: str | None = None,
                     instance: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
    body = wire.Problem(title=_title(status), status=status, detail=detail, code=code, fix=fix,
                        instance=instance)
    return Response(body.model_dump_json(exclude_none=True), status_code=status,
                    media_type=wire.PROBLEM_CONTENT_TYPE, headers=dict(headers or {}))


_CODES: dict[int, wire.ProblemCode] = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
    410: "gone", 413: "file_too_large", 415: "unsupported_media_type", 426: "client_too_old",
}


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.status, exc.code, exc.detail, exc.fix, request.url.path, exc.headers)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404:
        detail = f"There is nothing at {request.url.path}."
        fix: str | None = "Check the URL; the API lives under /api/v1."
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
        fix = f"Use one of: {exc.headers.get('Allow', '?')}." if exc.headers else None
    else:
        detail, fix = str(exc.detail), None
    return problem_response(status, _CODES.get(status, "bad_request" if status < 500 else "internal"),
                            detail, fix, request.url.path, exc.headers)


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    detail = "The request is not valid: " + "; ".join(parts) + "."
    return problem_response(422, "bad_request", detail, "Correct the fields named above and send it again.",
                            request.url.path)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    from camroll.server import diskspace

    if diskspace.is_out_of_space(exc):
        log.error("disk full while handling %s %s: %s", request.method, request.url.path, exc)
        full = diskspace.storage_full()
        return problem_response(full.status, full.code, full.detail, full.fix, request.url.path)
    from camroll.server.storage.base import StorageFailure

    if isinstance(exc, StorageFailure):
        # The sentence names buckets and endpoints: it is for the admin's log, not for every client.
        log.error("storage failed while handling %s %s: %s", request.method, request.url.path, exc)
        return problem_response(503, "internal", "The server cannot reach its storage right now.",
                                "Try again in a few minutes; the server's admin finds the cause in its log.",
                                request.url.path, {"Retry-After": "30"})
    from camroll.server.db import unavailable_reason, unstorable_text

    if unstorable_text(exc):
        return problem_response(422, "bad_request", "The request holds text with a NUL character or an unpaired "
                                "UTF-16 surrogate, which the server's database cannot store.",
                                "Send text without NUL characters, as valid Unicode.", request.url.path)

    if (waited := unavailable_reason(exc)) is not None:
        log.warning("database gave up waiting for %s during %s %s: %s", waited, request.method,
                    request.url.path, exc)
        return problem_response(503, "busy", f"The server's database is busy: it waited too long for {waited}.",
                                "Nothing was changed; try again in a moment (the agent retries by itself).",
                                request.url.path, headers={"Retry-After": "5"})
    # No logging here: Starlette re-raises after this handler and uvicorn logs the traceback.
    return problem_response(500, "internal", f"The server failed unexpectedly ({type(exc).__name__}).",
                            "Try again; if it keeps happening, check the server log.", request.url.path)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(Exception, _on_unexpected)
