"""Streaming a PATCH (or creation-with-upload) body into a partial upload.

The event loop only collects the body; writing and hashing run in worker threads (hashlib and file
writes release the GIL) and overlap with receiving the next block, so several uploads use several
cores.  Bytes are durable (fsynced; in S3) before the offset is recorded, so an acknowledged offset is
never lost.

Two paths: local part files are written in place (``_receive_small``: one worker-thread call for a
body within one block; ``_receive``: overlapped write and hash); a shared part store (S3) goes through
its ``PartWriter`` under the upload's writer lease in the database (``_receive_shared``), so a second
writer on another replica is refused like one in this process."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from camroll import wire
from camroll.media.types import SNIFF_BYTES
from camroll.server import diskspace, metrics
from camroll.server.context import Context
from camroll.server.problems import ProblemError
from camroll.server.services import uploads
from camroll.server.services.partfiles import (
    NOTHING,
    PartsAssembled,
    PartsExhausted,
    PartsGone,
    PartWriter,
    Recorded,
)

log = logging.getLogger("camroll.server.uploads")

# What the event loop gathers before a worker thread writes and hashes it.  At most two blocks per
# upload are in memory (one being written, one gathering); with the agent's parallel uploads 4 MiB blocks
# took the server to 175 MB peak on the camera-roll bench (286 MB/s), 1 MiB to 149 MB (265-270 MB/s).
BLOCK = 1 * 2**20
FLUSH_EVERY = 64 * 2**20


class BodyInterrupted(Exception):
    """The client went away before the whole body arrived."""


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes

    def new(self) -> Any:
        return hashlib.new(self.algorithm)


def parse_checksum(header: str | None) -> Checksum | None:
    if header is None:
        return None
    algorithm, _, value = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in wire.TUS_CHECKSUM_ALGORITHMS:
        raise ProblemError(400, "bad_request", f"Upload-Checksum algorithm {algorithm!r} is not supported.",
                           f"Use one of: {', '.join(wire.TUS_CHECKSUM_ALGORITHMS)}.")
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ProblemError(400, "bad_request", "Upload-Checksum value is not base64.",
                           "Send 'Upload-Checksum: <algorithm> <base64 digest>'.") from None
    return Checksum(algorithm, digest)


@dataclass(frozen=True)
class Received:
    offset: int
    expires_at: datetime | None
    asset_id: int | None


def _succeeded(fut: asyncio.Future[None]) -> bool:
    return not fut.cancelled() and fut.exception() is None


def _each(job: Callable[[bytes], object], blocks: list[bytes]) -> None:
    for b in blocks:
        job(b)


class _Sink:
    """The open partial file and the hashes it feeds."""

    def __init__(self, fd: int, whole: Any, chunk: Any) -> None:
        self.fd = fd
        self.whole = whole
        self.chunk = chunk
        self._unflushed = 0
        self._flushing: asyncio.Future[None] | None = None

    async def consume(self, blocks: list[bytes]) -> None:
        """Write and hash ``blocks``, each job on its own worker thread so they use separate cores."""
        jobs = [self._write] + [h.update for h in (self.whole, self.chunk) if h is not None]
        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(anyio.to_thread.run_sync, _each, job, blocks)
        self._unflushed += sum(len(b) for b in blocks)
        if self._unflushed >= FLUSH_EVERY and (self._flushing is None or self._flushing.done()):
            # Start writeback while the body is still arriving; otherwise the kernel holds gigabytes
            # dirty and the fsync at the end of a large PATCH waits for all of it at once.
            self._unflushed = 0
            self._flushing = asyncio.ensure_future(anyio.to_thread.run_sync(os.fdatasync, self.fd))

    def _write(self, block: bytes) -> None:
        view = memoryview(block)
        while view:
            view = view[os.write(self.fd, view):]

    async def settle(self) -> None:
        if self._flushing is not None:
            await asyncio.wait([self._flushing])
            self._flushing = None

    async def rewind(self, start: int) -> None:
        await self.settle()
        await anyio.to_thread.run_sync(self._rewind, start)

    def _rewind(self, start: int) -> None:
        os.ftruncate(self.fd, start)
        os.lseek(self.fd, start, os.SEEK_SET)
        os.fsync(self.fd)

    async def sync(self) -> None:
        await self.settle()
        await anyio.to_thread.run_sync(os.fsync, self.fd)


async def receive(ctx: Context, upload_id: str, start: int, length: int, body: AsyncIterator[bytes],
                  checksum: Checksum | None, known: uploads.UploadState | None = None) -> Received:
    """Append ``body`` at ``start``; record the new offset; complete the upload on its last byte.

    ``known`` is the upload as the caller loaded it; with it, a body that completes the upload goes
    straight to :func:`uploads.complete` without recording the intermediate offset first.
    Raises ``BodyInterrupted`` after saving what can be kept when the client disconnects."""
    if upload_id in ctx.busy:
        raise ProblemError(409, "conflict", f"Another request is still writing to upload {upload_id}.",
                           "Wait for it to end, then send HEAD and resume from the offset it reports.")
    ctx.busy.add(upload_id)
    ctx.activity.receiving()
    try:
        if ctx.parts.shared:
            return await _receive_shared(ctx, upload_id, start, length, body, checksum, known)
        # Read up to one block first: a body that ends within it (every small photo) is written,
        # hashed, fsynced and recorded in a single worker-thread call instead of a dozen hand-offs.
        first: list[bytes] = []
        size = 0
        ended = interrupted = False
        it = body.__aiter__()
        try:
            while size < BLOCK:
                try:
                    data = await it.__anext__()
                except StopAsyncIteration:
                    ended = True
                    break
                except BodyInterrupted:
                    interrupted = True
                    break
                if start + size + len(data) > length:
                    first.append(data)
                    size += len(data)
                    break  # _receive refuses it with 413
                first.append(data)
                size += len(data)
        except anyio.get_cancelled_exc_class():
            # Server shutdown: like _receive, keep what arrived unless the chunk is checksummed.
            if checksum is None and size and start + size <= length:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(
                        _receive_small, ctx, upload_id, start, length, first, size, None, None)
            raise
        if ended and start + size <= length:
            return await anyio.to_thread.run_sync(
                functools.partial(_receive_small, ctx, upload_id, start, length, first, size, checksum, known)
            )
        rest = _chain(first, None if ended else it, interrupted)
        return await _receive(ctx, upload_id, start, length, rest, checksum, known)
    except FileNotFoundError as exc:
        if ctx.parts.size(upload_id, NOTHING) is not None:
            raise
        # Its part file went between the caller's checks and this request joining ``ctx.busy``: a newer
        # upload of the same file superseded it, or the sweeper expired it.  The bytes are gone.
        raise uploads.vanished(upload_id) from exc
    except Exception as exc:
        if not diskspace.is_out_of_space(exc):
            raise
        # Writing the part file, fsyncing it or recording the offset ran out of space (perhaps inside
        # a task group's ExceptionGroup): what this request wrote is cut off again, so the offset the
        # client learns from HEAD is one whose bytes are all on disk.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_undo_after_full_disk, ctx, upload_id, start)
        raise diskspace.storage_full() from exc
    finally:
        ctx.activity.receiving()
        ctx.busy.discard(upload_id)


def _local_path(ctx: Context, upload_id: str) -> Path:
    path = ctx.parts.local_path(upload_id)
    assert path is not None, "the in-place paths are for part stores with local files"
    return path


def _undo_after_full_disk(ctx: Context, upload_id: str, start: int) -> None:
    ctx.hashes.drop(upload_id)
    try:
        if uploads.offset_now(ctx, upload_id) == start:
            ctx.parts.truncate(upload_id, start)
    except Exception:
        # The sweeper and reconcile() cut it back later; the recorded offset is what counts.
        log.warning("could not cut upload %s back to byte %d after the disk filled", upload_id, start)


async def _chain(first: list[bytes], rest: AsyncIterator[bytes] | None,
                 interrupted: bool) -> AsyncIterator[bytes]:
    """The body again: the blocks already read, then the rest (which may raise ``BodyInterrupted``)."""
    for data in first:
        yield data
    if interrupted:
        raise BodyInterrupted
    if rest is not None:
        async for data in rest:
            yield data


def _receive_small(ctx: Context, upload_id: str, start: int, length: int, blocks: list[bytes], size: int,
                   checksum: Checksum | None, known: uploads.UploadState | None) -> Received:
    """A whole body already in memory (at most ``BLOCK`` bytes), in one worker thread.

    The chunk checksum is checked before anything is written, so a mismatch leaves the partial file
    and the running hash untouched.  Otherwise the same order as :func:`_receive`: write, fsync,
    then record the offset (or complete the upload)."""
    whole = ctx.hashes.take(upload_id, start)
    if checksum is not None:
        # From offset 0 with sha256, the chunk hash is the whole-file hash: compute it once.
        shared = whole is not None and start == 0 and checksum.algorithm == "sha256"
        chunk = hashlib.sha256() if shared else checksum.new()
        for b in blocks:
            chunk.update(b)
        if chunk.digest() != checksum.digest:
            metrics.of(ctx).verification_failed(metrics.Check.CHUNK)
            if whole is not None:
                ctx.hashes.put(upload_id, start, whole)
            raise ProblemError(
                wire.STATUS_CHECKSUM_MISMATCH, "checksum_mismatch",
                f"This chunk's {checksum.algorithm} checksum does not match the bytes received; "
                "they were discarded.",
                f"Resend the chunk from offset {start}.", headers={"Upload-Offset": str(start)},
            )
        if shared:
            whole = chunk
        elif whole is not None:
            for b in blocks:
                whole.update(b)
    elif whole is not None:
        for b in blocks:
            whole.update(b)
    new_offset = start + size
    if size:
        fd = os.open(_local_path(ctx, upload_id), os.O_WRONLY)
        try:
            try:
                os.lseek(fd, start, os.SEEK_SET)
                for b in blocks:
                    view = memoryview(b)
                    while view:
                        view = view[os.write(fd, view):]
                os.fsync(fd)
            except BaseException:
                # Unknown state (disk full): drop what this request wrote.
                ctx.hashes.drop(upload_id)
                os.ftruncate(fd, start)
                os.fsync(fd)
                raise
        finally:
            os.close(fd)
        if new_offset == length and known is not None:
            # As in _receive: the offset is recorded together with the computed hash in complete().
            head = b""
            for b in blocks:
                if len(head) >= SNIFF_BYTES or start != 0:
                    break
                head += b[:SNIFF_BYTES - len(head)]
            done = uploads.complete(ctx, upload_id, whole, known, advance_from=start,
                                    head=head if start == 0 else None)
            return Received(new_offset, uploads.expiry(ctx), done)
    expires = uploads.record_progress(ctx, upload_id, start, new_offset) if size else None
    if whole is not None:
        ctx.hashes.put(upload_id, new_offset, whole)
    asset_id = None
    if new_offset == length:
        asset_id = uploads.complete(ctx, upload_id, ctx.hashes.take(upload_id, new_offset))
    return Received(new_offset, expires, asset_id)


async def _receive(ctx: Context, upload_id: str, start: int, length: int, body: AsyncIterator[bytes],
                   checksum: Checksum | None, known: uploads.UploadState | None) -> Received:
    whole = ctx.hashes.take(upload_id, start)
    whole_before = whole.copy() if whole is not None and checksum is not None else whole
    # A sha256-checksummed body from offset 0 hashes the same bytes as the whole-file hash (a hasher
    # taken at offset 0 has consumed nothing): one hasher serves as both.
    shared = whole is not None and start == 0 and checksum is not None and checksum.algorithm == "sha256"
    fd = await anyio.to_thread.run_sync(os.open, _local_path(ctx, upload_id), os.O_WRONLY)
    sink = _Sink(fd, whole, checksum.new() if checksum and not shared else None)
    head = b""
    written = 0
    pending: asyncio.Future[None] | None = None
    buf: list[bytes] = []
    buffered = 0
    interrupted = False
    try:
        await anyio.to_thread.run_sync(os.lseek, fd, start, os.SEEK_SET)
        try:
            async for data in body:
                if start + written + buffered + len(data) > length:
                    raise ProblemError(413, "bad_request",
                                       f"The body runs past the declared Upload-Length {length}.",
                                       "Send no more than Upload-Length minus Upload-Offset bytes.")
                if start == 0 and len(head) < SNIFF_BYTES:
                    head += data[:SNIFF_BYTES - len(head)]
                buf.append(data)
                buffered += len(data)
                if buffered >= BLOCK:
                    if pending is not None:
                        await pending
                    blocks, buf = buf, []
                    written += buffered
                    buffered = 0
                    pending = asyncio.ensure_future(sink.consume(blocks))
        except BodyInterrupted:
            interrupted = True
        if pending is not None:
            await pending
            pending = None
        if buf and not (interrupted and checksum):
            written += buffered
            await sink.consume(buf)
        chunk_hash = sink.whole if shared else sink.chunk
        mismatch = (checksum is not None and chunk_hash is not None and not interrupted
                    and chunk_hash.digest() != checksum.digest)
        if (interrupted and checksum) or mismatch:
            await sink.rewind(start)
            written = 0
            sink.whole = whole_before
        else:
            await sink.sync()
    except anyio.get_cancelled_exc_class():
        # Server shutdown: like a disconnect, keep what was written unless the chunk is checksummed.
        with anyio.CancelScope(shield=True):
            kept = False
            if pending is not None:
                await asyncio.wait([pending])
            if checksum is None and (pending is None or _succeeded(pending)):
                if buf:
                    await sink.consume(buf)
                    written += buffered
                await sink.sync()
                if written:
                    await anyio.to_thread.run_sync(uploads.record_progress, ctx, upload_id, start,
                                                   start + written)
                if sink.whole is not None:
                    ctx.hashes.put(upload_id, start + written, sink.whole)
                kept = True
            if not kept:
                ctx.hashes.drop(upload_id)
                await sink.rewind(start)
        raise
    except BaseException:
        # Unknown state (disk full, bug): drop what this request wrote.
        with anyio.CancelScope(shield=True):
            if pending is not None:
                await asyncio.wait([pending])
            ctx.hashes.drop(upload_id)
            await sink.rewind(start)
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await sink.settle()
            await anyio.to_thread.run_sync(os.close, fd)

    new_offset = start + written
    if written and new_offset == length and known is not None and not interrupted and not mismatch:
        # The last bytes are fsynced: the offset is recorded together with the computed hash in
        # complete() (a crash before that leaves the row at ``start``; reconcile() truncates the part
        # file back to it and the unacknowledged bytes are resent).
        done = await anyio.to_thread.run_sync(
            functools.partial(uploads.complete, ctx, upload_id, sink.whole, known, advance_from=start,
                              head=head if start == 0 else None)
        )
        return Received(new_offset, uploads.expiry(ctx), done)
    expires = None
    if written:
        expires = await anyio.to_thread.run_sync(uploads.record_progress, ctx, upload_id, start, new_offset)
    if sink.whole is not None:
        ctx.hashes.put(upload_id, new_offset, sink.whole)
    if interrupted:
        raise BodyInterrupted
    if mismatch:
        metrics.of(ctx).verification_failed(metrics.Check.CHUNK)
        assert checksum is not None
        raise ProblemError(
            wire.STATUS_CHECKSUM_MISMATCH, "checksum_mismatch",
            f"This chunk's {checksum.algorithm} checksum does not match the bytes received; "
            "they were discarded.",
            f"Resend the chunk from offset {start}.", headers={"Upload-Offset": str(start)},
        )
    asset_id = None
    if new_offset == length:
        asset_id = await anyio.to_thread.run_sync(
            uploads.complete, ctx, upload_id, ctx.hashes.take(upload_id, new_offset)
        )
    return Received(new_offset, expires, asset_id)


def _mismatch(checksum: Checksum, start: int) -> ProblemError:
    return ProblemError(
        wire.STATUS_CHECKSUM_MISMATCH, "checksum_mismatch",
        f"This chunk's {checksum.algorithm} checksum does not match the bytes received; they were discarded.",
        f"Resend the chunk from offset {start}.", headers={"Upload-Offset": str(start)},
    )


# The writer lease is renewed this often while a body streams (it lasts uploads.LEASE_SECONDS).
LEASE_RENEW_SECONDS = uploads.LEASE_SECONDS / 3


async def _consume(writer: PartWriter, hashers: list[Any], blocks: list[bytes]) -> None:
    """Store and hash ``blocks``, each job on its own worker thread."""
    async with anyio.create_task_group() as tg:
        for job in [writer.write, *(h.update for h in hashers)]:
            tg.start_soon(anyio.to_thread.run_sync, _each, job, blocks)


async def _receive_shared(ctx: Context, upload_id: str, start: int, length: int, body: AsyncIterator[bytes],
                          checksum: Checksum | None, known: uploads.UploadState | None) -> Received:
    """Append ``body`` through the shared part store, holding the upload's writer lease throughout."""
    writer_id = secrets.token_hex(8)
    offset, before = await anyio.to_thread.run_sync(uploads.take_lease, ctx, upload_id, writer_id)
    try:
        if offset != start:
            raise ProblemError(409, "offset_mismatch",
                               f"Upload-Offset {start} does not match the server's offset {offset}.",
                               "Send HEAD to learn the offset and resume from there.",
                               headers={"Upload-Offset": str(offset)})
        return await _stream_shared(ctx, upload_id, start, length, body, checksum, known, before, writer_id)
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(uploads.release_lease, ctx, upload_id, writer_id)
            except Exception as exc:
                log.warning("could not release the writer lease of upload %s (it lapses by itself): %s",
                            upload_id, exc)


async def _stream_shared(ctx: Context, upload_id: str, start: int, length: int, body: AsyncIterator[bytes],
                         checksum: Checksum | None, known: uploads.UploadState | None, before: Recorded,
                         writer_id: str) -> Received:
    # The running hash of this replica, if it took the upload's previous request; on a miss the bytes
    # are hashed back from the store at completion.
    whole = ctx.hashes.take(upload_id, start)
    whole_before = whole.copy() if whole is not None and checksum is not None else whole
    shared = whole is not None and start == 0 and checksum is not None and checksum.algorithm == "sha256"
    chunk = checksum.new() if checksum and not shared else None
    hashers = [h for h in (whole, chunk) if h is not None]
    if start == length and length:
        # Every byte is recorded already: an earlier request's completion failed after the last PATCH
        # (the multipart upload may be assembled, its copy published).  Nothing to write, so no writer
        # (its ListParts would find the assembled upload gone): straight to completion, which is safe to
        # run again after a failure at any step.
        async for data in body:
            if data:
                raise ProblemError(413, "bad_request",
                                   f"The body runs past the declared Upload-Length {length}.",
                                   "Send no more than Upload-Length minus Upload-Offset bytes.")
        return Received(length, uploads.expiry(ctx), await anyio.to_thread.run_sync(functools.partial(
            uploads.complete, ctx, upload_id, whole, None, recorded=before, writer=writer_id)))
    try:
        writer = await anyio.to_thread.run_sync(ctx.parts.writer, upload_id, start, length, before,
                                                functools.partial(uploads.renew_lease, ctx, upload_id, writer_id))
    except PartsAssembled as exc:
        # Assembled, yet the row is short of the end: it changed under this request (nothing to write).
        raise ProblemError(409, "conflict", f"Upload {upload_id} was changed by another request.",
                           "Send HEAD to learn the offset and resume from there.") from exc
    except PartsExhausted as exc:
        log.warning("%s; the upload is given up and its client starts again", exc)
        await anyio.to_thread.run_sync(uploads.give_up, ctx, upload_id)
        raise ProblemError(410, "gone", f"Upload {upload_id} cannot be finished: it would need more than "
                           "the 10,000 parts object storage takes (failed requests used up part numbers); "
                           "it was ended and its bytes deleted.",
                           "Start a new upload of the file; the agent does this automatically.") from exc
    except PartsGone as exc:
        log.warning("%s; the upload is given up and its client starts again", exc)
        await anyio.to_thread.run_sync(uploads.give_up, ctx, upload_id)
        raise uploads.vanished(upload_id) from exc
    head = b""
    written = 0
    pending: asyncio.Future[None] | None = None
    buf: list[bytes] = []
    buffered = 0
    interrupted = False
    after: Recorded | None = None
    expires: datetime | None = None
    renew_at = anyio.current_time() + LEASE_RENEW_SECONDS
    try:
        try:
            async for data in body:
                if start + written + buffered + len(data) > length:
                    raise ProblemError(413, "bad_request",
                                       f"The body runs past the declared Upload-Length {length}.",
                                       "Send no more than Upload-Length minus Upload-Offset bytes.")
                if start == 0 and len(head) < SNIFF_BYTES:
                    head += data[:SNIFF_BYTES - len(head)]
                buf.append(data)
                buffered += len(data)
                if buffered >= BLOCK:
                    if pending is not None:
                        await pending
                    blocks, buf = buf, []
                    written += buffered
                    buffered = 0
                    pending = asyncio.ensure_future(_consume(writer, hashers, blocks))
                    if anyio.current_time() >= renew_at:
                        await anyio.to_thread.run_sync(uploads.renew_lease, ctx, upload_id, writer_id)
                        renew_at = anyio.current_time() + LEASE_RENEW_SECONDS
        except BodyInterrupted:
            interrupted = True
        if pending is not None:
            await pending
            pending = None
        if buf and not (interrupted and checksum):
            written += buffered
            await _consume(writer, hashers, buf)
        chunk_hash = whole if shared else chunk
        mismatch = (checksum is not None and chunk_hash is not None and not interrupted
                    and chunk_hash.digest() != checksum.digest)
        final = start + written == length
        if (interrupted and checksum) or mismatch or not (written or final):
            # Nothing of this body is kept: what the writer stored goes, the recorded state stays.
            await anyio.to_thread.run_sync(writer.abandon)
            written = 0
            whole = whole_before
            final = start == length
        elif written or (final and start == 0 and not before.size):  # an empty file: an empty object
            after = await anyio.to_thread.run_sync(writer.finish, final)
            expires = await anyio.to_thread.run_sync(uploads.record_parts, ctx, upload_id, start, before,
                                                     after, writer_id)
            await anyio.to_thread.run_sync(writer.settle)
    except anyio.get_cancelled_exc_class():
        # Server shutdown: like a disconnect, keep what arrived unless the chunk is checksummed.
        with anyio.CancelScope(shield=True):
            if pending is not None:
                await asyncio.wait([pending])
            kept = False
            if after is None and checksum is None and (pending is None or _succeeded(pending)):
                try:
                    if buf:
                        await _consume(writer, hashers, buf)
                        written += buffered
                    if written:
                        after = await anyio.to_thread.run_sync(writer.finish, start + written == length)
                        await anyio.to_thread.run_sync(uploads.record_parts, ctx, upload_id, start, before,
                                                       after, writer_id)
                        await anyio.to_thread.run_sync(writer.settle)
                        if whole is not None:
                            ctx.hashes.put(upload_id, start + written, whole)
                    kept = True
                except Exception as exc:
                    log.warning("upload %s: could not keep the bytes of a request cut by shutdown: %s",
                                upload_id, exc)
            if not kept and after is None:
                ctx.hashes.drop(upload_id)
                await anyio.to_thread.run_sync(writer.abandon)
        raise
    except BaseException as exc:
        # Unknown state (the store or the database failed, a bug): nothing of this request is kept.
        # Once ``finish`` returned, its parts and tail stay: the commit may have happened with only its
        # answer lost, and the recorded state must stay whole.  Unrecorded, they are strays the sweep
        # removes after its grace age.
        with anyio.CancelScope(shield=True):
            if pending is not None:
                await asyncio.wait([pending])
            ctx.hashes.drop(upload_id)
            if after is None:
                await anyio.to_thread.run_sync(writer.abandon)
        if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1 \
                and isinstance(exc.exceptions[0], ProblemError):
            # A writer refused by the lease check inside the store-and-hash task group: answer its 409.
            raise exc.exceptions[0] from None
        raise

    new_offset = start + written
    if mismatch:
        assert checksum is not None
        metrics.of(ctx).verification_failed(metrics.Check.CHUNK)
        if whole is not None:
            ctx.hashes.put(upload_id, start, whole)
        raise _mismatch(checksum, start)
    if new_offset == length:
        return Received(new_offset, uploads.expiry(ctx), await anyio.to_thread.run_sync(functools.partial(
            uploads.complete, ctx, upload_id, whole, known, head=head if start == 0 else None,
            recorded=after if after is not None else before, writer=writer_id)))
    if whole is not None:
        ctx.hashes.put(upload_id, new_offset, whole)
    if interrupted:
        raise BodyInterrupted
    return Received(new_offset, expires, None)
