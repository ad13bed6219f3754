"""Security headers on every response, API errors and media included.

A browser that sniffs a JSON answer or an uploaded file as HTML would run it on the web UI's origin;
``nosniff`` and a CSP that allows nothing stop that.  The web UI's own page and static files carry their
own, more permissive CSP (web/routes.py), which this middleware leaves as it is."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
    # Answers that are not the web UI are data: nothing in them may run, load or be framed.
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; sandbox"),
)


class SecurityHeaders:
    """ASGI middleware adding each of :data:`SECURITY_HEADERS` the response does not set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in SECURITY_HEADERS if name not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
