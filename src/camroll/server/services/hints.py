"""Import hints (wire.ImportHints): what an importer knows about a file beyond its bytes.

They arrive with a tus creation (``Upload-Metadata`` key ``hints``, JSON) or with a hash check for a file
the server has already.  Favourite flag and caption are added to the asset (a flag is never cleared, a
caption never replaced), the time and place are kept for the metadata job (used where the file has none),
and the albums are filled after the asset's transaction commits.  A bad album (the user's album limit)
is logged and skipped: it must never cost the upload.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from sqlalchemy import Connection, Table, func, update

from camroll import wire
from camroll.server.context import Context
from camroll.server.models import Asset
from camroll.server.problems import ProblemError

log = logging.getLogger(__name__)
# Distinct album names the hints of one hash check may fill (each is a transaction of its own).
MAX_ALBUMS_PER_REQUEST = 200
_ASSETS: Table = Asset.__table__  # type: ignore[assignment]


def parse(text: str | None) -> wire.ImportHints | None:
    """The hints of an ``Upload-Metadata`` value, or a 400 that names what is wrong."""
    if not text:
        return None
    try:
        return wire.ImportHints.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the value"
        raise ProblemError(400, "bad_request", f"Upload-Metadata hints is not usable: {where}: {first['msg']}.",
                           "Send hints as the JSON of wire.ImportHints (taken_at, latitude, longitude, altitude, "
                           "description, favorite, albums), or leave it out.") from None


def record(conn: Connection, asset_id: int, hints: wire.ImportHints) -> None:
    """Add ``hints`` to the asset in the caller's transaction (never undoing what is there)."""
    values: dict[str, object] = {}
    if hints.favorite:
        values["favorite"] = True
    if hints.description:
        values["description"] = func.coalesce(_ASSETS.c.description, hints.description)
    if values:
        conn.execute(update(_ASSETS).where(_ASSETS.c.id == asset_id).values(**values))
    kept = hints.model_dump(mode="json", include={"taken_at", "latitude", "longitude", "altitude"},
                            exclude_none=True)
    if kept:  # the first importer's word stays
        conn.execute(update(_ASSETS).where(_ASSETS.c.id == asset_id, _ASSETS.c.hints.is_(None)).values(hints=kept))


def fill_albums(ctx: Context, user_id: int, asset_id: int, hints: wire.ImportHints) -> None:
    """Put the asset in each album the hints name (made if new); after the asset's commit."""
    fill_named(ctx, user_id, {name: [asset_id] for name in hints.albums})


def fill_named(ctx: Context, user_id: int, albums: dict[str, list[int]]) -> None:
    """One fill per album name.  Never raises: the assets are committed already, and an album that
    cannot be filled (the user's album limit, a database hiccup) must not turn their upload into an error."""
    from camroll.server.services import albums as album_service

    for name, ids in albums.items():
        try:
            album_service.fill(ctx, user_id, name, ids)
        except ProblemError as exc:
            log.warning("%d assets not added to album %r: %s", len(ids), name[:80], exc.detail)
        except Exception:
            log.exception("%d assets not added to album %r", len(ids), name[:80])
