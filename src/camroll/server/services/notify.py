"""Each user's notification URLs, and sending them messages through apprise.

apprise is imported only when a URL is checked or a message sent: it is slow to import and most
commands never need it.  What a URL may reach is server/egress.py's rule, checked when it is added and
enforced at the socket while it is sent.  Sends run on services/notify_sender.py's bounded, fair pool
(one user's hanging URLs hold at most one of its threads); each send's time is bounded too (connect
and read timeouts, no retries, at most ``MAX_TARGETS_PER_URL`` recipients), whatever the URL asks for.
What a user is told about a failed send is a sentence of ours and the HTTP status class, never the
service's answer: the full apprise log goes to the server log, for the admin."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from camroll import wire
from camroll.server import egress
from camroll.server.context import Context
from camroll.server.egress import EgressPolicy
from camroll.server.models import NotifyTarget, User
from camroll.server.problems import ProblemError
from camroll.server.repositories import notify as repo
from camroll.server.services.notify_sender import FairSender, QueueFull

if TYPE_CHECKING:
    from apprise.plugins.base import NotifyBase

log = logging.getLogger("camroll.server.notify")

Kind = Literal["info", "success", "warning", "failure"]
URL_HELP = ("Use an apprise URL such as ntfys://ntfy.sh/TOPIC, mailtos://USER:PASSWORD@gmail.com or "
            "tgram://BOT_TOKEN/CHAT_ID (see the apprise documentation for your service).")
MAX_URLS_PER_USER = 10
MAX_TARGETS_PER_URL = 10
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
# Services whose URL host is a token or an id, not where the message goes (they post to a fixed host).
_HOST_IS_NOT_A_DESTINATION = frozenset({"tgram", "discord", "slack", "pover"})
_REFUSED = "the service refused the message or could not be reached"

sender = FairSender()


def _apprise_asset() -> Any:
    import apprise

    # Sequential delivery on the calling thread, which is the thread the egress guard watches.
    return apprise.AppriseAsset(async_mode=False)


def _plugin(url: str) -> NotifyBase | None:
    import apprise

    plugin = apprise.Apprise.instantiate(url, asset=_apprise_asset())
    return plugin or None


def mask(url: str) -> str:
    """The URL as apprise prints it privately (passwords and tokens elided), without its options."""
    plugin = _plugin(url)
    if not plugin:
        scheme = url.partition("://")[0]
        return f"{scheme}://..." if scheme else "..."
    return str(plugin.url(privacy=True)).partition("?")[0]  # type: ignore[no-untyped-call]  # apprise: untyped


def _destinations(scheme: str, url: str) -> list[tuple[str, int | None]]:
    """The (host, port) pairs the URL names as where to connect: its host, and an SMTP relay's."""
    if scheme in _HOST_IS_NOT_A_DESTINATION:
        return []
    try:
        parts = urlsplit(url)
        # An SMTP relay given with smtp= is where mail goes; the host is then only the sender's domain.
        relays = parse_qs(parts.query).get("smtp", [])
        found = [(parts.hostname, parts.port)] if parts.hostname and not relays else []
        for relay in relays:
            # host, host:port or [v6]:port
            found.append((relay.rsplit(":", 1)[0] if relay.count(":") == 1 else relay.strip("[]"), None))
    except ValueError:  # a port that is not a number: apprise decides what the URL means
        return []
    return [(h, p) for h, p in found if h]


def check_url(url: str, policy: EgressPolicy) -> str:
    """``url`` stripped, or a 400 problem naming what is wrong with it: not a URL, a scheme this server
    does not send to, not understood by apprise, too many recipients, or a non-public address."""
    url = url.strip()
    if "://" not in url:
        raise ProblemError(400, "bad_request", f"'{url}' is not a notification URL (it has no 'scheme://').",
                           URL_HELP)
    scheme = url.partition("://")[0].lower()
    if scheme not in policy.schemes:
        raise ProblemError(400, "bad_request", f"This server does not send alerts to {scheme}:// URLs.",
                           f"Use one of {', '.join(sorted(policy.schemes))}:// ; the admin can allow more with "
                           f"{egress.SCHEMES_ENV} (see the README).")
    plugin = _plugin(url)
    if plugin is None:
        raise ProblemError(400, "bad_request",
                           f"apprise does not understand the notification URL '{mask(url)}'.", URL_HELP)
    _bounded(plugin)  # len() counts retries as extra sends
    if len(plugin) > MAX_TARGETS_PER_URL:
        raise ProblemError(400, "bad_request",
                           f"'{mask(url)}' sends each alert to {len(plugin)} recipients; at most "
                           f"{MAX_TARGETS_PER_URL} are allowed per URL.", "Split it into several URLs.")
    for host, port in [] if policy.allow_private else _destinations(scheme, url):
        try:
            addresses = egress.resolve(host, port)
        except (OSError, UnicodeError):
            continue  # not resolvable now; every send checks the address it really connects to
        for address in addresses:
            if why := policy.refusal(address):
                raise ProblemError(400, "bad_request",
                                   f"'{mask(url)}' points at a {why} address; this server sends alerts only to "
                                   "public addresses.",
                                   "Use the service's public address; the admin can allow a private network "
                                   f"with {egress.NETWORKS_ENV} (see the README).")
    return url


def _info(t: NotifyTarget) -> wire.NotificationTarget:
    return wire.NotificationTarget(id=t.id, url=mask(t.url), created_at=t.created_at, last_sent_at=t.last_sent_at,
                                   last_error=t.last_error, last_error_at=t.last_error_at)


def add(ctx: Context, user_id: int, url: str) -> wire.NotificationTarget:
    url = check_url(url, ctx.settings.notify_policy)
    try:
        with ctx.db() as db:
            if repo.target_by_url(db, user_id, url) is not None:
                raise ProblemError(409, "conflict", f"The notification URL '{mask(url)}' is already added.",
                                   "Nothing to do; list them with GET /api/v1/me/notifications.")
            count = db.scalar(select(func.count()).select_from(NotifyTarget).where(NotifyTarget.user_id == user_id))
            if (count or 0) >= MAX_URLS_PER_USER:
                raise ProblemError(409, "conflict", f"You have {count} notification URLs, the most allowed.",
                                   "Remove one you no longer need (DELETE /api/v1/me/notifications/{id}).")
            target = NotifyTarget(user_id=user_id, url=url)
            db.add(target)
            db.flush()
            return _info(target)
    except IntegrityError:
        raise ProblemError(409, "conflict", f"The notification URL '{mask(url)}' is already added.",
                           "Nothing to do; list them with GET /api/v1/me/notifications.") from None


def targets(ctx: Context, user_id: int) -> list[wire.NotificationTarget]:
    with ctx.db() as db:
        return [_info(t) for t in repo.targets_of(db, user_id)]


def all_targets(ctx: Context) -> list[tuple[str, wire.NotificationTarget]]:
    """(username, target) for every user's URLs."""
    with ctx.db() as db:
        names = {u.id: u.username for u in db.query(User).all()}
        return [(names.get(t.user_id, "?"), _info(t)) for t in repo.all_targets(db)]


def remove(ctx: Context, user_id: int, which: str | int) -> wire.NotificationTarget:
    """Remove one URL, named by its id or by the URL itself."""
    with ctx.db() as db:
        if isinstance(which, int) or str(which).isdigit():
            target = repo.target_by_id(db, user_id, int(which))
        else:
            target = repo.target_by_url(db, user_id, str(which).strip())
        if target is None:
            raise ProblemError(404, "not_found", f"There is no notification URL {which!s} to remove.",
                               "List them (GET /api/v1/me/notifications or 'camroll admin notify list') and "
                               "pass an id from there.")
        info = _info(target)
        db.delete(target)
        return info


def _bounded(plugin: NotifyBase) -> None:
    """Whatever the URL's ?cto=, ?rto=, ?retry= and ?wait= say, one send ends in bounded time."""
    plugin.socket_connect_timeout = min(float(plugin.socket_connect_timeout or CONNECT_TIMEOUT), CONNECT_TIMEOUT)
    plugin.socket_read_timeout = min(float(plugin.socket_read_timeout or READ_TIMEOUT), READ_TIMEOUT)
    plugin.retry = 0
    plugin.wait = 0.0


def _send_one(url: str, title: str, body: str, kind: Kind, policy: EgressPolicy) -> str | None:
    """Send one message; ``None`` on success, else why not, in words of ours."""
    import apprise

    plugin = _plugin(url)
    if plugin is None:
        return "apprise does not understand this URL"
    _bounded(plugin)
    sender_ = apprise.Apprise(asset=_apprise_asset())
    sender_.add(plugin)
    with egress.guarded(policy) as refused, \
            apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as out:  # type: ignore[no-untyped-call]
        ok = sender_.notify(body=body, title=title, notify_type=apprise.NotifyType(kind))
    if ok:
        return None
    text = str(out.getvalue())
    log.warning("notification to %s failed: %s", mask(url), " | ".join(line for line in text.splitlines() if line))
    if refused:
        return f"not sent: the service's address is a {refused[0].why} address, and this server sends alerts " \
               "only to public addresses"
    status = re.search(r"error=([1-5])\d\d\b", text)
    return f"{_REFUSED} (HTTP {status.group(1)}xx)" if status else _REFUSED


def _deliver(ctx: Context, target_id: int, url: str, message: Message) -> str | None:
    """Send and record the outcome on the target (which may have been removed meanwhile)."""
    try:
        error = _send_one(url, message.title, message.body, message.kind, ctx.settings.notify_policy)
    except Exception as exc:  # apprise plugins raise all sorts; one bad URL must not stop the others
        log.warning("notification to %s failed: %s: %s", mask(url), type(exc).__name__, exc)
        error = _REFUSED
    _record(ctx, target_id, error)
    return error


def _record(ctx: Context, target_id: int, error: str | None) -> None:
    with ctx.db() as db:
        target = db.get(NotifyTarget, target_id)
        if target is None:
            return
        if error is None:
            target.last_sent_at = ctx.clock.now()
        else:
            target.last_error, target.last_error_at = error[:2000], ctx.clock.now()


@dataclass(frozen=True)
class Message:
    user_id: int
    title: str
    body: str
    kind: Kind


@dataclass(frozen=True)
class _Pending:
    target_id: int
    shown: str
    future: concurrent.futures.Future[str | None] | None
    refused: str | None = None


def _start(ctx: Context, message: Message) -> list[_Pending]:
    """Queue ``message`` for each of its user's URLs; a send that does not fit is recorded as refused."""
    with ctx.db() as db:
        urls = [(t.id, t.url) for t in repo.targets_of(db, message.user_id)]
    pending: list[_Pending] = []
    for target_id, url in urls:
        shown = mask(url)
        try:
            future = sender.submit(message.user_id, functools.partial(_deliver, ctx, target_id, url, message))
        except QueueFull as exc:
            log.warning("notification to %s dropped: %s", shown, exc)
            _record(ctx, target_id, str(exc))
            pending.append(_Pending(target_id, shown, None, str(exc)))
            continue
        pending.append(_Pending(target_id, shown, future))
    return pending


def _result(p: _Pending, timeout: float) -> wire.NotificationResult:
    if p.future is None:
        error = p.refused
    elif not p.future.done():
        error = f"no answer within {timeout:g} s"
    else:
        error = p.future.result()
    return wire.NotificationResult(id=p.target_id, url=p.shown, ok=error is None, error=error)


def send(ctx: Context, message: Message, *, wait: bool = True) -> list[wire.NotificationResult]:
    """Send ``message`` to each of its user's URLs; with ``wait``, wait at most ``notify_timeout_seconds``
    in all and say how each went (a send still running goes on and records its outcome when it ends)."""
    pending = _start(ctx, message)
    if not wait:
        return []
    timeout = ctx.settings.notify_timeout_seconds
    futures = [p.future for p in pending if p.future is not None]
    concurrent.futures.wait(futures, timeout=timeout)
    return [_result(p, timeout) for p in pending]


async def send_async(ctx: Context, message: Message) -> list[wire.NotificationResult]:
    """:func:`send` for a request handler: waits in the event loop, holding no thread."""
    pending = await anyio.to_thread.run_sync(_start, ctx, message)
    timeout = ctx.settings.notify_timeout_seconds
    futures = [asyncio.wrap_future(p.future) for p in pending if p.future is not None]
    if futures:
        await asyncio.wait(futures, timeout=timeout)
    return [_result(p, timeout) for p in pending]


def _test_message(user_id: int, username: str) -> Message:
    return Message(user_id, "camroll: test message",
                   f"This is a test message from the camroll server for {username}; backup alerts will "
                   "arrive here.", "info")


def send_test(ctx: Context, user_id: int, username: str) -> list[wire.NotificationResult]:
    return send(ctx, _test_message(user_id, username))


async def send_test_async(ctx: Context, user_id: int, username: str) -> list[wire.NotificationResult]:
    return await send_async(ctx, _test_message(user_id, username))


def deliver(url: str, title: str, body: str, kind: Kind, timeout: float,
            policy: EgressPolicy | None = None) -> str | None:
    """Send one message to ``url`` on the pool (as no user), waiting at most ``timeout`` seconds."""
    started = time.monotonic()
    future = sender.submit(0, lambda: _send_one(url, title, body, kind, policy or EgressPolicy()))
    try:
        return future.result(timeout=max(0.0, timeout - (time.monotonic() - started)))
    except concurrent.futures.TimeoutError:
        return f"no answer within {timeout:g} s"
