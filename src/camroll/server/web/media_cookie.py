"""Letting ``<img>`` and ``<video>`` load media, which cannot send an ``Authorization`` header.

After login the page calls ``POST /api/v1/auth/media-cookie`` (with its bearer token).  The answer sets
an HttpOnly, SameSite=Strict cookie holding that session token, scoped to ``/api/v1/assets``.  The
middleware below turns the cookie into a bearer header only for GET/HEAD of an asset's original or
thumbnail (or Motion Photo video) and of the zip download; every other request ignores it, so a cookie can never change
anything (no CSRF surface) and page scripts can never read it (HttpOnly).
"""

from __future__ import annotations

import re
from http.cookies import CookieError, SimpleCookie
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from camroll import wire
from camroll.server.api.deps import Caller
from camroll.server.problems import ProblemError
from camroll.server.security import SESSION_PREFIX

COOKIE = "camroll_media"
COOKIE_PATH = f"{wire.API_PREFIX}/assets"
MEDIA_PATH = re.compile(rf"^{re.escape(wire.API_PREFIX)}/assets/(?:\d+/(?:original|thumbnail|motion)|zip)$")

router = APIRouter()


@router.post("/auth/media-cookie", status_code=204)
def set_media_cookie(request: Request, who: Caller,
                     authorization: Annotated[str | None, Header()] = None) -> Response:
    token = (authorization or "").partition(" ")[2].strip()
    if who.device_id is not None or not token.startswith(SESSION_PREFIX):
        raise ProblemError(400, "bad_request", "Only a login session can get a media cookie.",
                           "Log in with POST /api/v1/auth/login and use that session token.")
    response = Response(status_code=204)
    # No Max-Age: the cookie lives as long as the browser session; the token's own expiry still applies.
    response.set_cookie(COOKIE, token, path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.delete("/auth/media-cookie", status_code=204)
def clear_media_cookie() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


def _cookie_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:  # a malformed Cookie header is simply not a credential
                continue
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


class MediaCookieAuth:
    """ASGI middleware: the media cookie stands in for a missing bearer header on media GETs only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] in ("GET", "HEAD")
                and MEDIA_PATH.match(scope["path"])):
            headers: list[tuple[bytes, bytes]] = list(scope["headers"])
            if not any(name == b"authorization" for name, _ in headers):
                token = _cookie_token(headers)
                if token and token.startswith(SESSION_PREFIX):
                    scope = {**scope, "headers": [*headers, (b"authorization", f"Bearer {token}".encode())]}
        await self.app(scope, receive, send)
