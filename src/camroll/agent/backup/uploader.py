"""Upload one hashed file over tus: resume a stored upload when the server still has it, send the
rest in checksummed chunks, and decide after each failure whether to retry, resume or give up.

Never holds more than one chunk of the file in memory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

from camroll import wire
from camroll.agent.api import TRANSIENT_ERRORS, unreachable
from camroll.agent.backup.retry import IN_PASS, Backoff
from camroll.agent.backup.tus import FileRange, PatchResult, SourceChanged, TusClient, UploadGone
from camroll.agent.errors import ProblemError
from camroll.agent.log import logger
from camroll.agent.state.db import StateDB, StatKey


@dataclass(frozen=True)
class UploadJob:
    file_id: int
    path: str
    folder: str
    sha256: str
    stat_key: StatKey
    upload_url: str | None
    # Per-chunk SHA-256 digests from the hash pass (see ``hasher.hash_file``) and the chunk size they
    # were computed for; empty when unknown, e.g. for a file hashed in an earlier pass.
    chunk_digests: tuple[bytes, ...] = ()
    digest_chunk_size: int = 0

    @property
    def size(self) -> int:
        return self.stat_key[0]

    def known_digest(self, offset: int, length: int) -> bytes | None:
        """The SHA-256 of ``length`` bytes from ``offset`` if the hash pass already computed it."""
        if offset == 0 and length == self.size:
            return bytes.fromhex(self.sha256)
        cs = self.digest_chunk_size
        if cs and self.chunk_digests and offset % cs == 0:
            i = offset // cs
            if i < len(self.chunk_digests) and length == min(cs, self.size - offset):
                return self.chunk_digests[i]
        return None


@dataclass(frozen=True)
class Done:
    asset_id: int
    # True when the server already had the bytes (a lost completion answer, or another device).
    already_there: bool


class FileChangedDuringUpload(Exception):
    """The file no longer matches the hash being uploaded: hash it again."""


class ServerHashMismatch(Exception):
    """The server computed a different whole-file SHA-256 and discarded the upload: hash again."""


class Stopped(Exception):
    """The pass is stopping; the upload stays resumable from its stored URL."""


def metadata_for(job: UploadJob) -> dict[str, str]:
    from camroll.agent.fsnames import upload_metadata

    return {
        wire.META_SHA256: job.sha256,
        wire.META_SIZE: str(job.size),
        wire.META_MTIME_NS: str(job.stat_key[1]),
        # A path that is not UTF-8 goes as its readable form plus its exact bytes.
        **upload_metadata(job.path),
    }


@dataclass(frozen=True)
class PacedRange(FileRange):
    """A ``FileRange`` sent in small pieces, each announced to ``pace`` before it goes out (the
    bandwidth limit's token bucket blocks there; the metered-data meter counts there)."""

    pace: Callable[[int], None] | None = None

    def __iter__(self) -> Iterator[bytes]:
        from camroll.agent.backup.throttle import THROTTLED_PIECE

        pace = self.pace
        for piece in self._pieces():
            for i in range(0, len(piece), THROTTLED_PIECE):
                part = piece[i:i + THROTTLED_PIECE]
                if pace is not None:
                    pace(len(part))
                yield part


# After a cut, a file larger than this is no longer sent in its creation request: the answer naming
# the upload arrives only after the body, so a cut there loses the whole body; an upload created
# first and filled by PATCH keeps what arrived.
LOSSY_SINGLE_REQUEST = 1024 * 1024


def _cut_mid_request(exc: Exception) -> bool:
    """A connection that failed after it was made (reset, closed, timed out while sending or waiting),
    as opposed to a server that cannot be reached at all."""
    return isinstance(exc, httpx.TransportError) and not isinstance(
        exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


class Uploader:
    """Uploads files for one pass.

    A body sent by PATCH carries no per-chunk checksum at first: the server must discard a
    checksummed body that is cut short (it cannot check it), so on a link that cuts connections every
    cut would cost up to a whole chunk (64 MiB) and a large file might never get through.  Without it
    the server keeps every byte that arrived, the next request resumes from the offset HEAD reports,
    and the server's check of the whole file's SHA-256 still decides what is stored.  Once the server
    has found damaged bytes in this pass (a whole-file mismatch, or a refused chunk), PATCH bodies
    carry their chunk's SHA-256 for the rest of the pass, so damage costs one chunk, not a file.
    A file sent in its creation request carries its own SHA-256 (known from the hash pass); once a
    connection was cut mid-request in this pass (``lossy``), only files up to
    :data:`LOSSY_SINGLE_REQUEST` go that way, larger ones are created first and filled by PATCH."""

    def __init__(self, tus: TusClient, db: StateDB, *, chunk_size: int, base_url: str,
                 check_present: Callable[[UploadJob], int | None],
                 on_bytes: Callable[[str, int], None] = lambda p, n: None,
                 on_sent: Callable[[int], None] = lambda n: None,
                 should_stop: Callable[[], bool] = lambda: False,
                 backoff: Backoff = IN_PASS, sleep: Callable[[float], None] = time.sleep,
                 pace: Callable[[int], None] | None = None,
                 may_send_body: Callable[[int], bool] = lambda size: False,
                 body_done: Callable[[int], None] = lambda size: None) -> None:
        self.pace = pace
        # Whether the server is known to accept a file of this size now (its room for uploads, from the
        # last check): only then does the body travel with the creation request.  Otherwise the upload
        # is created first, so a refusal (quota, disk full, size, type) comes before any byte is sent.
        self.may_send_body = may_send_body
        # Called once the creation that ``may_send_body`` allowed a body for has been answered.
        self.body_done = body_done
        self.tus = tus
        self.db = db
        self.chunk_size = chunk_size
        self.base_url = base_url
        self.check_present = check_present
        self.on_bytes = on_bytes
        self.on_sent = on_sent
        self.should_stop = should_stop
        self.backoff = backoff
        self.sleep = sleep
        self.lossy = False
        self.chunk_checksums = False

    # --- helpers ------------------------------------------------------------------------------------
    def _range(self, fd: int, offset: int, length: int, sha256: bytes | None, *, checksum: bool = True) -> FileRange:
        if self.pace is None:
            return FileRange(fd, offset, length, sha256, checksum)
        return PacedRange(fd, offset, length, sha256, checksum, self.pace)

    def _note_failure(self, exc: Exception) -> None:
        if _cut_mid_request(exc):
            self.lossy = True

    def _pause(self, retry: int, exc: Exception) -> int:
        """Sleep before retry number ``retry``; re-raise once the attempts are used up."""
        if retry + 1 >= self.backoff.attempts:
            if isinstance(exc, ProblemError):
                raise exc
            # Uploads start only after the server answered this pass's check: a cut is the network's.
            raise unreachable(self.base_url, exc, answered=True) from exc
        if self.should_stop():
            raise Stopped()
        delay = self.backoff.delay(retry)
        logger.info("retry %d in %.1f s after: %s", retry + 1, delay, exc)
        self.sleep(delay)
        return retry + 1

    def _still_same(self, job: UploadJob, fd: int | None = None) -> None:
        try:
            st = os.fstat(fd) if fd is not None else os.stat(job.path)
            if fd is not None:
                # The path may now name a different file even though our descriptor is fine.
                pst = os.stat(job.path)
                if pst.st_ino != st.st_ino:
                    raise FileChangedDuringUpload("replaced during upload")
        except FileNotFoundError as exc:
            raise FileChangedDuringUpload("removed during upload") from exc
        if (st.st_size, st.st_mtime_ns, st.st_ino) != job.stat_key:
            raise FileChangedDuringUpload("changed during upload")

    # --- the upload ---------------------------------------------------------------------------------
    def upload(self, job: UploadJob) -> Done:
        """Upload ``job`` (resuming its stored URL when possible) and return the asset id."""
        with open(job.path, "rb", buffering=0) as f:
            fd = f.fileno()
            self._still_same(job, fd)
            url, offset = self._resume(job)
            if url is None and offset is not None:
                # The server already completed this upload; only its answer was lost.
                present = self.check_present(job)
                if present is not None:
                    return Done(present, already_there=True)
                offset = None
            restarts = 0
            while True:
                if url is None:
                    created = self._create(job, fd)
                    if isinstance(created, Done):
                        return created
                    url, offset = created
                assert offset is not None
                try:
                    return self._send_from(job, fd, url, offset)
                except UploadGone:
                    # Expired or cleaned up mid-way: perhaps completed (lost answer), else start over.
                    present = self.check_present(job)
                    if present is not None:
                        return Done(present, already_there=True)
                    restarts += 1
                    if restarts > 2:
                        raise ProblemError(410, "gone", "The server keeps discarding this upload",
                                           "check the server log") from None
                    self.db.set_upload(job.file_id, None, None)
                    url, offset = None, None

    def _resume(self, job: UploadJob) -> tuple[str | None, int | None]:
        """(url, offset) of a stored upload the server still has; (None, size) if it is complete;
        (None, None) if there is none."""
        if not job.upload_url:
            return None, None
        retry = 0
        while True:
            try:
                offset = self.tus.head(job.upload_url)
                break
            except UploadGone:
                self.db.set_upload(job.file_id, None, None)
                # A finished upload may be cleaned up at once; the caller asks the server by hash.
                return None, job.size
            except ProblemError as exc:
                if not exc.transient:
                    raise
                retry = self._pause(retry, exc)
            except TRANSIENT_ERRORS as exc:
                retry = self._pause(retry, exc)
        if offset >= job.size:
            self.db.set_upload(job.file_id, None, None)
            return None, job.size
        self.db.set_upload_offset(job.file_id, offset)
        return job.upload_url, offset

    def _create(self, job: UploadJob, fd: int) -> tuple[str, int] | Done:
        meta = metadata_for(job)
        allowed = job.size <= self.chunk_size and self.may_send_body(job.size)
        try:
            return self._create_attempts(job, fd, meta, allowed)
        finally:
            if allowed:
                self.body_done(job.size)

    def _create_attempts(self, job: UploadJob, fd: int, meta: dict[str, str], allowed: bool) -> tuple[str, int] | Done:
        retry = 0
        mismatches = 0
        while True:
            if self.should_stop():
                raise Stopped()
            small = allowed and job.size <= (min(self.chunk_size, LOSSY_SINGLE_REQUEST) if self.lossy
                                             else self.chunk_size)
            body: FileRange | None = None
            if small:
                self._still_same(job, fd)
                # The file's own SHA-256 is this request's checksum: no extra read to compute it.
                # After a rejection, compute it from the bytes as they are now instead.
                body = self._range(fd, 0, job.size, None if mismatches else job.known_digest(0, job.size))
            try:
                url, res = self.tus.create(job.size, meta, body)
            except SourceChanged as exc:
                raise FileChangedDuringUpload(str(exc)) from exc
            except ProblemError as exc:
                if exc.status == wire.STATUS_CHECKSUM_MISMATCH:
                    # Chunk damaged in transit, or the file no longer matches its hash: resend once,
                    # then let the engine hash it again.
                    mismatches += 1
                    self._still_same(job, fd)
                    if mismatches >= 2:
                        raise ServerHashMismatch(str(exc)) from exc
                    continue
                if not exc.transient:
                    raise
                retry = self._pause(retry, exc)
                continue
            except TRANSIENT_ERRORS as exc:
                self._note_failure(exc)
                retry = self._pause(retry, exc)
                continue
            finally:
                if body is not None:
                    self.on_sent(body.length)
            if body is not None:
                self.on_bytes(job.path, res.offset)
            if res.offset >= job.size:
                return self._finish(job, fd, res, stored=job.upload_url is not None)
            # Stored before any byte is sent, so a killed agent resumes instead of starting over.
            self.db.set_upload(job.file_id, url, res.offset)
            return url, res.offset

    def _finish(self, job: UploadJob, fd: int, res: PatchResult, *, stored: bool = True) -> Done:
        if stored:
            self.db.set_upload(job.file_id, None, None)
        if res.asset_id is None:
            present = self.check_present(job)
            if present is None:
                raise ProblemError(502, "internal",
                                   "The server completed the upload but reports no asset for it",
                                   "check the server log")
            asset_id = present
        else:
            asset_id = res.asset_id
        # The bytes on the server are verified, but if the file changed since, its new version needs
        # a backup too.
        self._still_same(job, fd)
        return Done(asset_id, already_there=False)

    def _send_from(self, job: UploadJob, fd: int, url: str, offset: int) -> Done:
        retry = 0
        # After a chunk is rejected, its checksum is computed from the bytes as they are now (the
        # digests from the hash pass would fail again if the file changed since).
        rejected = False
        while True:
            if self.should_stop():
                raise Stopped()
            # After a resume from an offset inside a chunk, a shorter request gets back onto chunk
            # boundaries, so the following chunks' digests from the hash pass apply again.
            n = min(self.chunk_size - offset % self.chunk_size, job.size - offset)
            if offset + n >= job.size:
                self._still_same(job, fd)
            data = self._range(fd, offset, n, None if rejected else job.known_digest(offset, n),
                               checksum=rejected or self.chunk_checksums)
            try:
                try:
                    res = self.tus.patch(url, offset, data)
                finally:
                    self.on_sent(n)
            except SourceChanged as exc:
                raise FileChangedDuringUpload(str(exc)) from exc
            except UploadGone:
                raise
            except ProblemError as exc:
                if exc.status == wire.STATUS_CHECKSUM_MISMATCH:
                    logger.warning("%s: the server rejected the chunk at byte %d (%s)", job.path, offset, exc)
                    self.chunk_checksums = True  # this link damages bytes: find them a chunk at a time
                    # Still there: this chunk was damaged, send it again.  Gone: the whole-file hash
                    # failed and the server discarded the upload.
                    try:
                        offset = self._head(url)
                    except UploadGone:
                        self.db.set_upload(job.file_id, None, None)
                        self._still_same(job, fd)
                        raise ServerHashMismatch(str(exc)) from exc
                    self._still_same(job, fd)
                    rejected = True
                    retry = self._pause(retry, exc)
                    continue
                if exc.status == 409:
                    offset = self._head(url)
                    retry = self._pause(retry, exc)
                    continue
                if not exc.transient:
                    raise
                retry = self._pause(retry, exc)
                offset = self._head(url)
                continue
            except TRANSIENT_ERRORS as exc:
                self._note_failure(exc)
                retry = self._pause(retry, exc)
                resumed = self._head(url)
                if resumed > offset:
                    # The server kept part of the cut request: the link works, it only breaks now and
                    # then, so this is progress rather than another failed attempt.
                    self.on_bytes(job.path, resumed - offset)
                    retry = 0
                offset = resumed
                continue
            self.on_bytes(job.path, res.offset - offset)
            offset = res.offset
            retry = 0
            if offset >= job.size:
                return self._finish(job, fd, res)
            self.db.set_upload_offset(job.file_id, offset)

    def _head(self, url: str) -> int:
        retry = 0
        while True:
            try:
                return self.tus.head(url)
            except ProblemError as exc:
                if not exc.transient:
                    raise
                retry = self._pause(retry, exc)
            except httpx.TransportError as exc:
                retry = self._pause(retry, exc)
