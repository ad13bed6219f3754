"""The rules of a tus upload: creation, status, offsets, completion into an asset, termination,
expiry.  The byte streaming itself lives in :mod:`receive`."""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from camroll import wire
from camroll.media.types import SNIFF_BYTES, sniff
from camroll.server import diskspace
from camroll.server.context import Context
from camroll.server.jobs import queue as job_queue
from camroll.server.models import Upload, utcnow
from camroll.server.problems import ProblemError
from camroll.server.repositories import assets as asset_repo
from camroll.server.repositories import uploads as repo
from camroll.server.services import auth, quota
from camroll.server.services.auth import Principal
from camroll.server.services.library import device_name
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
    user_id: int = 0
    device_id: int | None = None
    declared_sha256: str | None = None


def _state(u: Any) -> UploadState:
    """From an ``Upload`` object or a Core row of the uploads table."""
    meta = u.meta if isinstance(u, Upload) else u._mapping["metadata"]
    offset = u.length if u.state == repo.COMPLETE else u.offset
    return UploadState(u.id, u.length, offset, u.expires_at, dict(meta or {}), u.asset_id, u.user_id,
                       u.device_id, u.declared_sha256)


def _expiry(ctx: Context, now: datetime) -> datetime:
    return now + timedelta(seconds=ctx.settings.upload_expiry_seconds)


def expiry(ctx: Context) -> datetime:
    """When an upload touched now expires."""
    return _expiry(ctx, utcnow())


def _not_found(upload_id: str) -> ProblemError:
    return ProblemError(404, "not_found", f"There is no upload {upload_id} for you on this server.",
                        "Start a new upload (POST to the uploads collection).")


def _gone(upload_id: str) -> ProblemError:
    return ProblemError(410, "gone", f"Upload {upload_id} expired after a pause of more than "
                        "the server's upload expiry and its bytes were deleted.",
                        "Start a new upload; the agent does this automatically.")


def vanished(upload_id: str) -> ProblemError:
    """410 for an upload whose bytes were deleted while a request was on its way to write to it."""
    return ProblemError(410, "gone", f"Upload {upload_id} was ended meanwhile (a newer upload of the same file "
                        "replaced it, or it expired) and its bytes were deleted.",
                        "Start a new upload; the agent does this automatically.")


def parse_metadata(header: str | None) -> dict[str, str]:
    try:
        meta = wire.decode_upload_metadata(header or "")
    except ValueError as exc:
        raise ProblemError(400, "bad_request", f"Upload-Metadata is malformed: {exc}.",
                           "Send comma-separated 'key base64value' pairs, at most "
                           f"{wire.MAX_UPLOAD_METADATA_PAIRS} of them in {wire.MAX_UPLOAD_METADATA} "
                           "characters.") from None
    for key, limit in ((wire.META_PATH, wire.MAX_PATH), (wire.META_FILENAME, wire.MAX_FILENAME)):
        if len(meta.get(key, "")) > limit:
            raise ProblemError(400, "bad_request", f"Upload-Metadata {key} has {len(meta[key])} characters, "
                               f"more than the {limit} this server keeps.", f"Send a {key} of at most {limit} "
                               "characters.")
    for key, signed in ((wire.META_MTIME_NS, True), (wire.META_SIZE, False)):
        if meta.get(key):
            try:
                wire.parse_int64(meta[key], signed=signed)
            except ValueError as exc:
                raise ProblemError(400, "bad_request", f"Upload-Metadata {key} is not usable: {exc}.",
                                   f"Send {key} as a decimal integer in the 64-bit range "
                                   "(mtime_ns: nanoseconds since 1970), or leave it out.") from None
    if wire.META_SHA256 in meta:
        sha = meta[wire.META_SHA256].strip().lower()
        if not _HEX64.match(sha):
            raise ProblemError(400, "bad_request", "Upload-Metadata sha256 must be 64 hex characters, "
                               f"got {meta[wire.META_SHA256]!r}.", "Send the file's SHA-256 in hex.")
        meta[wire.META_SHA256] = sha
    if wire.META_PATH_RAW in meta:
        device_name(meta.get(wire.META_PATH, ""), None, meta[wire.META_PATH_RAW])  # refuses what is not base64
    return meta


def create(ctx: Context, who: Principal, length: int, meta: dict[str, str]) -> UploadState:
    _check_size(ctx, length)
    superseded: list[str] = []
    with ctx.conn() as conn:
        state = _insert(ctx, conn, who, length, meta, superseded)
    _remove_superseded(ctx, superseded)
    return state


def authenticate_and_create(ctx: Context, authorization: str | None,
                            request: tuple[int, dict[str, str]] | ProblemError) -> tuple[Principal, UploadState]:
    """The token check and :func:`create` in one transaction (one database round for both).

    ``request`` is the parsed Upload-Length and metadata, or the error parsing them raised; it is
    raised only after the caller proved who they are, as if authentication had run first."""
    error: ProblemError | None = None
    superseded: list[str] = []
    with ctx.conn() as conn:
        who = auth.authenticate_on(conn, authorization)
        if isinstance(request, ProblemError):
            error = request
        else:
            length, meta = request
            try:
                _check_size(ctx, length)
                state = _insert(ctx, conn, who, length, meta, superseded)
            except ProblemError as exc:
                # Nothing was inserted; the last-seen update (and any superseding) still commits.
                error = exc
    _remove_superseded(ctx, superseded)
    if error is not None:
        raise error
    return who, state


def _check_size(ctx: Context, length: int) -> None:
    if length > ctx.settings.max_file_size:
        raise ProblemError(
            413, "file_too_large",
            f"This {format_size(length)} file is larger than the server's limit of "
            f"{format_size(ctx.settings.max_file_size)}.",
            "Ask the admin to raise it (camroll serve --max-file-size).",
        )


def _insert(ctx: Context, conn: Connection, who: Principal, length: int, meta: dict[str, str],
            superseded: list[str]) -> UploadState:
    """Insert the upload row and create its part file; ``superseded`` gets the ids of the uploads it
    expired, whose bytes the caller removes once its transaction has committed."""
    upload_id = secrets.token_urlsafe(24)
    now = utcnow()
    expires = _expiry(ctx, now)
    declared = meta.get(wire.META_SHA256)
    if declared and who.device_id is not None:
        superseded += _supersede(ctx, conn, who.user_id, who.device_id, declared, meta.get(wire.META_PATH, ""),
                                 now)
    quota.ensure_fits(conn, who.user_id, length)
    ensure_disk_room(ctx, conn, length, now)
    ctx.parts.create(upload_id)
    try:
        repo.insert_row(conn, {
            "id": upload_id, "user_id": who.user_id, "device_id": who.device_id, "length": length,
            "offset": 0, "metadata": meta, "declared_sha256": declared, "state": repo.ACTIVE,
            "created_at": now, "updated_at": now, "expires_at": expires,
        })
    except BaseException:
        ctx.parts.remove(upload_id)
        raise
    return UploadState(upload_id, length, 0, expires, dict(meta), None, who.user_id, who.device_id, declared)


def disk_room(ctx: Context, conn: Connection, now: datetime) -> tuple[int, diskspace.DiskState, int]:
    """Bytes uploads may still write to the server's disk (free space minus the reserve minus what
    unfinished uploads may still write), the tightest disk's state, and those unwritten bytes."""
    blobs = ctx.settings.blobs_dir
    state = diskspace.tightest([ctx.parts.root, *([blobs] if blobs.is_dir() else [])], ctx.settings.data_dir)
    # What each may still write: bytes already in its part file (fsynced or not, recorded or not)
    # are already out of the free space, so they are not counted twice.
    held = sum(max(0, length - max(offset, ctx.parts.size(upload_id) or 0))
               for upload_id, length, offset in repo.unfinished(conn, now))
    return max(0, state.usable - held), state, held


def ensure_disk_room(ctx: Context, conn: Connection, length: int, now: datetime) -> None:
    """507 before any byte of the body is read when the file cannot fit on the server's disk."""
    room, state, held = disk_room(ctx, conn, now)
    if length > room:
        raise diskspace.storage_full(state, length, held)


def offset_now(ctx: Context, upload_id: str) -> int | None:
    with ctx.conn() as conn:
        row = repo.get_row(conn, upload_id)
    return None if row is None else int(row.offset)


def _supersede(ctx: Context, conn: Connection, user_id: int, device_id: int, sha256: str, path: str,
               now: datetime) -> list[str]:
    """Expire this device's unfinished uploads of the same file (same bytes, same path) before it
    starts a new one.

    A device asks for a new upload of a file only when it lost the old one: killed before the
    answer to its creation (a small file's whole body travels in that request) or given up on it.
    Left alone, each such upload would hold a part file and reserve the file's size in the quota
    until it expires, refusing the new upload to an account with room for the file only once.
    An upload a request is still writing to, or one already hashed (being stored), is left alone.
    Returns the expired ids; their part files are the caller's to remove after the commit."""
    ids = [i for i in repo.abandoned(conn, user_id, device_id, sha256, path) if i not in ctx.busy]
    if ids:
        repo.expire(conn, ids, now)
        log.info("expiring %d abandoned upload(s) of %s from device %d", len(ids), sha256[:12], device_id)
    return ids


def _remove_superseded(ctx: Context, upload_ids: list[str]) -> None:
    # Only after the transaction that expired them committed: had it rolled back (a full disk creating
    # the new part file, or failing the commit), they would be active again and need their bytes.
    for upload_id in upload_ids:
        ctx.hashes.drop(upload_id)
        try:
            ctx.parts.remove(upload_id)
        except OSError as exc:
            log.warning("could not remove the part file of superseded upload %s: %s", upload_id, exc)


def _owns(who: Principal, row: Any) -> bool:
    """A session reaches all of its user's uploads (the web UI uploads with one); a device token only
    the uploads of its own device, so a token copied off one device cannot touch another's."""
    return bool(row.user_id == who.user_id and (who.device_id is None or row.device_id == who.device_id))


def _load(ctx: Context, who: Principal, upload_id: str) -> Any:
    with ctx.conn() as conn:
        row = repo.get_row(conn, upload_id)
    if row is None or not _owns(who, row):
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
    with ctx.conn() as conn:
        if not repo.advance(conn, upload_id, start, new_offset, now, expires):
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


def complete(ctx: Context, upload_id: str, hasher: Any | None, known: UploadState | None = None, *,
             advance_from: int | None = None, head: bytes | None = None) -> int:
    """Turn a fully received upload into an asset; returns the asset id.

    ``known`` is the upload as the calling request already loaded it, ``advance_from`` the offset the
    row is still at when that request wrote the last bytes and has not recorded them (the offset then
    moves straight to the end in the same transaction that records the computed hash), ``head`` the
    file's first bytes if the caller has them.  Without ``known`` the row is read here.

    The blob is durable in the store before the asset row exists, so an asset never points at
    missing bytes.  Safe to call again after a crash at any step."""
    computed: str | None = None
    mime: str | None = None
    if known is None:
        with ctx.conn() as conn:
            row = repo.get_row(conn, upload_id)
        if row is None:
            raise _not_found(upload_id)
        if row.state == repo.COMPLETE and row.asset_id is not None:
            return int(row.asset_id)
        known = _state(row)
        computed, mime = row.computed_sha256, row.mime
    digest = computed
    if digest is None or not ctx.blobs.exists(digest):
        digest = hasher.hexdigest() if hasher is not None else ctx.parts.sha256(upload_id)
        declared = known.declared_sha256
        if declared and declared != digest:
            _discard(ctx, upload_id)
            raise ProblemError(
                wire.STATUS_CHECKSUM_MISMATCH, "checksum_mismatch",
                f"The received file hashes to SHA-256 {digest}, but the client declared {declared}; "
                "nothing was stored.",
                "The file changed or was corrupted in transit; the agent retries automatically.",
            )
        media = sniff(head[:SNIFF_BYTES] if head is not None else ctx.parts.head(upload_id, SNIFF_BYTES))
        mime = media.mime if media else None
        if media is None and not ctx.settings.accept_other_files:
            _discard(ctx, upload_id)
            raise ProblemError(
                415, "unsupported_media_type",
                f"{known.metadata.get('filename') or 'The file'} is not a photo or video type camroll knows "
                "(recognised from its bytes, not its name); nothing was stored.",
                "Back up photos and videos only, or ask the server's admin to start it with "
                "--accept-other-files (CAMROLL_ACCEPT_OTHER_FILES=1).",
            )
        now = utcnow()
        try:
            # The hash is committed before the bytes go to the blob store: a crash after put_file
            # (the part file is gone then) is finished by reconcile() from this column.
            with ctx.conn() as conn:
                if asset_repo.asset_id_of(conn, known.user_id, digest) is None:
                    quota.ensure_fits(conn, known.user_id, known.length, completing=upload_id)
                marked = repo.mark_hashed(conn, upload_id, digest, mime, known.length, advance_from, now,
                                          _expiry(ctx, now))
        except ProblemError:
            _discard(ctx, upload_id)
            raise
        if not marked:
            raise ProblemError(409, "conflict", f"Upload {upload_id} was changed by another request.",
                               "Send HEAD to learn the offset and resume from there.")
        try:
            ctx.blobs.put_file(digest, ctx.parts.path(upload_id))
        except Exception as exc:
            _discard_when_full(ctx, upload_id, exc)
            raise
    ctx.hashes.drop(upload_id)
    try:
        try:
            return _finish(ctx, upload_id, digest, known, mime)
        except IntegrityError:
            # Another upload of the same bytes created the blob or asset row first; now it exists.
            return _finish(ctx, upload_id, digest, known, mime)
    except Exception as exc:
        _discard_when_full(ctx, upload_id, exc)
        raise


def _discard_when_full(ctx: Context, upload_id: str, exc: Exception) -> None:
    """A full disk stopped the upload's completion: nothing partial stays (no asset row was made);
    the client sends the file again once there is room.  A blob already stored is reused then."""
    if not diskspace.is_out_of_space(exc):
        return
    try:
        _discard(ctx, upload_id)
    except Exception:
        log.warning("upload %s could not be discarded on a full disk; it expires by itself", upload_id)


def _finish(ctx: Context, upload_id: str, digest: str, known: UploadState, mime: str | None) -> int:
    now = utcnow()
    meta = known.metadata
    path = meta.get(wire.META_PATH) or ""
    filename = meta.get(wire.META_FILENAME) or path.replace("\\", "/").rsplit("/", 1)[-1] or upload_id
    raw: bytes | None = None
    if (raw_text := meta.get(wire.META_PATH_RAW)) is not None:
        with contextlib.suppress(ProblemError):  # checked when the upload was created
            path, filename, raw = device_name(path, filename, raw_text)
    mtime: int | None = None
    # Checked at creation; an upload row from before that check (or edited by hand) must not fail here.
    with contextlib.suppress(ValueError):
        mtime = wire.parse_int64(meta.get(wire.META_MTIME_NS, ""), signed=True)
    with ctx.conn() as conn:
        asset_repo.ensure_blob(conn, digest, known.length)
        asset_id = asset_repo.get_or_create(conn, known.user_id, digest, known.length, mime, filename,
                                            _mtime(mtime))
        asset_repo.record_file_core(conn, asset_id, known.device_id, path or filename, filename, mtime, raw)
        repo.mark_complete(conn, upload_id, asset_id, known.length, now, _expiry(ctx, now))
    # After the commit, never inside it: a job must find the row, and a queue hiccup must not undo it.
    job_queue.asset_added(ctx, asset_id)
    return asset_id


def _mtime(mtime_ns: int | None) -> datetime | None:
    if mtime_ns is None:
        return None
    try:
        return datetime.fromtimestamp(mtime_ns / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def terminate(ctx: Context, who: Principal, upload_id: str) -> None:
    with ctx.db() as db:
        row = repo.get(db, upload_id)
        if row is None or not _owns(who, row):
            raise _not_found(upload_id)
    if upload_id in ctx.busy:
        # Deleting the row under a request that is writing or completing it would leave that request
        # storing a blob and an asset for an upload that no longer exists.
        raise ProblemError(409, "conflict", f"Another request is still writing to upload {upload_id}.",
                           "Retry the DELETE after the request writing to it ends.")
    _discard(ctx, upload_id)


def sweep(ctx: Context) -> int:
    """Delete the bytes of expired uploads (keeping a tombstone for 410); returns how many."""
    now = utcnow()
    with ctx.db() as db:
        expired = [u.id for u in repo.expired_active(db, now) if u.id not in ctx.busy]
    swept = 0
    for upload_id in expired:
        try:
            _expire(ctx, upload_id)
            swept += 1
        except Exception:
            # One upload that cannot be swept must not keep the others' bytes on disk.
            log.exception("could not sweep expired upload %s", upload_id)
    with ctx.db() as db:
        repo.purge_finished(db, now - timedelta(days=TOMBSTONE_DAYS))
    if swept:
        log.info("swept %d expired uploads", swept)
    return swept


def _expire(ctx: Context, upload_id: str) -> None:
    ctx.hashes.drop(upload_id)
    ctx.parts.remove(upload_id)
    with ctx.db() as db:
        row = repo.get(db, upload_id)
        if row is not None and row.state == repo.ACTIVE:
            row.state = repo.EXPIRED


def reconcile(ctx: Context) -> None:
    """Make partial files and the database agree after a restart or crash.

    Runs before the server answers: an upload that cannot be reconciled is logged and given up
    (expired, so its client starts over), never a reason for the server not to start.  A blob it
    may have left in the store is removed by the orphan sweep."""
    with ctx.db() as db:
        rows = list(repo.active(db))
        known = set(repo.all_ids(db))
    for part in ctx.parts.root.glob("*.part"):
        if part.stem not in known:
            # Created just before a crash that lost its database row: nobody can resume it.
            try:
                part.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove the orphan part file %s: %s", part, exc)
    for row in rows:
        try:
            _reconcile_one(ctx, row)
        except ProblemError as exc:
            log.warning("upload %s could not be finished at start-up: %s", row.id, exc.detail)
        except Exception:
            log.exception("upload %s could not be reconciled at start-up; it is given up and its client "
                          "starts again", row.id)
            with contextlib.suppress(Exception):
                _expire(ctx, row.id)


def _reconcile_one(ctx: Context, row: Upload) -> None:
    size = ctx.parts.size(row.id)
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
