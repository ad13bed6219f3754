"""The timeline (and the trash, listed the same way): newest capture time first, grouped by day,
cursor-paginated with a keyset on (taken_at, id) so page 500 costs what page 1 does."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, cast

from camroll import wire
from camroll.server.context import Context
from camroll.server.models import Asset
from camroll.server.problems import ProblemError
from camroll.server.repositories import assets as repo
from camroll.server.services.auth import Principal
from camroll.server.services.media import capture_time

DEFAULT_LIMIT = 200
Kind = Literal["image", "video", "other"]
_CURSOR_FIX = "Pass next_cursor from the previous page unchanged, or omit it."


def encode_cursor(a: Asset) -> str:
    raw = json.dumps({"t": a.taken_at.isoformat(), "i": a.id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Ours are about 60 characters; a longer one is not ours, and is not worth parsing.
MAX_CURSOR = 300


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError
        body = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when, ident = datetime.fromisoformat(body["t"]), body["i"]
        if (not isinstance(ident, int) or isinstance(ident, bool) or not 0 < ident <= wire.INT64_MAX
                or when.tzinfo is None):
            raise TypeError
        return when.astimezone(UTC), ident
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError, OverflowError):
        raise ProblemError(400, "bad_request", "The cursor is not one this server handed out.", _CURSOR_FIX) from None


def parse_bound(text: str | None, name: str, *, end: bool) -> datetime | None:
    """``from``/``to`` as a date (YYYY-MM-DD: a whole day, ``to`` inclusive) or an ISO 8601 time."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1) if end else day, time(), UTC)
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        # OverflowError: the day after 9999-12-31, or a time whose offset moves it past year 1 or 9999.
        raise ProblemError(400, "bad_request", f"{name}={text[:100]!r} is not a date or time camroll can use.",
                           f"Pass {name} as YYYY-MM-DD or an ISO 8601 time such as 2024-05-01T12:00:00Z, "
                           "between the years 1 and 9999.") from None


def item(a: Asset, has_thumb: bool) -> wire.TimelineItem:
    return wire.TimelineItem(
        id=a.id, kind=cast(Kind, a.kind), mime=a.mime, filename=a.filename, size=a.size,
        capture_time=capture_time(a), capture_time_source=cast(wire.CaptureTimeSource, a.taken_source),
        width=a.width, height=a.height, duration_s=a.duration_s, has_thumbnail=has_thumb,
        live_video_id=a.live_video_id, motion_photo=a.motion_photo, trashed_at=a.trashed_at,
    )


def _days(items: Sequence[wire.TimelineItem]) -> list[wire.TimelineDay]:
    days: list[wire.TimelineDay] = []
    for it in items:
        key = it.capture_time.date().isoformat()
        if not days or days[-1].date != key:
            days.append(wire.TimelineDay(date=key, items=[]))
        days[-1].items.append(it)
    return days


def page(ctx: Context, who: Principal, filters: repo.Filters, cursor: str | None, limit: int) -> wire.TimelinePage:
    after = decode_cursor(cursor) if cursor else None
    with ctx.db() as db:
        rows = repo.timeline(db, who.user_id, filters, after, limit + 1)
        total = repo.count(db, who.user_id, filters)
        more = len(rows) > limit
        rows = rows[:limit]
        # thumbs_at is set only after both files were written; the stat is left to the thumbnail
        # request so a page of 200 costs no file-system calls.
        items = [item(a, a.thumbs_at is not None) for a in rows]
        next_cursor = encode_cursor(rows[-1]) if more and rows else None
    return wire.TimelinePage(days=_days(items), next_cursor=next_cursor, total=total)
