"""The ASGI entry of ``/dav/``: everything a request must pass before wsgidav sees it.

* Paths (request and Destination) are parsed and bounded (paths.py): hostile ones are a 400 naming
  the problem.
* Request bodies other than PUT's (PROPFIND, PROPPATCH, LOCK XML) are at most ``MAX_XML_BODY``.
* ``PROPFIND`` with ``Depth: infinity`` is refused (403, ``DAV:propfind-finite-depth``); without a Depth
  header it lists one level.
* HTTP Basic with the user name and an app password: a device token (``crd_...``), never the account
  password, refused with a sentence saying so.  Failures count in the login back-off (per account and
  per address): while it holds, the answer is 429 with Retry-After before any lookup.
* Then wsgidav, in a2wsgi's threads, with the caller in the ASGI scope (provider.py)."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

import anyio.to_thread
from a2wsgi import WSGIMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from wsgidav.error_printer import ErrorPrinter
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from camroll.server.context import Context
from camroll.server.dav import paths
from camroll.server.dav.provider import SCOPE_KEY, Caller, Provider
from camroll.server.problems import ProblemError
from camroll.server.ratelimit import retry_after
from camroll.server.security import DEVICE_PREFIX
from camroll.server.services import auth
from camroll.server.services.auth import Principal

MAX_XML_BODY = 1 * 2**20
MAX_AUTH_HEADER = 4096
# Threads serving WebDAV requests at once (a PUT holds one for its whole body).
WORKERS = 16
REALM = 'Basic realm="camroll", charset="UTF-8"'
APP_PASSWORD_FIX = ("Use an app password: `camroll admin app-password create USER DEVICE-NAME` prints one "
                    "(or the token `camroll login` saved); your account password is never accepted here.")
_FINITE_DEPTH = (b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:propfind-finite-depth/>'
                 b"</D:error>\n")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _answer(send: Send, status: int, text: str, headers: dict[str, str] | None = None,
                  body: bytes | None = None, content_type: str = "text/plain; charset=utf-8") -> None:
    payload = body if body is not None else (text + "\n").encode("utf-8")
    hdrs = [(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode())]
    hdrs += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": payload})


class Refused(Exception):
    def __init__(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.status, self.text, self.headers = status, text, headers or {}


def _basic(header: str | None) -> tuple[str, str]:
    if not header:
        raise Refused(401, f"WebDAV needs your user name and an app password. {APP_PASSWORD_FIX}",
                      {"WWW-Authenticate": REALM})
    if len(header) > MAX_AUTH_HEADER:
        raise Refused(400, f"The Authorization header is longer than {MAX_AUTH_HEADER} characters.")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise Refused(401, f"WebDAV takes HTTP Basic authentication, not {scheme[:20]!r}. {APP_PASSWORD_FIX}",
                      {"WWW-Authenticate": REALM})
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Refused(400, "The Basic credentials are not base64 of 'user:password' in UTF-8.") from None
    if not sep or not user:
        raise Refused(401, f"The Basic credentials have no user name. {APP_PASSWORD_FIX}",
                      {"WWW-Authenticate": REALM})
    return user, password


def authenticate(ctx: Context, header: str | None, address: str | None) -> Principal:
    """The device whose app password the request carries; raises ``Refused`` (401/429/400)."""
    user, password = _basic(header)
    account = user.casefold()
    t = ctx.throttles
    wait = max(t.login_accounts.wait(account), t.login_addresses.wait(address) if address else 0.0)
    if wait:
        raise Refused(429, f"Too many wrong app passwords; WebDAV logins for this account are paused for "
                      f"{retry_after(wait)} s. Fix: wait, then check the app password.",
                      {"Retry-After": retry_after(wait)})

    def failed(text: str) -> Refused:
        t.login_accounts.failed(account)
        if address:
            t.login_addresses.failed(address)
        return Refused(401, text, {"WWW-Authenticate": REALM})

    if not password.startswith(DEVICE_PREFIX):
        raise failed(f"That is not an app password. {APP_PASSWORD_FIX}")
    try:
        who = auth.authenticate(ctx, f"Bearer {password}")
    except ProblemError as exc:
        raise failed(f"{exc.detail} Fix: create a new app password with `camroll admin app-password create "
                     f"{user} DEVICE-NAME`.") from None
    if who.username.casefold() != account:
        raise failed(f"This app password belongs to another user than {user!r}. Fix: log in as its user.")
    t.login_accounts.succeeded(account)
    return who


def _wsgidav() -> Any:
    config = {
        "provider_mapping": {paths.PREFIX: Provider()},
        # Authentication is the door's; wsgidav only speaks the protocol.
        "middleware_stack": [ErrorPrinter, RequestResolver],
        "http_authenticator": {"domain_controller": None, "accept_basic": True, "accept_digest": False,
                               "default_to_digest": False},
        "lock_storage": True,
        "property_manager": None,
        "honor_mtime_header": False,  # X-OC-Mtime goes into the upload's metadata (provider.py)
        "hotfixes": {"emulate_win32_lastmod": True},
        "block_size": 2**20,
        "dir_browser": {"enable": False},
        "suppress_version_info": True,
        "verbose": 1,
        "logging": {"enable": False},
    }
    return WsgiDAVApp(config)


class DavDoor:
    """ASGI middleware: requests under ``/dav`` go to WebDAV, everything else to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._dav: Any = None

    def _wsgi(self) -> ASGIApp:
        if self._dav is None:
            self._dav = WSGIMiddleware(_wsgidav(), workers=WORKERS)
        app: ASGIApp = self._dav
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != paths.PREFIX and not path.startswith(paths.PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        try:
            scope, receive = await self._admit(scope, receive)
        except Refused as exc:
            await _answer(send, exc.status, exc.text, exc.headers)
            return
        except paths.DavPathError as exc:
            await _answer(send, 400, f"{exc}")
            return
        if scope["method"] == "PROPFIND" and (_header(scope, b"depth") or "").strip().lower() == "infinity":
            await _answer(send, 403, "", body=_FINITE_DEPTH, content_type="application/xml; charset=utf-8")
            return
        if scope["method"] == "PATCH" and _header(scope, b"x-recalculate-hash") is not None:
            # Nextcloud's "recompute the stored checksum" (rclone's nextcloud vendor asks after a chunked
            # upload): camroll keeps only the SHA-256 it verified, so there is nothing to recompute.
            await _answer(send, 204, "")
            return
        mtime_sent = _header(scope, b"x-oc-mtime") is not None and scope["method"] in ("PUT", "MOVE")

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start" and mtime_sent and 200 <= message["status"] < 300:
                message = {**message, "headers": [*message.get("headers", []), (b"x-oc-mtime", b"accepted")]}
            await send(message)

        await self._wsgi()(scope, receive, send_marked)

    async def _admit(self, scope: Scope, receive: Receive) -> tuple[Scope, Receive]:
        paths.parse(scope["path"])
        dest = _header(scope, b"destination")
        if dest is not None:
            paths.destination(dest)
        method = scope["method"]
        ctx: Context = scope["app"].state.ctx
        client = scope.get("client")
        who = await anyio.to_thread.run_sync(authenticate, ctx, _header(scope, b"authorization"),
                                             client[0] if client else None)
        if who.device_id is None:
            raise Refused(401, f"WebDAV takes an app password. {APP_PASSWORD_FIX}", {"WWW-Authenticate": REALM})
        headers = list(scope.get("headers") or [])
        if method == "PROPFIND" and _header(scope, b"depth") is None:
            headers.append((b"depth", b"1"))
        scope = {**scope, "headers": headers, SCOPE_KEY: Caller(ctx, who, asyncio.get_running_loop())}
        if method != "PUT":
            receive = _bounded(scope, receive)
        return scope, receive


def _bounded(scope: Scope, receive: Receive) -> Receive:
    declared = _header(scope, b"content-length")
    if declared is not None and (not declared.strip().isdigit() or int(declared.strip()[:20]) > MAX_XML_BODY):
        raise Refused(413, f"A WebDAV request body (other than a PUT's) is at most {MAX_XML_BODY} bytes.")
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_XML_BODY:
                return {"type": "http.disconnect"}
        return message

    return counted
