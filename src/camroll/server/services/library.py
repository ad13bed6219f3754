"""The user's library: which hashes they have, listing assets, and reading originals."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

from sqlalchemy import Connection

from camroll import wire
from camroll.server.context import Context
from camroll.server.models import Asset
from camroll.server.problems import ProblemError
from camroll.server.repositories import assets as repo
from camroll.server.services.auth import Principal
from camroll.server.storage.base import ReadStream

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def check(ctx: Context, who: Principal, req: wire.CheckRequest) -> wire.CheckResponse:
    from camroll.server.services import hints
    from camroll.server.services.media import apply_hints

    names = {a for i in req.items if i.hints is not None for a in i.hints.albums}
    if len(names) > hints.MAX_ALBUMS_PER_REQUEST:
        raise ProblemError(400, "bad_request", f"The hints of this check name {len(names)} albums, more than "
                           f"the {hints.MAX_ALBUMS_PER_REQUEST} one request may fill.",
                           "Send the items of fewer albums per check.")
    albums: dict[str, list[int]] = {}
    with ctx.db() as db:
        have = repo.by_hashes(db, who.user_id, (i.sha256 for i in req.items))
        for item in req.items:
            asset = have.get(item.sha256)
            if asset is not None and item.path:
                path, filename, raw = device_name(item.path, item.filename, item.path_raw)
                repo.record_file(db, asset.id, who.device_id, path, filename, item.mtime_ns, raw)
            if asset is not None and item.hints is not None:
                hints.record(db.connection(), asset.id, item.hints)
                if asset.metadata_at is not None:  # its job has run: the hints' time and place apply now
                    apply_hints(asset, item.hints)
                for name in item.hints.albums:
                    albums.setdefault(name, []).append(asset.id)
        missing = list(dict.fromkeys(i.sha256 for i in req.items if i.sha256 not in have))
    hints.fill_named(ctx, who.user_id, albums)
    with ctx.conn() as conn:
        room = upload_room(ctx, conn, who.user_id)
    return wire.CheckResponse(present={h: a.id for h, a in have.items()}, missing=missing, room=room,
                              trashed=[h for h, a in have.items() if a.trashed_at is not None])


def upload_room(ctx: Context, conn: Connection, user_id: int) -> wire.UploadRoom:
    """What the user could upload now, so the agent sends a body only when it will be accepted."""
    from camroll.server.repositories import uploads as upload_repo
    from camroll.server.repositories import users
    from camroll.server.services.uploads import disk_room

    now = ctx.clock.now()
    quota_bytes = users.quota_of(conn, user_id)
    quota_left = None
    if quota_bytes is not None:
        used = users.used_bytes_core(conn, user_id) + upload_repo.reserved_bytes(conn, user_id, now)
        quota_left = max(0, quota_bytes - used)
    return wire.UploadRoom(quota_left=quota_left, disk_left=disk_room(ctx, conn, now)[0])


def device_name(path: str, filename: str | None, path_raw: str | None) -> tuple[str, str, bytes | None]:
    """(path, filename, raw bytes) to record for a device's copy.  With ``path_raw`` (a name that is not
    UTF-8) the exact bytes are the truth and the readable texts are made from them here, so every device
    path row shows the same form; a ``path_raw`` that is not base64 is refused."""
    if path_raw is None:
        return path, filename or path.replace("\\", "/").rsplit("/", 1)[-1], None
    try:
        raw = wire.raw_name_from_wire(path_raw)
    except ValueError:
        raise ProblemError(400, "bad_request", "path_raw is not base64.",
                           "Send the path's exact bytes in standard base64, or leave path_raw out.") from None
    name = raw.replace(b"\\", b"/").rsplit(b"/", 1)[-1]
    # The readable form can be four times the bytes: clipped to the bounds of a path the API takes.
    return wire.display_name(raw)[:wire.MAX_PATH], wire.display_name(name)[:wire.MAX_FILENAME], raw


def _infos(ctx: Context, assets: Sequence[Asset]) -> list[wire.AssetInfo]:
    with ctx.db() as db:
        files = repo.files_of(db, [a.id for a in assets])
    return [
        wire.AssetInfo(
            id=a.id, sha256=a.sha256, size=a.size, mime=a.mime, filename=a.filename, created_at=a.created_at,
            files=[wire.AssetFileInfo(device_id=f.device_id, device_name=name, path=f.path,
                                      filename=f.filename, mtime_ns=f.mtime_ns,
                                      path_raw=None if f.path_raw is None else wire.raw_name_to_wire(f.path_raw))
                   for f, name in files[a.id]],
        )
        for a in assets
    ]


def _encode_cursor(before_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": before_id}).encode()).decode().rstrip("=")


# Ours are about 30 characters; a longer one is not ours, and is not worth parsing.
MAX_CURSOR = 200


def _decode_cursor(cursor: str) -> int:
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)["before"]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= wire.INT64_MAX:
            raise TypeError
        return value
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
        raise ProblemError(400, "bad_request", "The cursor is not one this server handed out.",
                           "Pass next_cursor from the previous page unchanged, or omit it.") from None


def page(ctx: Context, who: Principal, cursor: str | None, limit: int,
         listing: repo.Listing = repo.Listing()) -> wire.AssetPage:
    before = _decode_cursor(cursor) if cursor else None
    with ctx.db() as db:
        if listing.album_id is not None:
            from camroll.server.services.albums import own_album

            own_album(db, who, listing.album_id)
        rows = repo.page(db, who.user_id, before, limit + 1, listing)
    more = len(rows) > limit
    rows = rows[:limit]
    return wire.AssetPage(items=_infos(ctx, rows),
                          next_cursor=_encode_cursor(rows[-1].id) if more and rows else None)


def _get(ctx: Context, who: Principal, asset_id: int) -> Asset:
    with ctx.db() as db:
        asset = repo.by_id(db, who.user_id, asset_id)
    if asset is None:
        raise ProblemError(404, "not_found", f"You have no asset with id {asset_id}.",
                           "List your assets with GET /api/v1/assets.")
    return asset


def original(ctx: Context, who: Principal, asset_id: int) -> Asset:
    """The asset whose original the caller may read."""
    return _get(ctx, who, asset_id)


def detail(ctx: Context, who: Principal, asset_id: int) -> wire.AssetDetail:
    """Everything the viewer's info panel shows: the AssetInfo fields plus metadata and job state."""
    from camroll.server.services.media import capture_time

    asset = _get(ctx, who, asset_id)
    info = _infos(ctx, [asset])[0]
    meta = wire.AssetMetadata.model_validate(asset.media or {})
    meta.capture_time = capture_time(asset)
    meta.capture_time_source = cast(wire.CaptureTimeSource, asset.taken_source)
    return wire.AssetDetail(
        **info.model_dump(), kind=cast(Literal["image", "video", "other"], asset.kind), metadata=meta,
        has_thumbnail=asset.thumbs_at is not None, job_error=asset.job_error, trashed_at=asset.trashed_at,
        live_video_id=asset.live_video_id, motion_video_offset=asset.motion_video_offset,
        motion_video_length=asset.motion_video_length, favorite=bool(asset.favorite), description=asset.description,
        **_copies_of(ctx, asset.sha256),
    )


def _copies_of(ctx: Context, sha256: str) -> dict[str, Any]:
    """When scrub last proved the blob intact here, and its copies on the replicas (server/replicas/)."""
    from camroll.server.replicas.status import copies_of

    return copies_of(ctx, sha256)


def replica_copy(ctx: Context, name: str, asset: Asset) -> ReadStream:
    """A stream of ``asset``'s original from replica ``name`` (it is the caller's to check the bytes: the
    replica's copy is what is being tested)."""
    from camroll.server.replicas.admin import NoSuchReplica, get
    from camroll.server.replicas.urls import ReplicaConfigError, open_target
    from camroll.server.storage.base import BlobNotFound, StorageFailure

    try:
        row = get(ctx, name)
        target = open_target(row.url, dict(row.options or {}))
    except NoSuchReplica:
        raise ProblemError(404, "not_found", f"This server has no replica named {name!r}.",
                           f"GET /api/v1/assets/{asset.id} lists the replicas that hold its copies.") from None
    except ReplicaConfigError as exc:
        log.warning("replica %r cannot be opened for a restore: %s", name, exc)
        raise ProblemError(409, "conflict", f"Replica {name!r} cannot be opened now.",
                           "Ask the server's admin to look at it (camroll admin replica status).") from None
    try:
        stream = target.open(asset.sha256)
    except BlobNotFound:
        target.close()
        raise ProblemError(404, "not_found", f"Replica {name!r} has no copy of asset {asset.id}.",
                           f"GET /api/v1/assets/{asset.id} lists the replicas that hold its copies.") from None
    except StorageFailure as exc:
        target.close()
        log.warning("replica %r did not give %s for a restore: %s", name, asset.sha256, exc)
        raise ProblemError(502, "busy", f"Replica {name!r} did not give its copy of asset {asset.id}.",
                           "Try again later, or restore from another replica.") from None
    return _Closing(stream, target.close)


class _Closing:
    """A replica stream that closes its target when it is closed."""

    def __init__(self, stream: ReadStream, close_target: Callable[[], None]) -> None:
        self.stream, self.close_target = stream, close_target

    def read(self, size: int = -1, /) -> bytes:
        return self.stream.read(size)

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            self.close_target()
