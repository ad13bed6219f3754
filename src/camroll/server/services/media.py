"""The background work on one asset: metadata into its row, grid and preview thumbnails into the store.

Idempotent: each half is skipped when its timestamp is set (and, for thumbnails, the files exist),
so a retried, duplicated or restarted job does only what is missing.  Thumbnails are keyed by the
blob's SHA-256, so users who uploaded the same bytes share them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.orm import Session

from camroll import wire
from camroll.server.context import Context
from camroll.server.jobs.config import thumbs_dir
from camroll.server.models import Asset, utcnow
from camroll.server.repositories import assets as repo
from camroll.server.storage.thumbs import SIZES, THUMB_MIME, LocalThumbStore, ThumbStore

if TYPE_CHECKING:
    from camroll.media.metadata import MediaInfo
    from camroll.media.sandbox import Sandbox

log = logging.getLogger("camroll.server.jobs")

__all__ = ["SIZES", "THUMB_MIME", "ThumbStore", "local_copy", "process", "thumb_store"]
_CAPTURE_SOURCES = {"exif", "quicktime", "filename", "sidecar", "mtime"}
# These formats have no reduced-resolution decode: a 12 MP HEIC peaks at ~100 MB while libheif decodes
# all of it (a JPEG, decoded at 1/4 scale, at ~25 MB).  One at a time keeps a server whose workers
# meet a batch of iPhone photos near its memory budget; other kinds proceed in parallel.
_FULL_DECODE = {"image/heic", "image/heif", "image/avif", "image/jxl"}
_full_decode = threading.Semaphore(1)

Outcome = Literal["done", "already_done", "gone"]


def thumb_store(ctx: Context) -> ThumbStore:
    """Where this server keeps thumbnails: beside the originals (the same S3 bucket, or local disk)."""
    if ctx.thumbs is not None:
        return ctx.thumbs
    return LocalThumbStore(thumbs_dir(ctx.settings.data_dir))


def local_copy(ctx: Context, sha256: str) -> contextlib.AbstractContextManager[Path]:
    """A local path holding the blob's bytes (ffprobe and Pillow want a seekable file): the store's
    ``local_file`` capability, the blob itself on local disk, a bounded temporary copy elsewhere."""
    return ctx.blobs.local_file(sha256)


@dataclass(frozen=True)
class _Work:
    asset_id: int
    sha256: str
    mime: str | None
    kind: str
    mtime: float | None
    names: tuple[str, ...]  # the file names devices gave it: the blob's own name is its hash
    need_metadata: bool
    need_thumbs: bool  # the files are missing
    mark_thumbs: bool  # the row does not say they exist yet (another user's copy may have made them)


def _plan(ctx: Context, asset_id: int) -> _Work | None:
    store = thumb_store(ctx)
    with ctx.db() as db:
        a = repo.by_id_any_user(db, asset_id)
        if a is None:
            return None
        mtime_ns = repo.earliest_mtime_ns(db, asset_id)
        names = [a.filename, *(f.filename for f, _ in repo.files_of(db, [a.id])[a.id])]
        return _Work(
            asset_id=a.id, sha256=a.sha256, mime=a.mime, kind=a.kind,
            mtime=mtime_ns / 1e9 if mtime_ns is not None else None, names=tuple(dict.fromkeys(n for n in names if n)),
            need_metadata=a.metadata_at is None,
            need_thumbs=a.kind != "other" and not store.has_all(a.sha256),
            mark_thumbs=a.kind != "other" and a.thumbs_at is None,
        )


def process(ctx: Context, asset_id: int, sandbox: Sandbox) -> Outcome:
    """Do whatever is missing for the asset.  The file is read and decoded only in ``sandbox``'s
    child processes, so no file can freeze or exhaust this process.  Raises ``MediaError`` (a
    ``SandboxFailure``, which says whether it is transient) or an ``OSError`` when the file cannot be
    understood or thumbnailed; the caller records it on the asset."""
    from camroll.media import thumbs

    work = _plan(ctx, asset_id)
    if work is None:
        return "gone"
    if not (work.need_metadata or work.need_thumbs or work.mark_thumbs):
        return "already_done"
    store = thumb_store(ctx)
    if work.need_metadata or work.need_thumbs:
        with local_copy(ctx, work.sha256) as path:
            if work.need_metadata:
                info = sandbox.extract(path, mime=work.mime, mtime=work.mtime)
                record_metadata(ctx, work.asset_id, with_filename_time(info, work.names))
            if work.need_thumbs:
                # The semaphore is let go before the files are stored (an upload, on S3).
                with (store.making(work.sha256) as out,
                      _full_decode if work.mime in _FULL_DECODE else contextlib.nullcontext()):
                    sandbox.thumbnails(path, [(thumbs.PREVIEW, out["preview"]), (thumbs.GRID, out["grid"])],
                                       mime=work.mime)
    with ctx.db() as db:
        a = repo.by_id_any_user(db, work.asset_id)
        if a is not None:
            if a.kind != "other" and (work.need_thumbs or a.thumbs_at is None):
                a.thumbs_at = utcnow()
            a.job_error = a.job_error_at = None
    return "done"


def _as_utc(t: datetime) -> tuple[datetime, int | None]:
    """(UTC instant, offset in minutes) of a capture time; a naive one is the camera's wall clock with
    no known offset, stored as if UTC so its calendar day stays the photographer's."""
    if t.tzinfo is None:
        return t.replace(tzinfo=UTC), None
    offset = t.utcoffset() or timedelta(0)
    return t.astimezone(UTC), int(offset.total_seconds() // 60)


def with_filename_time(info: MediaInfo, names: tuple[str, ...]) -> MediaInfo:
    """``info`` with the capture time a device's file name states (IMG_20240101_123456.jpg,
    Screenshot_..., PXL_...) when the file itself had none: ``extract`` saw only the blob, whose
    name is its hash.  EXIF and container times still win; a name wins over an mtime."""
    from camroll.media import filenames

    if info.capture_time_source not in (None, "mtime"):
        return info
    for name in names:
        when = filenames.capture_time(name)
        if when is not None:
            return info.model_copy(update={"capture_time": when, "capture_time_source": "filename"})
    return info


def record_metadata(ctx: Context, asset_id: int, info: MediaInfo) -> None:
    """Store what ``extract`` read and link a Live Photo's halves once both are here."""
    meta = wire.AssetMetadata(
        capture_time=info.capture_time, capture_time_source=info.capture_time_source,
        width=info.width, height=info.height, orientation=info.orientation,
        camera_make=info.make, camera_model=info.model, lens=info.lens,
        latitude=info.latitude, longitude=info.longitude, altitude=info.altitude,
        duration_s=info.duration, frame_rate=info.frame_rate, video_codec=info.video_codec, error=info.error,
    )
    with ctx.db() as db:
        a = repo.by_id_any_user(db, asset_id)
        if a is None:
            return
        if info.capture_time is not None and info.capture_time_source in _CAPTURE_SOURCES:
            a.taken_at, a.taken_offset = _as_utc(info.capture_time)
            a.taken_source = info.capture_time_source
        a.width, a.height, a.duration_s = info.width, info.height, info.duration
        a.camera_make, a.camera_model = info.make, info.model
        a.media = meta.model_dump(mode="json")
        a.motion_photo = info.motion_photo is not None
        mp = info.motion_photo
        a.motion_video_offset, a.motion_video_length = (mp.offset, mp.length) if mp is not None else (None, None)
        a.live_photo_id = info.live_photo_id
        told = _stored_hints(a.hints)
        if told is not None:
            apply_hints(a, told)
        a.metadata_at = utcnow()
        db.flush()
        _link_live(db, a)


def _stored_hints(stored: dict[str, Any] | None) -> wire.ImportHints | None:
    if not stored:
        return None
    try:
        return wire.ImportHints.model_validate(stored)
    except ValueError:  # written by an older server or by hand: the file's own metadata stands alone
        return None


def apply_hints(a: Asset, told: wire.ImportHints) -> None:
    """An importer's time and place (a Takeout sidecar's) where the file itself has none, on the asset
    in the caller's session: its own EXIF or container time, and a time in its name, still win; an
    mtime does not.  Run by the metadata job, and at once for an asset whose job has run already."""
    media = dict(a.media or {})
    if told.taken_at is not None and a.taken_source in ("mtime", "upload"):
        a.taken_at, a.taken_offset = _as_utc(told.taken_at)
        a.taken_source = "sidecar"
        media.update(capture_time=told.taken_at.isoformat(), capture_time_source="sidecar")
    if media.get("latitude") is None and told.latitude is not None and told.longitude is not None:
        media.update(latitude=told.latitude, longitude=told.longitude,
                     altitude=media.get("altitude") if media.get("altitude") is not None else told.altitude)
    if media != (a.media or {}):
        a.media = media


def _link_live(db: Session, a: Asset) -> None:
    partner = repo.live_partner(db, a)
    if partner is None:
        return
    still, video = (a, partner) if a.kind == "image" else (partner, a)
    if video.kind != "video" or still.kind != "image":
        return
    still.live_video_id = video.id
    if video.live_of_id is None:
        video.live_of_id = still.id


def record_failure(ctx: Context, asset_id: int, reason: str) -> None:
    with ctx.db() as db:
        a = repo.by_id_any_user(db, asset_id)
        if a is not None:
            a.job_error = reason[:2000]
            a.job_error_at = utcnow()


def capture_time(a: Asset) -> datetime:
    """The asset's capture time in its own offset (UTC when the offset is unknown)."""
    if a.taken_offset is None:
        return a.taken_at
    return a.taken_at.astimezone(timezone(timedelta(minutes=a.taken_offset)))
