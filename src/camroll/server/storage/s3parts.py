"""Uploads in progress in S3-compatible object storage: a ``PartStore`` (services/partfiles.py) with no
local state, so any replica can take any request of any upload.

Layout under the store's prefix (``<PREFIX>/uploads/`` beside the blobs):

* ``<id>``: the key of the upload's multipart upload, and of the assembled object once complete;
* ``<id>.tail.<random>``: the bytes after the last part, fewer than one part size, kept as their own
  object until more bytes come: every part but the last is a full part (S3 refuses parts under 5 MiB
  except the last, and takes at most 10,000 numbers).  Every write makes a
  *new* tail key; the recorded one is never overwritten, so a request that fails midway leaves the
  recorded state readable.  (tusd's s3store keeps its "incomplete part" the same way.)

Each PATCH reads the recorded tail back (under one part size), appends its body, uploads each full part
as it fills (one part uploading while the next fills), and at the end uploads the rest as the last part
(the file's last bytes) or as the new tail.  Memory per request: under three part sizes (the buffer
filling, up to a part plus a body block; the part uploading) - 24 MiB at the 8 MiB part size of files
up to 39 GiB; a part is ``length / 5,000`` above that (18 MiB parts for a 90 GB file).  The parts
are durable in S3 when ``finish`` returns; the caller then commits them (number, size, ETag) with the
offset.  Parts uploaded by a request that failed before that commit have no row and are never listed
at completion (a later request uploads its own under new numbers).

boto3 is the client: multipart parts need a persistent UploadId, which obstore does not expose.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from camroll.server.services.partfiles import (
    ObjectBlobs,
    Part,
    PartsAssembled,
    PartsExhausted,
    PartsGone,
    PartWriter,
    Recorded,
    Stray,
    check_id,
)
from camroll.server.storage.base import BlobStore

log = logging.getLogger("camroll.server.s3parts")

MIN_PART = 5 * 2**20  # S3's minimum for every part but the last
PART_SIZE = 8 * 2**20
MAX_PARTS = 10_000
# Parts are sized so the file fits in half of S3's numbers: the other half is slack for the numbers of
# failed requests, which are never reused.
PLANNED_PARTS = 5_000
READ_BLOCK = 4 * 2**20
# Copies of a staged upload into its blob key above this go as a multipart copy (S3's limit for
# one CopyObject is 5 GiB).
COPY_PART = 512 * 2**20
_TAIL = ".tail."
_MISSING = {"NoSuchKey", "NotFound", "404", "NoSuchUpload"}

# Part uploads run here so a request's next part fills while its previous one travels.
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="camroll-s3-part")


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _MISSING


class _Translating:
    """The boto3 client, with every error but "no such key / upload" turned into the blob store's
    ``StorageFailure`` (a sentence naming the provider, bucket and operation, and the fix), so a failing
    store never answers with a botocore traceback."""

    def __init__(self, client: Any, failure: Callable[[str, BaseException], Exception]) -> None:
        self._client = client
        self._failure = failure

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._client, name)
        if not callable(fn) or name == "get_paginator":
            return fn
        what = f"{name.replace('_', ' ')} (upload in progress)"

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except ClientError as exc:
                if _missing(exc):
                    raise
                raise self._failure(what, exc) from exc
            except Exception as exc:
                raise self._failure(what, exc) from exc

        return call


@contextlib.contextmanager
def _gone_if_missing(upload_id: str, what: str) -> Iterator[None]:
    """S3's "no such key / upload" on a complete upload's bytes: ``PartsGone`` (the caller answers 410
    or 409), never a botocore error reaching the client as a 500."""
    try:
        yield
    except ClientError as exc:
        if _missing(exc):
            raise PartsGone(f"upload {upload_id}: {what}: {exc.response.get('Error', {}).get('Code')}") from exc
        raise


def part_size_for(length: int, preferred: int = PART_SIZE, minimum: int = MIN_PART) -> int:
    """A part size that fits ``length`` into ``PLANNED_PARTS`` full parts (rounded up to whole MiB).

    Every part but the last is exactly this size (a shorter leftover stays the tail), so an upload
    needs at most ``PLANNED_PARTS`` numbers plus those of failed requests."""
    need = -(-length // PLANNED_PARTS)
    need = -(-need // 2**20) * 2**20
    return max(preferred, need, minimum)


class S3PartStore:
    shared = True

    def __init__(self, client: Any, bucket: str, prefix: str = "uploads/", *,
                 part_size: int = PART_SIZE, min_part: int = MIN_PART) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.part_size = part_size
        # S3's own minimum; a test server that takes smaller parts may be given less.
        self.min_part = min_part

    @classmethod
    def beside(cls, blobs: ObjectBlobs, **kwargs: Any) -> S3PartStore:
        """Parts in the blob store's bucket, under its prefix's ``uploads/``, on its client (and with its
        error sentences, when it has them)."""
        failure = getattr(blobs, "failure", None)
        client = _Translating(blobs.client, failure) if callable(failure) else blobs.client
        return cls(client, blobs.bucket, blobs.key("uploads") + "/", **kwargs)

    # --- keys ------------------------------------------------------------------------------------
    def key(self, upload_id: str) -> str:
        return self.prefix + check_id(upload_id)

    def _tail_key(self, upload_id: str) -> str:
        return f"{self.key(upload_id)}{_TAIL}{secrets.token_hex(8)}"

    def staged_key(self, upload_id: str, recorded: Recorded) -> str:
        """The one object holding a complete upload: the assembled multipart upload, or for a file that
        never needed a part, its tail."""
        if not recorded.parts and recorded.tail_key is not None:
            return recorded.tail_key
        return self.key(upload_id)

    # --- PartStore --------------------------------------------------------------------------------
    def local_path(self, upload_id: str) -> Path | None:
        return None

    def local_root(self) -> Path | None:
        return None

    def create(self, upload_id: str) -> None:
        check_id(upload_id)  # the multipart upload begins with the first full part

    def size(self, upload_id: str, recorded: Recorded) -> int | None:
        """The recorded size when S3 still holds all of it (reconcile() asks at start); None if not."""
        return recorded.size if self.check(upload_id, recorded) else None

    def writer(self, upload_id: str, start: int, length: int, recorded: Recorded,
               guard: Callable[[], None] | None = None) -> PartWriter:
        return _Writer(self, upload_id, length, recorded, guard)

    def get_bytes(self, key: str, first: int | None = None, last: int | None = None) -> bytes:
        extra = {} if first is None else {"Range": f"bytes={first}-{'' if last is None else last}"}
        body = self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def assemble(self, upload_id: str, recorded: Recorded) -> None:
        with _gone_if_missing(upload_id, "assembling"):
            self._assemble(upload_id, recorded)

    def _assemble(self, upload_id: str, recorded: Recorded) -> None:
        if not recorded.parts:
            if recorded.tail_key is None:  # an empty file
                self.client.put_object(Bucket=self.bucket, Key=self.key(upload_id), Body=b"")
            return
        key = self.key(upload_id)
        if self._object_size(key) == recorded.size:
            return  # assembled before (a crash, or a retry after the answer was lost)
        if not self.check(upload_id, recorded):
            # A part replaced behind the record (a lapsed writer's upload under a number in use): its
            # bytes are not the acknowledged ones, so they are never assembled.
            raise PartsGone(f"upload {upload_id}: the stored parts differ from the recorded ones")
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=recorded.multipart_id,
            MultipartUpload={"Parts": [{"ETag": p.etag, "PartNumber": p.number} for p in recorded.parts]})

    def sha256(self, upload_id: str, recorded: Recorded) -> str:
        h = hashlib.sha256()
        with _gone_if_missing(upload_id, "reading it back"):
            body = self.client.get_object(Bucket=self.bucket, Key=self.staged_key(upload_id, recorded))["Body"]
        try:
            while block := body.read(READ_BLOCK):
                h.update(block)
        finally:
            body.close()
        return h.hexdigest()

    def head(self, upload_id: str, recorded: Recorded, n: int) -> bytes:
        if recorded.size == 0 or n <= 0:
            return b""
        with _gone_if_missing(upload_id, "reading its first bytes"):
            return self.get_bytes(self.staged_key(upload_id, recorded), 0, min(n, recorded.size) - 1)

    def publish(self, upload_id: str, recorded: Recorded, sha256: str, blobs: BlobStore) -> None:
        source = self.staged_key(upload_id, recorded)
        if not blobs.exists(sha256):
            # Verified bytes only: the caller checked the hash of ``source``; an existing blob (good
            # bytes under its own hash) is never overwritten.
            with _gone_if_missing(upload_id, "copying it into its blob"):
                if isinstance(blobs, ObjectBlobs):
                    self._copy(source, blobs.bucket, blobs.key_for(sha256), recorded.size)
                else:
                    self._put_through_file(source, sha256, blobs)
        self.remove(upload_id, recorded)

    def _copy(self, source: str, bucket: str, key: str, size: int) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=COPY_PART, multipart_chunksize=COPY_PART, max_concurrency=4)
        # boto3's managed copy: one CopyObject, or UploadPartCopy parts above the threshold.
        self.client.copy({"Bucket": self.bucket, "Key": source}, bucket, key, Config=config)

    def _put_through_file(self, source: str, sha256: str, blobs: BlobStore) -> None:
        # A blob store outside this storage (local or memory blobs with S3 parts): one streamed copy.
        with tempfile.TemporaryDirectory(prefix="camroll-publish-") as tmp:
            path = Path(tmp) / sha256
            body = self.client.get_object(Bucket=self.bucket, Key=source)["Body"]
            try:
                with open(path, "wb") as f:
                    shutil.copyfileobj(body, f, READ_BLOCK)
            finally:
                body.close()
            blobs.put_file(sha256, path)

    def truncate(self, upload_id: str, size: int) -> None:
        pass  # nothing is ever stored past the recorded state

    def _delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if not _missing(exc):
                raise

    def abort(self, upload_id: str, multipart_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key(upload_id), UploadId=multipart_id)
        except ClientError as exc:
            if not _missing(exc):
                raise

    def remove(self, upload_id: str, recorded: Recorded) -> None:
        if recorded.multipart_id is not None:
            self.abort(upload_id, recorded.multipart_id)
        if recorded.tail_key is not None:
            self._delete(recorded.tail_key)
        self._delete(self.key(upload_id))

    def check(self, upload_id: str, recorded: Recorded) -> bool:
        """True when S3 holds every recorded part (same ETag and size) and the recorded tail."""
        if recorded.tail_key is not None and self._object_size(recorded.tail_key) != recorded.tail_size:
            return False
        if not recorded.parts:
            return True
        # Every listing of a number: some servers (SeaweedFS) list a part uploaded twice under one
        # number twice, and which one an assembly takes is theirs to pick.
        listed: dict[int, set[tuple[int, str]]] = {}
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(upload_id),
                                  "UploadId": recorded.multipart_id}
        try:
            while True:
                page = self.client.list_parts(**kwargs)
                for p in page.get("Parts", []):
                    listed.setdefault(int(p["PartNumber"]), set()).add((int(p["Size"]), str(p["ETag"])))
                if not page.get("IsTruncated"):
                    break
                kwargs["PartNumberMarker"] = page["NextPartNumberMarker"]
        except ClientError as exc:
            if not _missing(exc):
                raise
            # Completed already (a crash after the assembly): the assembled object holds the parts.
            return self._object_size(self.key(upload_id)) == recorded.size
        return all(listed.get(p.number) == {(p.size, p.etag)} for p in recorded.parts)

    def _object_size(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def _id_of(self, key: str) -> str:
        return key[len(self.prefix):].split(".", 1)[0]

    def strays(self, keep: Iterable[tuple[str, Recorded]]) -> list[Stray]:
        wanted: dict[str, Recorded] = dict(keep)
        found: list[Stray] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                rec = wanted.get(self._id_of(key))
                if rec is None or (_TAIL in key and key != rec.tail_key):
                    found.append(Stray(self._id_of(key), key, _aware(obj.get("LastModified"))))
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
        while True:
            page = self.client.list_multipart_uploads(**kwargs)
            for mpu in page.get("Uploads", []):
                key, mid = str(mpu["Key"]), str(mpu["UploadId"])
                rec = wanted.get(self._id_of(key))
                if rec is None or rec.multipart_id != mid:
                    found.append(Stray(self._id_of(key), f"{key}\n{mid}", _aware(mpu.get("Initiated"))))
            if not page.get("IsTruncated"):
                break
            kwargs["KeyMarker"] = page.get("NextKeyMarker")
            kwargs["UploadIdMarker"] = page.get("NextUploadIdMarker")
        return found

    def drop_stray(self, stray: Stray) -> None:
        key, _, mid = stray.what.partition("\n")
        if mid:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=mid)
            except ClientError as exc:
                if not _missing(exc):
                    raise
        else:
            self._delete(key)

    def multipart_uploads(self) -> list[tuple[str, str]]:
        """(key, UploadId) of every multipart upload in progress under the prefix (tests, admin)."""
        page = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        return [(str(u["Key"]), str(u["UploadId"])) for u in page.get("Uploads", [])]


def _aware(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


class _Writer:
    """One request's bytes on their way into parts and a tail (see the module docstring)."""

    def __init__(self, store: S3PartStore, upload_id: str, length: int, recorded: Recorded,
                 guard: Callable[[], None] | None = None) -> None:
        self._store = store
        self._guard = guard
        self._id = upload_id
        self._recorded = recorded
        self._part_size = part_size_for(length, store.part_size, store.min_part)
        self._multipart_id = recorded.multipart_id
        self._created: str | None = None
        self._parts: list[Part] = list(recorded.parts)
        try:
            self._next = self._first_free_number(recorded)
        except ClientError as exc:
            if not _missing(exc):
                raise
            # No such multipart upload: completed (the assembled object holds every recorded byte, and a
            # completion that failed later is to be retried), or really gone.
            if store.check(upload_id, recorded):
                raise PartsAssembled(f"upload {upload_id}: multipart upload {recorded.multipart_id} "
                                     "was assembled already") from exc
            raise PartsGone(f"upload {upload_id}: multipart upload {recorded.multipart_id} is gone") from exc
        # The numbers the rest of the file needs (full parts, then the last): refused now, before any
        # byte is read, rather than by S3 with a 400 on every retry.
        rest = length - sum(p.size for p in recorded.parts)
        needed = max(1, -(-rest // self._part_size))
        if self._next - 1 + needed > MAX_PARTS:
            raise PartsExhausted(f"upload {upload_id} would need part number {self._next - 1 + needed}, past "
                                 f"S3's {MAX_PARTS} (failed requests used up {self._next - 1 - len(recorded.parts)})")
        self._pending: Future[Part] | None = None
        self._new_tail: str | None = None
        self._lock = threading.Lock()
        self._buf = bytearray()
        if recorded.tail_key is not None and recorded.tail_size:
            # The recorded tail goes in front of this body, into the next part or the next tail.
            try:
                self._buf += store.get_bytes(recorded.tail_key)
            except ClientError as exc:
                if _missing(exc):
                    raise PartsGone(f"upload {upload_id}: tail {recorded.tail_key} is gone") from exc
                raise
            if len(self._buf) != recorded.tail_size:
                raise OSError(f"upload {upload_id}: tail object holds {len(self._buf)} bytes, "
                              f"{recorded.tail_size} recorded")

    def _first_free_number(self, recorded: Recorded) -> int:
        """The first part number no request used yet.  A number is never uploaded twice: some servers
        refuse to replace a part (rclone serve s3), and a part an earlier request uploaded but never
        recorded may still sit under it.  One ListParts from past the recorded parts (one page)."""
        last = max((p.number for p in recorded.parts), default=0)
        if recorded.multipart_id is None:
            return last + 1
        kwargs: dict[str, Any] = {"Bucket": self._store.bucket, "Key": self._store.key(self._id),
                                  "UploadId": recorded.multipart_id, "PartNumberMarker": last}
        while True:
            page = self._store.client.list_parts(**kwargs)
            last = max([last, *(int(p["PartNumber"]) for p in page.get("Parts", []))])
            if not page.get("IsTruncated"):
                return last + 1
            kwargs["PartNumberMarker"] = page["NextPartNumberMarker"]

    def write(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= self._part_size:
            chunk = bytes(self._buf[:self._part_size])
            del self._buf[:self._part_size]
            self._send(chunk)

    def _send(self, chunk: bytes) -> None:
        self._wait()
        if self._guard is not None:
            # The lease renewed and verified: a writer that lapsed (and whose upload another replica
            # took over, listing the parts to pick its numbers) stops here, not under a number the
            # other one uses.  A part slower than a whole lease is caught by the ETag check at assembly.
            self._guard()
        if self._multipart_id is None:
            mid = str(self._store.client.create_multipart_upload(Bucket=self._store.bucket,
                                                                 Key=self._store.key(self._id))["UploadId"])
            self._multipart_id = self._created = mid
        number = self._next
        self._next += 1
        self._pending = _POOL.submit(self._upload_part, number, chunk)

    def _upload_part(self, number: int, chunk: bytes) -> Part:
        got = self._store.client.upload_part(Bucket=self._store.bucket, Key=self._store.key(self._id),
                                             UploadId=self._multipart_id, PartNumber=number, Body=chunk)
        return Part(number, len(chunk), str(got["ETag"]))

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._parts.append(pending.result())

    def finish(self, final: bool) -> Recorded:
        rest = bytes(self._buf)
        self._buf = bytearray()
        tail: str | None = None
        if final and self._multipart_id is None:
            # A file that never filled a part: the tail is the whole file, assembled as it is.
            tail = self._put_tail(rest)
        elif final:
            if rest or (not self._parts and self._pending is None):
                self._send(rest)
        elif rest:
            # Shorter than a part: kept as the tail (up to a part size), so every part but the last is
            # a full one and the part numbers last for the file.
            tail = self._put_tail(rest)
        self._wait()
        return Recorded(self._multipart_id, tuple(self._parts), tail, len(rest) if tail is not None else 0)

    def _put_tail(self, data: bytes) -> str:
        key = self._store._tail_key(self._id)
        self._store.client.put_object(Bucket=self._store.bucket, Key=key, Body=data)
        self._new_tail = key
        return key

    def settle(self) -> None:
        old = self._recorded.tail_key
        if old is not None and old != self._new_tail:
            try:
                self._store._delete(old)
            except Exception as exc:  # the sweep removes it later
                log.warning("could not delete the old tail %s: %s", old, exc)

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self._wait()
        try:
            if self._new_tail is not None:
                self._store._delete(self._new_tail)
            if self._created is not None:
                self._store.abort(self._id, self._created)
        except Exception as exc:  # the sweep removes strays later
            log.warning("could not remove what a failed request stored for upload %s: %s", self._id, exc)
