"""Many small files in one request (``POST wire.BATCH_PATH``): the body format is written in wire.py.

Why a batch endpoint and not tus concatenation or HTTP/2: what a small file costs is not the bytes but
the per-file work around them: a request, three transactions and three fsyncs (2.5-3.5 ms each on this
disk).  tus concatenation still needs one request per partial upload plus the final one; HTTP/2 (which
uvicorn does not speak) would save round trips but not a single fsync or transaction.  A batch pays a
request, two transactions and one round of fsyncs for up to ``wire.MAX_BATCH_FILES`` files.

Each file is still its own upload as far as the rules go:
* before a byte of the files is read, the manifest is checked (bounds, the server's max file size,
  the quota and disk room for the declared sizes of the files the user does not have yet); a file
  that does not fit is refused on its own and its bytes are skipped, never stored;
* every file's bytes are hashed and compared with its declared SHA-256 and sniffed for a type; a
  mismatch or an unknown type refuses that file alone;
* group commit: the verified files are appended to one staging file without fsync, then stored
  together (``BlobStore.put_batch``: on local disk that file becomes one pack, fsynced once, with one
  index transaction; S3 puts, durable on return), and only then recorded in one transaction that takes every blob's
  lock, re-checks re-used blobs still exist and re-checks the quota.  So no asset row ever precedes
  its durable blob; a crash before the commit leaves blobs without rows, which the orphan sweep takes
  after its grace age; a crash during it leaves no row at all (one transaction);
* a body cut short still commits every file that arrived whole and verified, so the client learns
  from ``/assets/check`` which ones it need not send again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread
from pydantic import ValidationError
from sqlalchemy import select

from camroll import wire
from camroll.media.types import SNIFF_BYTES, sniff
from camroll.server import diskspace, metrics
from camroll.server.context import Context
from camroll.server.models import Asset
from camroll.server.problems import ProblemError
from camroll.server.repositories import assets as asset_repo
from camroll.server.repositories import locks, users
from camroll.server.repositories import uploads as upload_repo
from camroll.server.services.auth import Principal
from camroll.server.services.library import device_name
from camroll.server.services.receive import BodyInterrupted
from camroll.server.storage.base import Span
from camroll.units import format_size

log = logging.getLogger("camroll.server.batch")

_HEADER = len(wire.BATCH_MAGIC) + 4
# Received files are hashed and written to the staging folder this many bytes at a time (one
# worker-thread call), so the event loop only collects bytes and memory stays within a few MiB.
STAGE_BYTES = 4 * 2**20
STAGING_PREFIX = "batch-"


@dataclass(frozen=True)
class _Staged:
    index: int
    entry: wire.BatchEntry
    offset: int  # where its bytes start in the batch's staging file
    mime: str | None


def _refused(index: int, entry: wire.BatchEntry, code: wire.BatchRefusal, detail: str,
             fix: str) -> wire.BatchItemResult:
    return wire.BatchItemResult(index=index, sha256=entry.sha256, status="refused", code=code, detail=detail, fix=fix)


def _bad(detail: str, fix: str, status: int = 400, code: wire.ProblemCode = "bad_request") -> ProblemError:
    return ProblemError(status, code, detail, fix)


class _Reader:
    """Exact reads from a streamed body."""

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self._it = body.__aiter__()
        self._buf = bytearray()
        self.ended = False

    async def exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            try:
                self._buf += await self._it.__anext__()
            except StopAsyncIteration:
                self.ended = True
                raise BodyInterrupted from None
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


async def _manifest(reader: _Reader, content_length: int | None) -> wire.BatchManifest:
    try:
        head = await reader.exactly(_HEADER)
    except BodyInterrupted:
        raise _bad("The batch body ended before its header.", "Send the batch format of wire.py: magic, "
                   "manifest length, manifest, then the files.") from None
    if head[:len(wire.BATCH_MAGIC)] != wire.BATCH_MAGIC:
        raise _bad("The body is not a camroll batch (it does not start with CRB1).",
                   f"Send {wire.BATCH_CONTENT_TYPE} bodies as wire.py describes them.")
    n = int.from_bytes(head[len(wire.BATCH_MAGIC):], "big")
    if n > wire.MAX_BATCH_MANIFEST:
        raise _bad(f"The batch manifest is {format_size(n)}, more than the {format_size(wire.MAX_BATCH_MANIFEST)} "
                   "this server reads.", "Send fewer files per batch.", 413, "request_too_large")
    try:
        raw = await reader.exactly(n)
    except BodyInterrupted:
        raise _bad("The batch body ended inside its manifest.", "Send the whole manifest.") from None
    try:
        manifest = wire.BatchManifest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise _bad(f"The batch manifest is not valid at {where or 'its top'}: {first.get('msg')}.",
                   f"Send at most {wire.MAX_BATCH_FILES} files, each at most "
                   f"{format_size(wire.MAX_BATCH_FILE_SIZE)} with a hex SHA-256 (larger ones go through "
                   "tus).") from None
    total = sum(e.size for e in manifest.files)
    if total > wire.MAX_BATCH_BYTES:
        raise _bad(f"The batch declares {format_size(total)} of files, more than the "
                   f"{format_size(wire.MAX_BATCH_BYTES)} one batch may carry.", "Split it into smaller batches.",
                   413, "request_too_large")
    if content_length is not None and content_length != _HEADER + n + total:
        raise _bad(f"Content-Length is {content_length}, but the header, the manifest and the declared sizes "
                   f"add up to {_HEADER + n + total}.", "Send exactly the declared bytes of every file, in order.")
    for e in manifest.files:
        device_name(e.path, e.filename, e.path_raw)  # a path_raw that is not base64: 400 before the body
    return manifest


def _admit(ctx: Context, who: Principal, manifest: wire.BatchManifest) -> dict[int, wire.BatchItemResult]:
    """Refusals decided from the declared sizes alone, before the body: too large, no quota, no disk."""
    refused: dict[int, wire.BatchItemResult] = {}
    shas = list({e.sha256 for e in manifest.files})
    now = ctx.clock.now()
    with ctx.conn() as conn:
        have = set(conn.scalars(select(Asset.sha256).where(Asset.user_id == who.user_id, Asset.sha256.in_(shas))))
        quota_bytes = users.quota_of(conn, who.user_id)
        quota_left: int | None = None
        if quota_bytes is not None:
            quota_left = quota_bytes - users.used_bytes_core(conn, who.user_id) - upload_repo.reserved_bytes(
                conn, who.user_id, now)
        from camroll.server.services.uploads import disk_room

        disk_left = disk_room(ctx, conn, now)[0]
    seen: set[str] = set()
    for i, e in enumerate(manifest.files):
        if e.size > ctx.settings.max_file_size:
            refused[i] = _refused(i, e, "file_too_large", f"This {format_size(e.size)} file is larger than the "
                                  f"server's limit of {format_size(ctx.settings.max_file_size)}.",
                                  "Ask the admin to raise it (camroll serve --max-file-size).")
            continue
        if e.sha256 in have or e.sha256 in seen:
            continue
        if quota_left is not None and e.size > quota_left:
            refused[i] = _refused(i, e, "quota_exceeded", f"Storage full: this {format_size(e.size)} file does not "
                                  f"fit in the {format_size(max(0, quota_left))} left of the quota.",
                                  "Free space or ask the admin to raise your quota.")
            continue
        if e.size > disk_left:
            refused[i] = _refused(i, e, "storage_full", "The server's disk has no room for this file.",
                                  "Ask the server's admin to free disk space.")
            continue
        seen.add(e.sha256)
        disk_left -= e.size
        if quota_left is not None:
            quota_left -= e.size
    return refused


def _stage(ctx: Context, target: Path, group: list[tuple[int, wire.BatchEntry, bytes]],
           results: dict[int, wire.BatchItemResult]) -> list[_Staged]:
    """Hash, sniff and append (no fsync yet) each received file to the staging file ``target``;
    refusals go to ``results``."""
    staged: list[_Staged] = []
    with open(target, "ab") as out:
        for index, entry, data in group:
            mime = _verified(ctx, index, entry, data, results)
            if mime is not False:
                staged.append(_Staged(index, entry, out.tell(), mime))
                out.write(data)
    return staged


def _verified(ctx: Context, index: int, entry: wire.BatchEntry, data: bytes,
              results: dict[int, wire.BatchItemResult]) -> str | Literal[False] | None:
    """The file's type (None: not a media type, accepted anyway), or False after noting its refusal."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        metrics.of(ctx).verification_failed(metrics.Check.FILE)
        results[index] = _refused(index, entry, "checksum_mismatch", f"The received bytes hash to SHA-256 "
                                  f"{digest}, but the client declared {entry.sha256}; nothing was stored.",
                                  "The file changed or was corrupted in transit; the agent reads it again "
                                  "and sends it again.")
        return False
    media = sniff(data[:SNIFF_BYTES])
    if media is None and not ctx.settings.accept_other_files:
        results[index] = _refused(index, entry, "unsupported_media_type",
                                  f"{entry.filename or 'The file'} is not a photo or video type camroll knows "
                                  "(recognised from its bytes, not its name); nothing was stored.",
                                  "Back up photos and videos only, or ask the server's admin to start it "
                                  "with --accept-other-files.")
        return False
    return media.mime if media else None


def _mtime(mtime_ns: int | None) -> datetime | None:
    if mtime_ns is None:
        return None
    try:
        return datetime.fromtimestamp(mtime_ns / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _not_stored(s: _Staged, why: str) -> wire.BatchItemResult:
    return _refused(s.index, s.entry, "not_stored", why, "Send the file again; the agent does this automatically.")


def _commit(ctx: Context, who: Principal, target: Path, staged: list[_Staged],
            results: dict[int, wire.BatchItemResult]) -> None:
    """Store every staged blob durably, then record them all in one transaction."""
    if not staged:
        return
    first: dict[str, _Staged] = {}
    for s in staged:
        first.setdefault(s.entry.sha256, s)
    try:
        reused = ctx.blobs.put_batch(target, [Span(sha, s.offset, s.entry.size) for sha, s in first.items()])
    except Exception as exc:
        full = diskspace.is_out_of_space(exc)
        log.warning("a batch of %d files could not be stored: %s", len(first), exc)
        for s in staged:
            results[s.index] = (_refused(s.index, s.entry, "storage_full", "The server's disk filled while "
                                         "storing this file.", "Ask the server's admin to free disk space.")
                                if full else _not_stored(s, "The server could not store this file just now."))
        return
    created: list[tuple[int, int]] = []
    with ctx.conn() as conn:
        # In a fixed order (two batches sharing hashes must not deadlock on PostgreSQL): against a trash
        # purge or an orphan sweep deciding a re-used blob's fate meanwhile.
        for sha in sorted(first):
            locks.blob(conn, sha)
        gone = {sha for sha in reused if not ctx.blobs.exists(sha)}
        quota_left: int | None = None
        if users.quota_of(conn, who.user_id) is not None:
            locks.quota(conn, who.user_id)
            quota_left = (int(users.quota_of(conn, who.user_id) or 0) - users.used_bytes_core(conn, who.user_id)
                          - upload_repo.reserved_bytes(conn, who.user_id, ctx.clock.now()))
        have = asset_repo.asset_ids_of(conn, who.user_id, sorted(first))
        # Decide every file first (gone, quota, new or a duplicate), then write in a few statements.
        fresh: dict[str, asset_repo.NewAsset] = {}
        decided: list[tuple[_Staged, str, str, bytes | None]] = []
        for s in staged:
            e = s.entry
            if e.sha256 in gone:
                results[s.index] = _not_stored(s, "Its stored bytes were removed meanwhile (a trash purge).")
                continue
            path, filename, raw = device_name(e.path, e.filename, e.path_raw)
            if e.sha256 not in have and e.sha256 not in fresh:
                if quota_left is not None:
                    if e.size > quota_left:
                        results[s.index] = _refused(s.index, e, "quota_exceeded", f"Storage full: this "
                                                    f"{format_size(e.size)} file no longer fits in the quota.",
                                                    "Free space or ask the admin to raise your quota.")
                        continue
                    quota_left -= e.size
                fresh[e.sha256] = asset_repo.NewAsset(e.sha256, e.size, s.mime, filename, _mtime(e.mtime_ns))
            decided.append((s, path, filename, raw))
        made = asset_repo.create_many(conn, who.user_id, list(fresh.values()))
        for sha, n in fresh.items():
            if sha not in made:  # another request created it meanwhile: it is a duplicate after all
                have[sha] = asset_repo.get_or_create(conn, who.user_id, sha, n.size, n.mime, n.filename, n.mtime)
        files: list[dict[str, object]] = []
        announced: set[str] = set()
        for s, path, filename, raw in decided:
            e = s.entry
            new = e.sha256 in made and e.sha256 not in announced
            asset_id = made[e.sha256] if e.sha256 in made else have[e.sha256]
            if new and who.device_id is not None:
                files.append({"asset_id": asset_id, "device_id": who.device_id, "path": path or filename,
                              "filename": filename, "mtime_ns": e.mtime_ns, "path_raw": raw})
            else:
                asset_repo.record_file_core(conn, asset_id, who.device_id, path or filename, filename,
                                            e.mtime_ns, raw)
            results[s.index] = wire.BatchItemResult(index=s.index, sha256=e.sha256, asset_id=asset_id,
                                                    status="created" if new else "duplicate")
            if new:
                announced.add(e.sha256)
                created.append((asset_id, e.size))
        asset_repo.record_new_files(conn, files)
    # After the commit, never inside it: a job must find the row, and a queue hiccup must not undo it.
    ctx.work.assets_added([asset_id for asset_id, _ in created])
    m = metrics.of(ctx)
    for _, size in created:
        m.upload_completed(size)


def staging_root(ctx: Context) -> Path:
    return ctx.settings.data_dir / "uploads"


def drop_staging(ctx: Context) -> None:
    """Remove staging folders a crash left (at start, before any request): nothing in them counts."""
    root = staging_root(ctx)
    if not root.is_dir():
        return
    for folder in root.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(folder, ignore_errors=True)


async def receive_batch(ctx: Context, who: Principal, body: AsyncIterator[bytes],
                        content_length: int | None) -> wire.BatchResponse:
    """Read, verify, store and record a batch; one result per file, in manifest order.

    Raises ``BodyInterrupted`` when the client went away, after committing every file that arrived whole."""
    reader = _Reader(body)
    manifest = await _manifest(reader, content_length)
    results = await anyio.to_thread.run_sync(_admit, ctx, who, manifest)
    folder = staging_root(ctx) / f"{STAGING_PREFIX}{secrets.token_hex(8)}"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "staged"
    staged: list[_Staged] = []
    group: list[tuple[int, wire.BatchEntry, bytes]] = []
    grouped = 0
    interrupted = False
    try:
        ctx.activity.receiving()
        try:
            for i, entry in enumerate(manifest.files):
                data = await reader.exactly(entry.size)
                ctx.activity.receiving()
                if i in results:
                    continue  # refused before the body: its bytes are skipped, never stored
                group.append((i, entry, data))
                grouped += len(data)
                if grouped >= STAGE_BYTES:
                    staged += await anyio.to_thread.run_sync(_stage, ctx, target, group, results)
                    group, grouped = [], 0
        except BodyInterrupted:
            interrupted = True
        with anyio.CancelScope(shield=True):
            staged += await anyio.to_thread.run_sync(_stage, ctx, target, group, results)
            await anyio.to_thread.run_sync(_commit, ctx, who, target, staged, results)
    finally:
        ctx.activity.receiving()
        with contextlib.suppress(Exception), anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutil.rmtree, folder, True)
    if interrupted:
        log.info("a batch was cut after %d of %d files; the %d verified ones are stored",
                 sum(1 for r in results.values() if r.status != "refused"), len(manifest.files), len(staged))
        raise BodyInterrupted
    return wire.BatchResponse(results=[results[i] for i in range(len(manifest.files))])
