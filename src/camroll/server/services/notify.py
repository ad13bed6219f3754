"""Each user's notification URLs, and sending them messages through apprise.

apprise is imported only when a URL is checked or a message sent: it is slow to import and most
commands never need it.  Messages go out one at a time on one worker thread (apprise reports why a
send failed only through its log, which is captured per send), and whoever sends waits at most
``notify_timeout_seconds`` for each URL, so a hanging service never holds up the stall checks."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.exc import IntegrityError

from camroll import wire
from camroll.server.context import Context
from camroll.server.models import NotifyTarget, User, utcnow
from camroll.server.problems import ProblemError
from camroll.server.repositories import notify as repo

log = logging.getLogger("camroll.server.notify")

Kind = Literal["info", "success", "warning", "failure"]
URL_HELP = ("Use an apprise URL such as ntfy://ntfy.sh/TOPIC, mailto://USER:PASSWORD@gmail.com or "
            "json://HOST:PORT/PATH (see the apprise documentation for your service).")

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _worker() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="camroll-notify")
        return _executor


def mask(url: str) -> str:
    """The URL as apprise prints it privately (passwords and tokens elided), without its options."""
    import apprise

    plugin = apprise.Apprise.instantiate(url)
    if not plugin:
        scheme = url.partition("://")[0]
        return f"{scheme}://..." if scheme else "..."
    return str(plugin.url(privacy=True)).partition("?")[0]  # type: ignore[no-untyped-call]  # apprise: untyped


def check_url(url: str) -> str:
    """``url`` stripped, or a 400 problem naming what is wrong with it."""
    import apprise

    url = url.strip()
    if "://" not in url:
        raise ProblemError(400, "bad_request", f"'{url}' is not a notification URL (it has no 'scheme://').",
                           URL_HELP)
    if not apprise.Apprise.instantiate(url):
        raise ProblemError(400, "bad_request",
                           f"apprise does not understand the notification URL '{mask(url)}'.", URL_HELP)
    return url


def _info(t: NotifyTarget) -> wire.NotificationTarget:
    return wire.NotificationTarget(id=t.id, url=mask(t.url), created_at=t.created_at, last_sent_at=t.last_sent_at,
                                   last_error=t.last_error, last_error_at=t.last_error_at)


def add(ctx: Context, user_id: int, url: str) -> wire.NotificationTarget:
    url = check_url(url)
    try:
        with ctx.db() as db:
            if repo.target_by_url(db, user_id, url) is not None:
                raise ProblemError(409, "conflict", f"The notification URL '{mask(url)}' is already added.",
                                   "Nothing to do; list them with GET /api/v1/me/notifications.")
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


def _send_one(url: str, title: str, body: str, kind: Kind) -> str | None:
    """Send one message; ``None`` on success, else apprise's reason."""
    import apprise

    sender = apprise.Apprise()
    if not sender.add(url):
        return "apprise does not understand this URL"
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as out:  # type: ignore[no-untyped-call]
        ok = sender.notify(body=body, title=title, notify_type=apprise.NotifyType(kind))
    if ok:
        return None
    lines = [line for line in str(out.getvalue()).splitlines() if line.strip()]
    return lines[-1].strip() if lines else "the service did not accept the message"


def deliver(url: str, title: str, body: str, kind: Kind, timeout: float) -> str | None:
    """:func:`_send_one` on the notify worker, waiting at most ``timeout`` seconds."""
    future = _worker().submit(_send_one, url, title, body, kind)
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as exc:  # apprise plugins raise all sorts; one bad URL must not stop the others
        return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Message:
    user_id: int
    title: str
    body: str
    kind: Kind


def send(ctx: Context, message: Message) -> list[wire.NotificationResult]:
    """Send ``message`` to each of its user's URLs and record how each went."""
    with ctx.db() as db:
        urls = [(t.id, t.url) for t in repo.targets_of(db, message.user_id)]
    results: list[wire.NotificationResult] = []
    for target_id, url in urls:
        error = deliver(url, message.title, message.body, message.kind, ctx.settings.notify_timeout_seconds)
        shown = mask(url)
        if error:
            log.warning("notification to %s failed: %s", shown, error)
        results.append(wire.NotificationResult(id=target_id, url=shown, ok=error is None, error=error))
    if results:
        now = utcnow()
        with ctx.db() as db:
            for r in results:
                target = db.get(NotifyTarget, r.id)
                if target is None:  # removed while the message was out
                    continue
                if r.ok:
                    target.last_sent_at = now
                else:
                    target.last_error, target.last_error_at = (r.error or "")[:2000], now
    return results


def send_test(ctx: Context, user_id: int, username: str) -> list[wire.NotificationResult]:
    return send(ctx, Message(user_id, "camroll: test message",
                             f"This is a test message from the camroll server for {username}; backup alerts "
                             "will arrive here.", "info"))
