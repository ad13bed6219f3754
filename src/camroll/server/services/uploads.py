"""The rules of a tus upload: creation, status, offsets, completion into an asset, termination,
expiry.  The byte streaming itself lives in :mod:`receive`."""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from camroll import wire
from camroll.media.types import SNIFF_BYTES, sniff
from camroll.server import diskspace, metrics
from camroll.server.context import Context
from camroll.server.models import Upload
from camroll.server.problems import ProblemError
from camroll.server.repositories import assets as asset_repo
from camroll.server.repositories import locks
from camroll.server.repositories import uploads as repo
from camroll.server.services import auth, hints, quota
from camroll.server.services.auth import Principal
from camroll.server.services.library import device_name
from camroll.server.services.partfiles import NOTHING, PartsGone, Recorded
from camroll.units import format_size

log = logging.getLogger("camroll.server.uploads")

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# Completed and expired uploads are remembered this long so late clients get 410 or their asset id.
TOMBSTONE_DAYS = 7
# A request's writer lease on an upload (shared part stores): renewed while its body streams, so it
# lapses this long after a replica died mid-request and another replica may take the upload over.
# Short enough that an agent's retries within one pass (about 27 s of back-off) outlast it, so a
# replica's death costs a file a pause, never a parked file; a writer whose body stalls past it keeps
# writing unless another request took the upload over meanwhile (renewal needs only the writer id).
LEASE_SECONDS = 10.0
# What the sweeper finds in a shared part store beyond the recorded state is removed only when older
# than this (a request on another replica may be between writing and committing it).
STRAY_GRACE_SECONDS = 3600.0


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
    return _expiry(ctx, ctx.clock.now())


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
    hints.parse(meta.get(wire.META_HINTS))  # refuses what is not ImportHints
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
        who = auth.authenticate_on(conn, authorization, now=ctx.clock.now())
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
    now = ctx.clock.now()
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
        ctx.parts.remove(upload_id, NOTHING)
        raise
    metrics.of(ctx).upload_started()
    return UploadState(upload_id, length, 0, expires, dict(meta), None, who.user_id, who.device_id, declared)


def disk_room(ctx: Context, conn: Connection, now: datetime) -> tuple[int, diskspace.DiskState, int]:
    """Bytes uploads may still write to the server's disk (free space minus the reserve minus what
    unfinished uploads may still write), the tightest disk's state, and those unwritten bytes."""
    blobs = ctx.settings.blobs_dir
    parts = ctx.parts.local_root()
    local = [*([parts] if parts is not None else []), *([blobs] if blobs.is_dir() else [])]
    if parts is None:
        # Parts in object storage: no upload writes to this server's disk while it is in progress.
        # (Local blobs still fill as uploads complete; the blob store's own put refuses a full disk.)
        if not local:
            return wire.INT64_MAX, diskspace.DiskState(ctx.settings.data_dir, wire.INT64_MAX, wire.INT64_MAX, 0), 0
        state = diskspace.tightest(local, ctx.settings.data_dir)
        return state.usable, state, 0
    state = diskspace.tightest(local, ctx.settings.data_dir)
    # What each may still write: bytes already in its part file (fsynced or not, recorded or not)
    # are already out of the free space, so they are not counted twice.
    held = sum(max(0, length - max(offset, ctx.parts.size(upload_id, NOTHING) or 0))
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
    ids = [i for i in repo.abandoned(conn, user_id, device_id, sha256, path, now) if i not in ctx.busy]
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
            ctx.parts.remove(upload_id, recorded_of(ctx, upload_id))
        except Exception as exc:
            # The sweeper's look for strays (or reconcile() at the next start) removes them later.
            log.warning("could not remove the parts of superseded upload %s: %s", upload_id, exc)


def _owns(who: Principal, row: Any) -> bool:
    """A session reaches all of its user's uploads (the web UI uploads with one); a device token only
    the uploads of its own device, so a token copied off one device cannot touch another's."""
    return bool(row.user_id == who.user_id and (who.device_id is None or row.device_id == who.device_id))


def _load(ctx: Context, who: Principal, upload_id: str) -> Any:
    with ctx.conn() as conn:
        row = repo.get_row(conn, upload_id)
    if row is None or not _owns(who, row):
        raise _not_found(upload_id)
    if row.state == repo.EXPIRED or (row.state == repo.ACTIVE and row.expires_at <= ctx.clock.now()):
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


def _changed(upload_id: str) -> ProblemError:
    return ProblemError(409, "conflict", f"Upload {upload_id} was changed by another request.",
                        "Send HEAD to learn the offset and resume from there.")


def record_progress(ctx: Context, upload_id: str, start: int, new_offset: int) -> datetime:
    """Persist the offset after the bytes were fsynced; returns the new expiry."""
    now = ctx.clock.now()
    expires = _expiry(ctx, now)
    with ctx.conn() as conn:
        if not repo.advance(conn, upload_id, start, new_offset, now, expires):
            raise _changed(upload_id)
    return expires


def record_parts(ctx: Context, upload_id: str, start: int, before: Recorded, after: Recorded,
                 writer: str) -> datetime:
    """Persist the offset and the part store state that holds it (durable in the store already),
    while ``writer`` still holds the lease; returns the new expiry."""
    now = ctx.clock.now()
    expires = _expiry(ctx, now)
    with ctx.conn() as conn:
        if not repo.advance_parts(conn, upload_id, start, after.size, now, expires, before, after, writer):
            raise _changed(upload_id)
    return expires


def recorded_of(ctx: Context, upload_id: str, row: Any = None) -> Recorded:
    """The part store state the database records for the upload (nothing for local part files)."""
    if not ctx.parts.shared:
        return NOTHING
    with ctx.conn() as conn:
        if row is None:
            row = repo.get_row(conn, upload_id)
        return NOTHING if row is None else repo.recorded(conn, row)


def _busy_elsewhere(upload_id: str) -> ProblemError:
    return ProblemError(409, "conflict", f"Another request is still writing to upload {upload_id}.",
                        "Wait for it to end, then send HEAD and resume from the offset it reports.")


def take_lease(ctx: Context, upload_id: str, writer: str) -> tuple[int, Recorded]:
    """Make ``writer`` the only writer of the upload on every replica (shared part stores); returns the
    recorded offset and part state.  409 while another request holds it, 410 once the upload ended."""
    now = ctx.clock.now()
    with ctx.conn() as conn:
        if not repo.take_lease(conn, upload_id, writer, now, now + timedelta(seconds=LEASE_SECONDS)):
            row = repo.get_row(conn, upload_id)
            if row is None or row.state != repo.ACTIVE:
                raise vanished(upload_id)
            raise _busy_elsewhere(upload_id)
        row = repo.get_row(conn, upload_id)
        return int(row.offset), repo.recorded(conn, row)


def renew_lease(ctx: Context, upload_id: str, writer: str) -> None:
    with ctx.conn() as conn:
        if not repo.renew_lease(conn, upload_id, writer, ctx.clock.now() + timedelta(seconds=LEASE_SECONDS)):
            # Lapsed and taken over (this replica stalled past the lease): stop writing.
            raise _changed(upload_id)


def release_lease(ctx: Context, upload_id: str, writer: str) -> None:
    with ctx.conn() as conn:
        repo.release_lease(conn, upload_id, writer)


def writing_elsewhere(ctx: Context, upload_id: str) -> bool:
    """Whether a request on any replica holds the upload's writer lease (shared part stores)."""
    if not ctx.parts.shared:
        return False
    with ctx.conn() as conn:
        row = repo.get_row(conn, upload_id)
    return row is not None and row.state == repo.ACTIVE and repo.leased(row, ctx.clock.now())


def _discard(ctx: Context, upload_id: str) -> None:
    ctx.hashes.drop(upload_id)
    ctx.parts.remove(upload_id, recorded_of(ctx, upload_id))
    with ctx.db() as db:
        row = repo.get(db, upload_id)
        if row is not None:
            db.delete(row)


class _LeaseKeeper:
    """Renews a writer lease every third of ``LEASE_SECONDS`` from a thread of its own while a long
    step runs (completion on S3 re-reads the whole object to hash it and copies it server-side, far
    longer than one lease): otherwise a retry, a superseding upload, a starting replica's reconcile()
    or a DELETE could act on the upload meanwhile.  ``lost`` once another writer took it over."""

    def __init__(self, ctx: Context, upload_id: str, writer: str) -> None:
        self._ctx = ctx
        self._id = upload_id
        self._writer = writer
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._run, name=f"camroll-lease-{upload_id[:8]}", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 3):
            try:
                with self._ctx.conn() as conn:
                    if not repo.renew_lease(conn, self._id, self._writer,
                                            self._ctx.clock.now() + timedelta(seconds=LEASE_SECONDS)):
                        self.lost = True
                        return
            except Exception as exc:  # a database hiccup: the next round tries again
                log.warning("could not renew the writer lease of upload %s: %s", self._id, exc)

    def check(self) -> None:
        if self.lost:
            raise _changed(self._id)


def complete(ctx: Context, upload_id: str, hasher: Any | None, known: UploadState | None = None, *,
             advance_from: int | None = None, head: bytes | None = None, recorded: Recorded | None = None,
             writer: str | None = None) -> int:
    """Turn a fully received upload into an asset; returns the asset id.

    ``writer`` is the writer lease the caller holds (shared part stores): it is kept renewed until
    completion ends.  See :func:`_complete` for the rest."""
    try:
        if writer is None or not ctx.parts.shared:
            return _complete(ctx, upload_id, hasher, known, advance_from=advance_from, head=head,
                             recorded=recorded)
        with _LeaseKeeper(ctx, upload_id, writer) as lease:
            return _complete(ctx, upload_id, hasher, known, advance_from=advance_from, head=head,
                             recorded=recorded, lease=lease)
    except PartsGone as exc:
        return _parts_gone(ctx, upload_id, writer, exc)


def _parts_gone(ctx: Context, upload_id: str, writer: str | None, exc: PartsGone) -> int:
    """The store no longer holds the complete upload's bytes as recorded: another replica completed it
    meanwhile (its asset id), another request holds it (409), or they are gone (410; the row is left to
    the expiry sweep, so nothing else is deleted on the strength of one failed read)."""
    with ctx.conn() as conn:
        row = repo.get_row(conn, upload_id)
    if row is not None and row.state == repo.COMPLETE and row.asset_id is not None:
        return int(row.asset_id)
    if row is not None and repo.leased(row, ctx.clock.now()) and row.writer_id != writer:
        raise _busy_elsewhere(upload_id) from exc
    log.warning("%s; its client starts again", exc)
    raise vanished(upload_id) from exc


def _complete(ctx: Context, upload_id: str, hasher: Any | None, known: UploadState | None = None, *,
              advance_from: int | None = None, head: bytes | None = None, recorded: Recorded | None = None,
              lease: _LeaseKeeper | None = None) -> int:
    """Turn a fully received upload into an asset; returns the asset id.

    ``known`` is the upload as the calling request already loaded it, ``advance_from`` the offset the
    row is still at when that request wrote the last bytes and has not recorded them (the offset then
    moves straight to the end in the same transaction that records the computed hash), ``head`` the
    file's first bytes if the caller has them, ``recorded`` the part store state that holds the whole
    file (shared stores).  Without ``known`` the row is read here.

    Without ``hasher`` (a restart, or another replica took the upload over) the assembled bytes are
    read back and hashed: the running hash is an optimisation, never a condition of correctness.

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
        if recorded is None:
            recorded = recorded_of(ctx, upload_id, row)
    if recorded is None:
        recorded = recorded_of(ctx, upload_id)
    digest = computed
    if digest is None or not ctx.blobs.exists(digest):
        if hasher is not None:
            digest = hasher.hexdigest()
        else:
            ctx.parts.assemble(upload_id, recorded)
            digest = ctx.parts.sha256(upload_id, recorded)
        declared = known.declared_sha256
        if declared and declared != digest:
            metrics.of(ctx).verification_failed(metrics.Check.FILE)
            _discard(ctx, upload_id)
            raise ProblemError(
                wire.STATUS_CHECKSUM_MISMATCH, "checksum_mismatch",
                f"The received file hashes to SHA-256 {digest}, but the client declared {declared}; "
                "nothing was stored.",
                "The file changed or was corrupted in transit; the agent retries automatically.",
            )
        if hasher is not None:
            ctx.parts.assemble(upload_id, recorded)
        media = sniff(head[:SNIFF_BYTES] if head is not None else ctx.parts.head(upload_id, recorded, SNIFF_BYTES))
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
        if lease is not None:
            lease.check()
        now = ctx.clock.now()
        try:
            # The hash is committed before the bytes go to the blob store: a crash after publishing
            # (the upload's bytes are gone then) is finished by reconcile() from this column.
            with ctx.conn() as conn:
                if asset_repo.asset_id_of(conn, known.user_id, digest) is None:
                    quota.ensure_fits(conn, known.user_id, known.length, completing=upload_id)
                # Against a trash purge or orphan sweep deciding this blob's fate on another replica.
                locks.blob(conn, digest)
                marked = repo.mark_hashed(conn, upload_id, digest, mime, known.length, advance_from, now,
                                          _expiry(ctx, now))
        except ProblemError:
            _discard(ctx, upload_id)
            raise
        if not marked:
            raise ProblemError(409, "conflict", f"Upload {upload_id} was changed by another request.",
                               "Send HEAD to learn the offset and resume from there.")
        if lease is not None:
            lease.check()
        try:
            ctx.parts.publish(upload_id, recorded, digest, ctx.blobs)
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
    now = ctx.clock.now()
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
        told = _hints(meta)
        if told is not None:
            hints.record(conn, asset_id, told)
        repo.mark_complete(conn, upload_id, asset_id, known.length, now, _expiry(ctx, now))
    # After the commit, never inside it: a job must find the row, and a queue hiccup must not undo it.
    ctx.work.asset_added(asset_id)
    if told is not None:
        hints.fill_albums(ctx, known.user_id, asset_id, told)
    metrics.of(ctx).upload_completed(known.length)
    return asset_id


def _hints(meta: dict[str, str]) -> wire.ImportHints | None:
    # Checked at creation; hints gone bad since (a row edited by hand) are dropped, never fatal here.
    try:
        return hints.parse(meta.get(wire.META_HINTS))
    except ProblemError:
        return None


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
    if upload_id in ctx.busy or not _claim(ctx, upload_id):
        # Deleting the row under a request that is writing or completing it would leave that request
        # storing a blob and an asset for an upload that no longer exists.
        raise ProblemError(409, "conflict", f"Another request is still writing to upload {upload_id}.",
                           "Retry the DELETE after the request writing to it ends.")
    _discard(ctx, upload_id)


def _claim(ctx: Context, upload_id: str) -> bool:
    """For a shared part store, take the upload's writer lease for good before ending it, so no request
    on another replica starts writing meanwhile; False while one is.  (An upload that is no longer
    active has no writer.)  Local part files: the caller's ``ctx.busy`` check is the whole story."""
    if not ctx.parts.shared:
        return True
    now = ctx.clock.now()
    with ctx.conn() as conn:
        if repo.take_lease(conn, upload_id, secrets.token_hex(8), now, now + timedelta(seconds=LEASE_SECONDS)):
            return True
        row = repo.get_row(conn, upload_id)
        return row is None or row.state != repo.ACTIVE


def sweep(ctx: Context) -> int:
    """Delete the bytes of expired uploads (keeping a tombstone for 410); returns how many.  A shared
    part store's abandoned multipart uploads are aborted with them, and what it holds that no upload
    records (a request that died between writing and committing) is removed after a grace age."""
    now = ctx.clock.now()
    with ctx.db() as db:
        expired = [u.id for u in repo.expired_active(db, now) if u.id not in ctx.busy and not repo.leased(u, now)]
    swept = 0
    for upload_id in expired:
        try:
            if _claim(ctx, upload_id):
                _expire(ctx, upload_id)
                swept += 1
        except Exception:
            # One upload that cannot be swept must not keep the others' bytes on disk.
            log.exception("could not sweep expired upload %s", upload_id)
    with ctx.db() as db:
        repo.purge_finished(db, now - timedelta(days=TOMBSTONE_DAYS))
    if ctx.parts.shared:
        _drop_strays(ctx, now - timedelta(seconds=STRAY_GRACE_SECONDS))
    if swept:
        log.info("swept %d expired uploads", swept)
    return swept


def _drop_strays(ctx: Context, before: datetime | None) -> None:
    """Remove what the part store holds beyond the recorded state of the active uploads (only what is
    older than ``before``, when given), except for uploads a request is writing to."""
    now = ctx.clock.now()
    keep: list[tuple[str, Recorded]] = []
    writing: set[str] = set(ctx.busy)
    with ctx.conn() as conn:
        for row in repo.active_rows(conn):
            # What strays() compares with: the multipart upload and the tail each row records.
            keep.append((row.id, Recorded(row.multipart_id, (), row.tail_key, int(row.tail_size or 0))))
            if repo.leased(row, now) or repo.completing(row, now):
                writing.add(row.id)
    for stray in ctx.parts.strays(keep):
        if stray.upload_id in writing:
            continue
        if before is not None and (stray.modified is None or stray.modified > before):
            continue
        try:
            ctx.parts.drop_stray(stray)
        except Exception as exc:
            log.warning("could not remove %s (upload %s) from the part store: %s", stray.what,
                        stray.upload_id, exc)


def give_up(ctx: Context, upload_id: str) -> None:
    """Expire an upload whose bytes are gone (its tombstone answers 410; the client starts again)."""
    _expire(ctx, upload_id)


def _expire(ctx: Context, upload_id: str) -> None:
    ctx.hashes.drop(upload_id)
    ctx.parts.remove(upload_id, recorded_of(ctx, upload_id))
    with ctx.db() as db:
        row = repo.get(db, upload_id)
        if row is not None and row.state == repo.ACTIVE:
            row.state = repo.EXPIRED


def reconcile(ctx: Context) -> None:
    """Make the part store and the database agree after a restart or crash.

    Runs before the server answers: an upload that cannot be reconciled is logged and given up
    (expired, so its client starts over), never a reason for the server not to start.  A blob it
    may have left in the store is removed by the orphan sweep.  With a shared part store, other
    replicas may be serving: uploads a request holds the lease of are left to it, and what no upload
    records is removed only once older than the stray grace age."""
    now = ctx.clock.now()
    from camroll.server.services import batch

    try:
        batch.drop_staging(ctx)  # a batch's unrecorded files: their client sends them again
    except Exception:
        # Start-up goes on (the files are only leftovers), but a staging folder that cannot be removed is
        # worth knowing about: it keeps its disk space until someone does.
        log.exception("could not remove the staging files of unrecorded batches")
    try:
        # Local part files no row knows were created just before a crash that lost their row: nobody
        # can resume them.
        _drop_strays(ctx, now - timedelta(seconds=STRAY_GRACE_SECONDS) if ctx.parts.shared else None)
    except Exception:
        log.exception("could not look for part store leftovers at start-up")
    with ctx.db() as db:
        rows = [r for r in repo.active(db) if not repo.leased(r, now)]
    for row in rows:
        try:
            _reconcile_one(ctx, row)
        except ProblemError as exc:
            log.warning("upload %s could not be finished at start-up: %s", row.id, exc.detail)
        except Exception:
            try:
                with ctx.conn() as conn:
                    fresh = repo.get_row(conn, row.id)
            except Exception:
                fresh = row
            if fresh is None or fresh.state != repo.ACTIVE or repo.leased(fresh, ctx.clock.now()):
                continue  # another replica completed, ended or took it meanwhile: not this one's to expire
            log.exception("upload %s could not be reconciled at start-up; it is given up and its client "
                          "starts again", row.id)
            with contextlib.suppress(Exception):
                _expire(ctx, row.id)


def _reconcile_one(ctx: Context, row: Upload) -> None:
    if ctx.parts.shared:
        # Nothing is ever stored past a shared store's recorded state, and asking S3 about every upload
        # in flight would hold up the start of each replica: only uploads whose last bytes were recorded
        # are finished here.  One whose parts vanished is expired by its next request (410).
        if row.offset == row.length:
            writer = secrets.token_hex(8)
            take_lease(ctx, row.id, writer)  # 409 while a request on another replica finishes it
            try:
                complete(ctx, row.id, None, writer=writer)
            finally:
                release_lease(ctx, row.id, writer)
        return
    size = ctx.parts.size(row.id, NOTHING)
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


def resize(ctx: Context, upload_id: str, length: int, metadata: dict[str, str] | None = None) -> UploadState:
    """Change the declared length of an active upload (and its metadata, when given): a chunked WebDAV
    upload learns its size chunk by chunk, and its path only when it is assembled (server/dav/chunks.py).

    A length that grows is admitted like a new upload (the size limit; the quota, counting the user's
    other uploads in flight and this one at its new length); a length under the offset is refused."""
    _check_size(ctx, length)
    now = ctx.clock.now()
    with ctx.conn() as conn:
        row = repo.get_row(conn, upload_id)
        if row is None or row.state != repo.ACTIVE:
            raise vanished(upload_id)
        if length < row.offset:
            raise ProblemError(409, "conflict", f"Upload {upload_id} already holds {row.offset} bytes, more than "
                               f"{length}.", "Send the chunks again from the start.")
        if length > row.length:
            quota.ensure_fits(conn, row.user_id, length, completing=upload_id)
            ensure_disk_room(ctx, conn, length - row.length, now)
        values: dict[str, Any] = {"b_id": upload_id, "length": length, "updated_at": now,
                                  "expires_at": _expiry(ctx, now)}
        if metadata is not None:
            values["metadata"] = metadata
        conn.execute(repo.UPDATE_ACTIVE, values)
        row = repo.get_row(conn, upload_id)
    return _state(row)
