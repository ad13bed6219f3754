"""The agent's HTTP client for camroll's JSON API: one shared ``httpx.Client`` (keep-alive), the
client-version header on every request, and server errors turned into ``ProblemError``s."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from camroll import API_VERSION, __version__, wire
from camroll.agent.backup.retry import IN_PASS, Backoff
from camroll.agent.errors import AgentError, PassAborted, ProblemError, ServerUnreachable
from camroll.agent.stops import StopCode

USER_AGENT = f"camroll-agent/{__version__}"
TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=120.0, pool=60.0)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

# Transport failures worth a retry: the request may not have reached the server, or its answer was lost.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError,)


def make_client(base_url: str, token: str | None = None, max_connections: int = 8,
                transport: httpx.BaseTransport | None = None) -> httpx.Client:
    headers = {"User-Agent": USER_AGENT, wire.CLIENT_VERSION_HEADER: __version__}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        headers=headers,
        timeout=TIMEOUT,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False,
        transport=transport,
    )


def problem_from(resp: httpx.Response) -> ProblemError:
    """The error a non-2xx response stands for, using the problem document when there is one."""
    try:
        body = json.loads(resp.content) if resp.content else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        try:
            p = wire.Problem.model_validate(body)
            return ProblemError(p.status or resp.status_code, p.code, p.detail, p.fix)
        except ValidationError:
            detail = body.get("detail")
            if isinstance(detail, str):
                return ProblemError(resp.status_code, "unknown", detail, None)
    reason = resp.reason_phrase or "error"
    return ProblemError(resp.status_code, "unknown",
                        f"The server answered {resp.status_code} {reason} to {resp.request.method} "
                        f"{resp.request.url.path}", None)


def fatal_for_pass(err: ProblemError) -> PassAborted | None:
    """Errors that every further request would hit too: stop the pass with the headline reason."""
    if err.status == 401:
        return PassAborted(
            "The server no longer accepts this device's token (revoked or expired). "
            "Fix: run 'camroll login URL --user NAME' again.", StopCode.AUTH
        )
    if err.status == 426 or err.code == "client_too_old":
        return PassAborted(f"The server refuses this camroll version ({__version__}): {err}",
                           StopCode.CLIENT_TOO_OLD)
    if err.status == 403:
        return PassAborted(str(err), StopCode.AUTH)
    return None


def unreachable(base_url: str, exc: Exception, *, answered: bool = False,
                then: str = "backup resumes where it stopped") -> ServerUnreachable:
    """The pass-stopping error for a transport failure, telling DNS, refused, TLS and timeout apart.
    ``answered``: the server already answered this client, so a dropped connection is a network cut.
    ``then``: what happens once it is fixed (said when the cause does not heal by itself)."""
    from camroll.agent.report.reach import classify

    found = classify(base_url, exc, TIMEOUT.read or 120.0, answered=answered)
    resumes = "" if found.heals else f"; {then}"
    err = ServerUnreachable(f"Cannot reach the camroll server: {found.sentence} Fix: {found.fix}{resumes}.")
    err.answered = answered
    return err


def with_retries(fn: Callable[[], T], *, base_url: str, backoff: Backoff = IN_PASS,
                 sleep: Callable[[float], None] = time.sleep,
                 should_stop: Callable[[], bool] = lambda: False,
                 then: str = "backup resumes where it stopped") -> T:
    """Call ``fn`` until it succeeds or fails non-transiently, sleeping with full-jitter back-off
    between attempts.  Transport errors that outlast the attempts become ``ServerUnreachable``
    (``Api`` raises that at once, with the transport error as its cause: it is retried here too)."""
    retry = 0
    while True:
        try:
            return fn()
        except ProblemError as exc:
            if not exc.transient or retry + 1 >= backoff.attempts or should_stop():
                raise
        except ServerUnreachable as exc:
            cause = exc.__cause__
            if not isinstance(cause, TRANSIENT_ERRORS):
                raise
            if retry + 1 >= backoff.attempts or should_stop():
                raise unreachable(base_url, cause, answered=exc.answered, then=then) from cause
        except TRANSIENT_ERRORS as exc:
            if retry + 1 >= backoff.attempts or should_stop():
                raise unreachable(base_url, exc, then=then) from exc
        sleep(backoff.delay(retry))
        retry += 1


class Api:
    """The JSON endpoints the agent uses (uploads live in :mod:`camroll.agent.backup.tus`)."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.base_url = str(client.base_url)
        # Set once the server has answered anything: a connection it drops later is a network cut.
        self.answered = False

    def _json(self, method: str, path: str, model: type[M], *, body: BaseModel | None = None,
              token: str | None = None) -> M:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        content = body.model_dump_json(exclude_none=True).encode() if body is not None else None
        if content is not None:
            headers = {**(headers or {}), "Content-Type": "application/json"}
        try:
            resp = self.client.request(method, wire.API_PREFIX + path, content=content, headers=headers)
        except TRANSIENT_ERRORS as exc:
            raise unreachable(self.base_url, exc, answered=self.answered) from exc
        self.answered = True
        if resp.status_code >= 400:
            raise problem_from(resp)
        try:
            return model.model_validate_json(resp.content)
        except ValidationError as exc:
            raise AgentError(
                f"The server at {self.base_url} answered {path} with something camroll does not understand. "
                "Fix: check the URL points at a camroll server of a compatible version."
            ) from exc

    def server_info(self) -> wire.ServerInfo:
        return self._json("GET", "/server", wire.ServerInfo)

    def login(self, username: str, password: str) -> wire.LoginResponse:
        return self._json("POST", "/auth/login", wire.LoginResponse,
                          body=wire.LoginRequest(username=username, password=password))

    def create_device(self, session_token: str, name: str, platform: str) -> wire.DeviceCreated:
        return self._json("POST", "/devices", wire.DeviceCreated,
                          body=wire.DeviceCreate(name=name, platform=platform), token=session_token)

    def me(self) -> wire.UserInfo:
        return self._json("GET", "/me", wire.UserInfo)

    def check(self, items: list[wire.CheckItem]) -> wire.CheckResponse:
        return self._json("POST", "/assets/check", wire.CheckResponse, body=wire.CheckRequest(items=items))

    def heartbeat(self, body: wire.Heartbeat) -> wire.HeartbeatAck:
        """Report this device's backup state (the device token identifies the device)."""
        return self._json("PUT", "/devices/current/heartbeat", wire.HeartbeatAck, body=body)


def _version_tuple(v: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in v.split("."):
        digits = "".join(c for c in part if c.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def check_compatible(info: wire.ServerInfo, base_url: str) -> None:
    """Raise a clear error if this agent cannot talk to the server described by ``info``."""
    if info.api_version != API_VERSION:
        newer = "newer" if info.api_version > API_VERSION else "older"
        raise AgentError(
            f"The server at {base_url} speaks API version {info.api_version}, this camroll speaks "
            f"{API_VERSION}. Fix: upgrade the {'agent' if newer == 'newer' else 'server'} so both match."
        )
    if _version_tuple(__version__) < _version_tuple(info.min_client_version):
        raise AgentError(
            f"The server at {base_url} needs camroll {info.min_client_version} or newer; this is "
            f"{__version__}. Fix: upgrade camroll on this device."
        )
