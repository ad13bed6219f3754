"""The rules of a tus upload: creation, status, offsets, completion into an asset, termination,
expiry.  The byte streaming itself lives in :mod:`receive`."""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from camroll import wire
from camroll.media.types import SNIFF_BYTES, sniff
from camroll.server.context import Context
from camroll.server.models import Upload, utcnow
from camroll.server.problems import ProblemError
from camroll.server.repositories import assets as asset_repo
from camroll.server.repositories import uploads as repo
from camroll.server.services import quota
from camroll.server.services.auth import Principal
from camroll.units import format_size

log = logging.getLogger("camroll.server.uploads")

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# Completed and expired uploads are remembered this long so late clients get 410 or their asset id.
TOMBSTONE_DAYS = 7


@dataclass(frozen=True)
class UploadState:
    id: str
    length: int
    offset: int
    expires_at: datetime
    metadata: dict[str, str]
    asset_id: int | None


def _state(u: Upload) -> UploadState:
    offset = u.length if u.state == repo.COMPLETE else u.offset
    return UploadState(u.id, u.length, offset, u.expires_at, dict(u.meta or {}), u.asset_id)


def _expiry(ctx: Context, now: datetime) -> datetime:
    return now + timedelta(seconds=ctx.settings.upload_expiry_seconds)


def _not_found(upload_id: str) -> ProblemError:
    return ProblemError(404, "not_found", f"There is no upload {upload_id} for you on this server.",
                        "Start a new upload (POST to the uploads collection).")


def _gone(upload_id: str) -> ProblemError:
    return ProblemError(410, "gone", f"Upload {upload_id} expired after a pause of more than "
                        "the server's upload expiry and its bytes were deleted.",
                        "Start a new upload; the agent does this automatically.")


def parse_metadata(header: str | None) -> dict[str, str]:
    try:
        meta = wire.decode_upload_metadata(header or "")
    except ValueError as exc:
        raise ProblemError(400, "bad_request", f"Upload-Metadata is malformed: {exc}.",
                           "Send comma-separated 'key base64value' pairs.") from None
    if wire.META_SHA256 in meta:
        sha = meta[wire.META_SHA256].strip().lower()
        if not _HEX64.match(sha):
            raise ProblemError(400, "bad_request", "Upload-Metadata sha256 must be 64 hex characters, "
                               f"got {meta[wire.META_SHA256]!r}.", "Send the file's SHA-256 in hex.")
        meta[wire.META_SHA256] = sha
    return meta


def create(ctx: Context, who: Principal, length: int, meta: dict[str, str]) -> UploadState:
    if length > ctx.settings.max_file_size:
        raise ProblemError(
            413, "file_too_large",
            f"This {format_size(length)} file is larger than the server's limit of "
            f"{format_size(ctx.settings.max_file_size)}.",
            "Ask the admin to raise it (camroll serve --max-file-size).",
        )
    upload_id = secrets.token_urlsafe(24)
    now = utcnow()
    with ctx.db() as db:
        quota.ensure_fits(db, who.user_id, length, include_reserved=True)
        ctx.parts.create(upload_id)
        try:
            row = Upload(id=upload_id, user_id=who.user_id, device_id=who.device_id, length=length, offset=0,
                         meta=meta, declared_sha256=meta.get(wire.META_SHA256), state=repo.ACTIVE,
                         created_at=now, updated_at=now, expires_at=_expiry(ctx, now))
            db.add(row)
            db.flush()
        except BaseException:
            ctx.parts.remove(upload_id)
            raise
        return _state(row)


def _load(ctx: Context, who: Principal, upload_id: str) -> Upload:
    with ctx.db() as db:
        row = repo.get(db, upload_id)
    if row is None or row.user_id != who.user_id:
        raise _not_found(upload_id)
    if row.state == repo.EXPIRED or (row.state == repo.ACTIVE and row.expires_at <= utcnow()):
        raise _gone(upload_id)
    return row


def status(ctx: Context, who: Principal, upload_id: str) -> UploadState:
    return _state(_load(ctx, who, upload_id))


def check_patch(ctx: Context, who: Principal, upload_id: str, offset: int,
                content_length: int | None) -> UploadState:
    """Validate a PATCH before any byte is read; raises the tus error it deserves."""
    row = _load(ctx, who, upload_id)
    if row.state == repo.COMPLETE:
        if offset == row.length and not content_length:
            return _state(row)
        raise ProblemError(409, "offset_mismatch", f"Upload {upload_id} is already complete.",
                           "Nothing to resend: the file is stored.",
                           headers={"Upload-Offset": str(row.length)})
    if offset != row.offset:
        raise ProblemError(409, "offset_mismatch",
                           f"Upload-Offset {offset} does not match the server's offset {row.offset}.",
                           "Send HEAD to learn the offset and resume from there.",
                           headers={"Upload-Offset": str(row.offset)})
    if content_length is not None and offset + content_length > row.length:
        raise ProblemError(413, "bad_request",
                           f"This PATCH would write up to byte {offset + content_length}, past the "
                           f"declared Upload-Length {row.length}.",
                           "Send no more than Upload-Length minus Upload-Offset bytes.")
    return _state(row)


def record_progress(ctx: Context, upload_id: str, start: int, new_offset: int) -> datetime:
    """Persist the offset after the bytes were fsynced; returns the new expiry."""
    now = utcnow()
    expires = _expiry(ctx, now)
    with ctx.db() as db:
        if not repo.advance(db, upload_id, start, new_offset, now, expires):
            raise ProblemError(409, "conflict", f"Upload {upload_id} was changed by another request.",
                               "Send HEAD to learn the offset and resume from there.")
    return expires


def _discard(ctx: Context, upload_id: str) -> None:
    ctx.hashes.drop(upload_id)
    ctx.parts.remove(upload_id)
    with ctx.db() as db:
        row = repo.get(db, upload_id)
        if row is not None:
            db.delete(row)


def complete(ctx: Context, upload_id: str, hasher: Any | None) -> int:
    """Turn a fully received upload into an asset; returns the asset id.

    The blob is durable in the store before the asset row exists, so an asset never points at
    missing bytes.  Safe to call again after a crash at any step."""
    with ctx.db() as db:
        row = repo.get(db, upload_id)
    if row is None:
        raise _not_found(upload_id)
    if row.state == repo.COMPLETE and row.asset_id is not None:
        return row.asset_id
    digest = row.computed_sha256
    if digest is None or not ctx.blobs.exists(digest):
        digest = hasher.hexdigest() if hasher is not None else ctx.parts.sha256(upload_id)
        declared = row.declared_sha256
        if declared and declared != digest:
            _discard(ctx, upload_id)
            raise ProblemError(
                wire.STATUS_CHECKSUM_MISMATCH, "checksum_mismatch",
                f"The received file hashes to SHA-256 {digest}, but the client declared {declared}; "
                "nothing was stored.",
                "The file changed or was corrupted in transit; the agent retries automatically.",
            )
        media = sniff(ctx.parts.head(upload_id, SNIFF_BYTES))
        try:
            with ctx.db() as db:
                if not asset_repo.by_hashes(db, row.user_id, [digest]):
                    quota.ensure_fits(db, row.user_id, row.length, include_reserved=False)
                fresh = repo.get(db, upload_id)
                assert fresh is not None
                fresh.computed_sha256 = digest
                fresh.mime = media.mime if media else None
                row = fresh
        except ProblemError:
            _discard(ctx, upload_id)
            raise
        ctx.blobs.put_file(digest, ctx.parts.path(upload_id))
    ctx.hashes.drop(upload_id)
    try:
        return _finish(ctx, upload_id, digest)
    except IntegrityError:
        # Another upload of the same bytes created the blob or asset row first; now it exists.
        return _finish(ctx, upload_id, digest)


def _finish(ctx: Context, upload_id: str, digest: str) -> int:
    now = utcnow()
    with ctx.db() as db:
        row = repo.get(db, upload_id)
        assert row is not None
        meta = row.meta or {}
        path = meta.get(wire.META_PATH) or ""
        filename = meta.get(wire.META_FILENAME) or path.replace("\\", "/").rsplit("/", 1)[-1] or upload_id
        asset_repo.ensure_blob(db, digest, row.length)
        asset = asset_repo.get_or_create(db, row.user_id, digest, row.length, row.mime, filename)
        mtime: int | None = None
        with contextlib.suppress(ValueError):
            mtime = int(meta.get(wire.META_MTIME_NS, ""))
        asset_repo.record_file(db, asset.id, row.device_id, path or filename, filename, mtime)
        row.state = repo.COMPLETE
        row.asset_id = asset.id
        row.offset = row.length
        row.updated_at = now
        row.expires_at = _expiry(ctx, now)
        return asset.id


def terminate(ctx: Context, who: Principal, upload_id: str) -> None:
    with ctx.db() as db:
        row = repo.get(db, upload_id)
        if row is None or row.user_id != who.user_id:
            raise _not_found(upload_id)
    _discard(ctx, upload_id)


def sweep(ctx: Context) -> int:
    """Delete the bytes of expired uploads (keeping a tombstone for 410); returns how many."""
    now = utcnow()
    with ctx.db() as db:
        expired = [u.id for u in repo.expired_active(db, now) if u.id not in ctx.busy]
    for upload_id in expired:
        ctx.hashes.drop(upload_id)
        ctx.parts.remove(upload_id)
        with ctx.db() as db:
            row = repo.get(db, upload_id)
            if row is not None and row.state == repo.ACTIVE:
                row.state = repo.EXPIRED
    with ctx.db() as db:
        repo.purge_finished(db, now - timedelta(days=TOMBSTONE_DAYS))
    if expired:
        log.info("swept %d expired uploads", len(expired))
    return len(expired)


def reconcile(ctx: Context) -> None:
    """Make partial files and the database agree after a restart or crash."""
    with ctx.db() as db:
        rows = list(repo.active(db))
        known = set(repo.all_ids(db))
    for part in ctx.parts.root.glob("*.part"):
        if part.stem not in known:
            # Created just before a crash that lost its database row: nobody can resume it.
            part.unlink(missing_ok=True)
    for row in rows:
        size = ctx.parts.size(row.id)
        try:
            if row.offset == row.length and (size is not None or row.computed_sha256):
                complete(ctx, row.id, None)
            elif size is None:
                with ctx.db() as db:
                    fresh = repo.get(db, row.id)
                    if fresh is not None:
                        fresh.state = repo.EXPIRED
            elif size > row.offset:
                # Bytes written but never acknowledged: the client will resend them.
                ctx.parts.truncate(row.id, row.offset)
            elif size < row.offset:
                with ctx.db() as db:
                    fresh = repo.get(db, row.id)
                    if fresh is not None:
                        fresh.offset = size
        except ProblemError as exc:
            log.warning("upload %s could not be finished at start-up: %s", row.id, exc.detail)
        except OSError as exc:
            log.warning("upload %s could not be reconciled at start-up: %s", row.id, exc)
