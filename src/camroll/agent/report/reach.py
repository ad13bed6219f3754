"""Probes of what a backup needs beyond the device's own conditions: the server (reachable, compatible,
accepting this device's token, quota headroom, clock) and free disk space for the agent's state.

Each probe returns a value with a ``level`` ("ok", "warn", "fail" or "unknown"), a ``sentence`` a person
understands and the ``fix``; none raises.  Network failures are told apart by walking the exception's
cause chain down to what the operating system said (``socket.gaierror`` is DNS,
``ConnectionRefusedError`` is nothing listening, ``ssl.SSLCertVerificationError`` is an untrusted
certificate), because httpx wraps them all in ``ConnectError``.
"""

from __future__ import annotations

import email.utils
import re
import shutil
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from camroll import API_VERSION, __version__, wire
from camroll.agent.stops import Stop, StopCode
from camroll.units import format_size

Level = Literal["ok", "warn", "fail", "unknown"]
ReachKind = Literal["ok", "bad_url", "dns", "refused", "tls", "timeout", "network", "protocol", "http",
                    "not_camroll"]

PROBE_TIMEOUT = 5.0
QUOTA_WARN = 0.90
SKEW_WARN_SECONDS = 300.0
DISK_WARN_BYTES = 500 * 10**6
DISK_FAIL_BYTES = 50 * 10**6
UPDATE_FIX = "update camroll (pip install -U camroll)"
_RAISE = "camroll admin user set {} --quota SIZE"
RELOGIN_FIX = "run 'camroll login URL --user NAME' again"


@dataclass(frozen=True)
class Finding:
    """What every probe result has: how bad, in a sentence, and what to do about it ("" when nothing)."""

    level: Level
    sentence: str
    fix: str

    @property
    def text(self) -> str:
        return self.sentence + (f" Fix: {self.fix.rstrip('.')}." if self.fix else "")


@dataclass(frozen=True)
class Reach(Finding):
    kind: ReachKind
    # True when the cause clears without the user (a timeout, a network cut, a failing server) and the
    # agent tries again by itself; the fix then says so.
    heals: bool = False
    info: wire.ServerInfo | None = None
    # The server's HTTP Date header and the local time halfway through the request, for clock skew.
    server_date: datetime | None = None
    local_time: datetime | None = None
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class Compat(Finding):
    client_version: str
    min_client_version: str | None


@dataclass(frozen=True)
class Account(Finding):
    kind: Literal["ok", "unauthorized", "client_too_old", "unreachable", "error"]
    user: wire.UserInfo | None = None


@dataclass(frozen=True)
class Quota(Finding):
    used_bytes: int
    quota_bytes: int | None

    @property
    def fraction(self) -> float | None:
        if not self.quota_bytes:
            return None
        return self.used_bytes / self.quota_bytes


@dataclass(frozen=True)
class Skew(Finding):
    # Positive: the server's clock is ahead of this device's.
    seconds: float | None


@dataclass(frozen=True)
class Disk(Finding):
    path: str
    free_bytes: int | None


# --- reachability ------------------------------------------------------------------------------------------
def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or url
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{host}:{port}"


def classify(url: str, exc: BaseException, timeout: float, answered: bool = False) -> Reach:
    """The ``Reach`` for a request to ``url`` that raised ``exc`` (a transport error).  ``answered``: this
    server already answered on this client, so a dropped connection is a network cut, not a wrong URL."""
    where = _host_port(url)
    host = urlsplit(url).hostname or url
    for e in _chain(exc):
        if isinstance(e, ssl.SSLCertVerificationError):
            why = e.verify_message or e.reason or str(e)
            return Reach("fail", f"The server at {url} has a TLS certificate this device does not trust ({why}).",
                         "give the server a certificate from a trusted authority (e.g. Let's Encrypt), or add "
                         "its CA certificate to this device's trusted certificates", "tls")
        if isinstance(e, ssl.SSLError):
            why = e.reason or str(e)
            hint = ("; the server may be speaking plain HTTP" if "WRONG_VERSION" in str(why).upper() else "")
            return Reach("fail", f"The TLS handshake with {where} failed ({why}){hint}.",
                         "check that the URL's scheme matches the server (http:// or https://) and that its TLS "
                         "setup works", "tls")
        if isinstance(e, socket.gaierror):
            return Reach("fail", f"The server name {host} could not be resolved (DNS: {e.strerror or e}).",
                         "check the server URL for typos and that this device's network and DNS work "
                         "(log in again with the right URL if it changed)", "dns")
        if isinstance(e, ConnectionRefusedError):
            return Reach("fail", f"Nothing is listening at {where} (connection refused).",
                         "start the camroll server (camroll serve, or camroll up where it backs up this device) "
                         "or check the host and port in the URL", "refused")
        if isinstance(e, httpx.TimeoutException | TimeoutError):
            stage = "connect" if isinstance(e, httpx.ConnectTimeout) else "answer"
            return Reach("fail", f"The server at {where} did not {stage} within {timeout:g} s (timeout).",
                         "check the network and that the server is running and not overloaded; backup retries "
                         "by itself", "timeout", heals=True)
        if isinstance(e, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return Reach("fail", f"{url!r} is not a server URL camroll can use ({e}).",
                         "log in again with an http:// or https:// URL", "bad_url")
        if isinstance(e, httpx.RemoteProtocolError) and answered:
            return Reach("fail", f"{where} closed the connection in the middle of a request ({e}).",
                         "check this device's network connection; backup resumes by itself when it is back",
                         "network", heals=True)
        if isinstance(e, httpx.RemoteProtocolError):
            return Reach("fail", f"{where} closed the connection or answered with something that is not HTTP "
                                 f"({e}).",
                         "check that the URL points at camroll and its scheme is right (https:// for a TLS server)",
                         "protocol")
    oserr = next((e for e in _chain(exc) if isinstance(e, OSError)), None)
    why = (oserr.strerror if oserr is not None and oserr.strerror else None) or str(exc) or type(exc).__name__
    return Reach("fail", f"Cannot connect to {where} ({why}).",
                 "check this device's network connection; backup resumes by itself when it is back", "network",
                 heals=True)


def _date_header(resp: httpx.Response) -> datetime | None:
    value = resp.headers.get("date")
    if not value:
        return None
    try:
        d = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _client(url: str, token: str | None, timeout: float, transport: httpx.BaseTransport | None) -> httpx.Client:
    headers = {"User-Agent": f"camroll-agent/{__version__}", wire.CLIENT_VERSION_HEADER: __version__}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=httpx.Timeout(timeout),
                        follow_redirects=False, transport=transport)


def _http_problem(url: str, resp: httpx.Response) -> Reach:
    code = resp.status_code
    label = f"HTTP {code} {resp.reason_phrase}".rstrip()
    if 300 <= code < 400:
        to = resp.headers.get("location", "another address")
        return Reach("fail", f"The server at {url} redirects to {to} ({label}).",
                     f"log in again with the address it redirects to (camroll login {to} --user NAME)", "http")
    if code in (404, 405):
        return Reach("fail", f"{url} answered {label} for {wire.API_PREFIX}/server: it does not look like a "
                             "camroll server.",
                     "check the URL: it is the address 'camroll serve' listens on, without a path", "not_camroll")
    if code >= 500:
        return Reach("fail", f"The server at {url} is up but failing ({label}).",
                     "look at the server's log; backup retries by itself once it answers again", "http",
                     heals=True)
    return Reach("fail", f"The server at {url} answered {label} to a request that needs no login.",
                 "check the URL and any proxy in front of the server", "http")


def probe_server(url: str, *, timeout: float = PROBE_TIMEOUT, transport: httpx.BaseTransport | None = None) -> Reach:
    """GET ``/api/v1/server`` at ``url``: is it reachable, and is it camroll?  Never raises."""
    try:
        with _client(url, None, timeout, transport) as client:
            t0 = time.time()
            m0 = time.monotonic()
            try:
                resp = client.get(wire.API_PREFIX + "/server")
            except httpx.HTTPError as exc:
                return classify(url, exc, timeout)
            elapsed = time.monotonic() - m0
    except Exception as exc:  # a broken URL can fail while the client is built; say so, never raise
        return classify(url, exc, timeout)
    mid = datetime.fromtimestamp(t0 + elapsed / 2, UTC)
    if resp.status_code != 200:
        return _http_problem(url, resp)
    try:
        info = wire.ServerInfo.model_validate_json(resp.content)
    except ValidationError:
        return Reach("fail", f"{url} answered, but not like a camroll server ({wire.API_PREFIX}/server is not "
                             "camroll's server description).",
                     "check the URL: it is the address 'camroll serve' listens on", "not_camroll")
    return Reach("ok", f"The server at {url} ({info.name}, camroll {info.version}) answered in "
                       f"{elapsed * 1000:.0f} ms.", "", "ok",
                 info=info, server_date=_date_header(resp), local_time=mid, elapsed_s=elapsed)


# --- compatibility ------------------------------------------------------------------------------------------
def version_tuple(text: str) -> tuple[int, ...]:
    """``"1.2.3rc1"`` -> ``(1, 2, 3)``: the leading dotted numbers, for ordering release versions."""
    m = re.match(r"^\s*v?(\d+(?:\.\d+)*)", text)
    return tuple(int(p) for p in m.group(1).split(".")) if m else ()


def _older(a: str, b: str) -> bool:
    ta, tb = version_tuple(a), version_tuple(b)
    width = max(len(ta), len(tb))
    return ta + (0,) * (width - len(ta)) < tb + (0,) * (width - len(tb))


def check_version(info: wire.ServerInfo, client_version: str = __version__) -> Compat:
    """Whether this camroll may talk to the server described by ``info`` (pure)."""
    need = info.min_client_version
    if info.api_version != API_VERSION:
        newer = info.api_version > API_VERSION
        return Compat("fail", f"The server speaks API version {info.api_version}, this camroll ({client_version}) "
                              f"speaks {API_VERSION}.",
                      UPDATE_FIX if newer else "update the server to the same camroll release as this device",
                      client_version, need)
    if version_tuple(need) and _older(client_version, need):
        return Compat("fail", f"This camroll ({client_version}) is too old for the server, which needs {need} or "
                              "later.", UPDATE_FIX, client_version, need)
    return Compat("ok", f"This camroll ({client_version}) works with the server (camroll {info.version}, which "
                        f"accepts {need} or later).", "", client_version, need)


# --- account, token and quota -----------------------------------------------------------------------------------
def probe_account(url: str, token: str, *, timeout: float = PROBE_TIMEOUT,
                  transport: httpx.BaseTransport | None = None) -> Account:
    """GET ``/api/v1/me`` with the device token: is the token still accepted, and whose account is it?"""
    try:
        with _client(url, token, timeout, transport) as client:
            try:
                resp = client.get(wire.API_PREFIX + "/me")
            except httpx.HTTPError as exc:
                r = classify(url, exc, timeout)
                return Account("fail", r.sentence, r.fix, "unreachable")
    except Exception as exc:
        r = classify(url, exc, timeout)
        return Account("fail", r.sentence, r.fix, "unreachable")
    if resp.status_code == 401:
        return Account("fail", "The server does not accept this device's token (the device was removed, the "
                               "token revoked, or the account changed).", RELOGIN_FIX, "unauthorized")
    if resp.status_code == 426:
        return Account("fail", f"The server refuses this camroll version ({__version__}) as too old.",
                       UPDATE_FIX, "client_too_old")
    if resp.status_code != 200:
        return Account("fail", f"The server answered HTTP {resp.status_code} when asked whose token this is.",
                       "look at the server's log; run camroll doctor again later", "error")
    try:
        user = wire.UserInfo.model_validate_json(resp.content)
    except ValidationError:
        return Account("fail", "The server's answer about this account is not one camroll understands.",
                       "update camroll and the server to the same release", "error")
    return Account("ok", f"Logged in as {user.username}; the server accepts this device's token.", "", "ok", user)


def probe_room(url: str, token: str, *, timeout: float = PROBE_TIMEOUT,
               transport: httpx.BaseTransport | None = None) -> wire.UploadRoom | None:
    """The server's room for this account's uploads (an empty ``/assets/check``), or None when it
    cannot say (older server, or no answer: the other checks report why)."""
    try:
        with _client(url, token, timeout, transport) as client:
            resp = client.post(wire.API_PREFIX + "/assets/check", json={"items": []})
        if resp.status_code != 200:
            return None
        return wire.CheckResponse.model_validate_json(resp.content).room
    except (httpx.HTTPError, ValidationError, OSError):
        return None


def server_disk(room: wire.UploadRoom | None, last_stop: Stop | None) -> Finding:
    """Is the server's disk full?  FAIL when it has no room left, or when the last pass stopped on it
    (the next file did not fit, even if a little room is left)."""
    left = f"{format_size(room.disk_left)} of room for uploads" if room is not None else None
    fix = ("the server's admin must free disk space on the disk holding the server's data directory; "
           "backup resumes by itself")
    if last_stop is not None and last_stop.code is StopCode.SERVER_FULL:
        now = f"; it has {left} now" if left else ""
        why = last_stop.what.rstrip(".")
        return Finding("fail", f"The last backup stopped because {why}{now}.", fix)
    if room is not None and room.disk_left == 0:
        return Finding("fail", "The server's disk is full: it has no room left for uploads.", fix)
    if left is None:
        return Finding("ok", "The server does not say how much disk room it has; uploads will tell.", "")
    return Finding("ok", f"The server's disk has {left}.", "")


def _amount(used: int, total: int) -> str:
    """"14.9 of 15.0 GB": both numbers in the unit that suits the total."""
    unit, div = next(((u, d) for u, d in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3))
                      if total >= d), ("bytes", 1))
    if div == 1:
        return f"{used:,} of {total:,} bytes"
    return f"{used / div:.1f} of {total / div:.1f} {unit}"


def quota_headroom(user: wire.UserInfo) -> Quota:
    """How full the account is: WARN from 90 %, FAIL at 100 % (pure)."""
    used, quota = user.used_bytes, user.quota_bytes
    if quota is None:
        return Quota("ok", f"No storage quota; {format_size(used)} used.", "", used, None)
    amount = _amount(used, quota)
    if used >= quota:
        return Quota("fail", f"Storage full: {amount} used.",
                     f"free space on the server or ask its admin to raise your quota ({_RAISE.format(user.username)});"
                     " backup resumes by itself",
                     used, quota)
    frac = used / quota if quota else 1.0
    if frac >= QUOTA_WARN:
        return Quota("warn", f"Storage almost full: {amount} used ({frac:.0%}).",
                     f"free space on the server or ask its admin to raise your quota before it fills "
                     f"({_RAISE.format(user.username)})", used, quota)
    return Quota("ok", f"{amount} used ({frac:.0%}).", "", used, quota)


# --- clock ------------------------------------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    s = abs(seconds)
    if s < 120:
        return f"{s:.0f} s"
    if s < 2 * 3600:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def clock_skew(server_date: datetime | None, local_time: datetime | None,
               limit_s: float = SKEW_WARN_SECONDS) -> Skew:
    """This device's clock against the server's HTTP ``Date`` (which has whole seconds only, so a skew of a
    second or two is noise)."""
    if server_date is None or local_time is None:
        return Skew("unknown", "The server sent no Date header, so the clocks could not be compared.", "", None)
    skew = (server_date - local_time).total_seconds()
    if abs(skew) <= limit_s:
        return Skew("ok", f"This device's clock agrees with the server's (within {_duration(max(abs(skew), 1))}).",
                    "", skew)
    side = "behind" if skew > 0 else "ahead of"
    return Skew("warn", f"This device's clock is {_duration(skew)} {side} the server's.",
                "turn on automatic time (NTP) on this device and on the server; upload times and retry "
                "schedules depend on it", skew)


# --- disk space for the agent's own files -----------------------------------------------------------------------
def _existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def disk_level(free: int, path: str) -> Disk:
    """WARN under 500 MB, FAIL under 50 MB (pure)."""
    where = f"the disk holding {path}"
    if free < DISK_FAIL_BYTES:
        return Disk("fail", f"Only {format_size(free)} free on {where}; camroll cannot keep its state.",
                    "free disk space on this device", path, free)
    if free < DISK_WARN_BYTES:
        return Disk("warn", f"Only {format_size(free)} free on {where}.",
                    "free disk space on this device before it runs out", path, free)
    return Disk("ok", f"{format_size(free)} free on {where}.", "", path, free)


def probe_disk(path: Path, usage: Callable[[Path], int] | None = None) -> Disk:
    """Free space where the agent keeps ``path`` (its state dir; the nearest existing parent if it is not
    created yet).  ``usage`` returns free bytes for a path (tests)."""
    where = _existing(path)
    try:
        free = usage(where) if usage is not None else shutil.disk_usage(where).free
    except OSError as exc:
        return Disk("unknown", f"Cannot tell the free space on the disk holding {path} ({exc.strerror or exc}).",
                    "", str(path), None)
    return disk_level(free, str(path))
