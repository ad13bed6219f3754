"""The OpenAPI document, with the errors the API really returns.

Every error is ``application/problem+json`` (``wire.Problem``, built by :mod:`problems`), including
the 422 of a request that fails validation, which FastAPI would describe as its own JSON shape.  Each
operation lists the statuses it can answer with, plus ``default`` for anything else, so a client
generated from the document understands every answer."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from camroll import wire

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_PROBLEM_CONTENT = {wire.PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}}

# Any operation: a malformed request, a failed validation, a request body over the size limit, a
# client older than the server accepts, the server's own failures (507: its disk is full).
_COMMON = (400, 413, 422, 426, 500, 507)
# Anything behind a token (all but the public operations below).
_AUTH = (401, 403)
_PUBLIC = {f"{wire.API_PREFIX}/server", f"{wire.API_PREFIX}/auth/login"}
_TUS = (404, 409, 410, 412, 413, 415, wire.STATUS_CHECKSUM_MISMATCH)
_DESCRIPTIONS = {
    wire.STATUS_CHECKSUM_MISMATCH: "Checksum Mismatch (tus checksum extension)",
    507: "Insufficient Storage: the server's disk is full",
}


def _description(status: int) -> str:
    if status in _DESCRIPTIONS:
        return _DESCRIPTIONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    codes = set(_COMMON)
    if path not in _PUBLIC:
        codes.update(_AUTH)
    if path.startswith(wire.UPLOADS_PATH) and method != "options":
        codes.update(_TUS)
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        codes.add(404)
    # Statuses an operation declares itself (404 "not ready", 416, 429...) stay, as problems.
    codes.update(int(s) for s in operation.get("responses", {}) if s.isdigit() and int(s) >= 400)
    return codes


def _document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = wire.Problem.model_json_schema()
    # FastAPI's own validation error shapes: camroll answers those with a Problem.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status in _statuses(path, method, operation):
                responses[str(status)] = {"description": responses.get(str(status), {}).get("description")
                                          or _description(status), "content": _PROBLEM_CONTENT}
            responses["default"] = {"description": "Any other error: an RFC 9457 problem document.",
                                    "content": _PROBLEM_CONTENT}
    return doc


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
