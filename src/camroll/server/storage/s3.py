"""Blob store on any S3 API (AWS, Backblaze B2, Wasabi, Synology C2, Cloudflare R2, MinIO, Ceph, SeaweedFS).

Layout in the bucket, under the configured prefix ``P`` (``s3://BUCKET/P``)::

    P/blobs/ab/cd/<sha256>      originals, sharded like the local store (the shards cost nothing on S3
                                but keep a bucket browsable and let a ``list`` by shard be cut short)
    P/thumbs/ab/<sha256>-...    thumbnails (``ThumbStore``)
    P/uploads/...               uploads in progress (the tus part store)

How each contract of ``BlobStore`` is kept:

* Atomic and durable: an object appears only when its PUT (or ``CompleteMultipartUpload``) has
  succeeded, and S3 answers only once it is stored; there is no rename.
* ``put_file`` of a key that exists: HEAD, then a server-side ``CopyObject`` of the object onto itself
  with ``MetadataDirective=REPLACE``, which gives it a new ``LastModified`` without moving a byte through
  camroll (the orphan sweep reads ``LastModified`` as ``modified``).  Cost: one HEAD and one COPY request
  (a "class A" request on most price lists, like a PUT); above 5 GiB S3 needs a multipart copy, which
  boto3's managed ``copy`` does (one request per part, the server copying the bytes).  It only happens
  when an upload re-uses bytes already stored (the same file from another user, or again after a purge).
* ``open(offset, length)``: one ranged GET whose body is read as it streams; memory stays constant
  whatever the object's size.
* ``list``: ``ListObjectsV2`` pages of 1,000 keys; an unfinished multipart upload is not an object and is
  never listed.
* Errors become ``StorageFailure`` subclasses with a sentence and a fix (see ``_failure``); a botocore
  traceback never reaches a user.

Client library: boto3, chosen by measurement (``.venv/bin/python bench/s3_client_bench.py``: both clients
against one ``weed mini`` on the 2-core build machine, load average 14-18 from other work, two runs)::

    operation                 boto3                       obstore
                              MB/s  req/s  p50ms  CPU s    MB/s  req/s  p50ms  CPU s
    PUT 200 x 256 KiB         6-11  24-41  156-321  0.7     10-11  38-42  164-201  0.15
    GET 200 x 256 KiB        15-37  57-143  46-121  0.6     25-33  96-124  58-71   0.2
    PUT 10 x 64 MiB          12-17          4-5 s   1.5-1.7 13            5 s     1.5
    GET 10 x 64 MiB          87-103         0.6-0.7 s 0.7   69-86         0.8-0.9 s 0.85
    200 ranged GETs, 64 KiB       60-77  91-121  0.6          82-105 72-91    0.1
    200 HEADs                     118-136 56-61  0.5          189-298 25-28   0.08
    peak RSS                 127 MiB                      117 MiB

Large objects, which carry almost all of the bytes, go at the same speed (the server is the limit);
obstore spends about 3 ms less CPU per small request and keeps 10 MiB less.  boto3 wins on what decides:
the tus part store needs S3's low-level multipart API with an UploadId kept across processes and replicas
(CreateMultipartUpload, UploadPart, ListParts, CompleteMultipartUpload, AbortMultipartUpload), which
obstore does not expose (its ``put`` and ``open_writer`` run a multipart upload inside one call); boto3's
``Session`` resolves the whole standard AWS configuration (profiles, SSO, ``AWS_ENDPOINT_URL_S3``, the
config file's ``s3.addressing_style``) that a provider's instructions may rely on; and one library for
the whole server.  At a few S3 requests per uploaded file the CPU difference is a few percent of a core;
a deployment making hundreds of small requests a second per process would be the reason to look again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from camroll.server.storage.base import (
    BlobNotFound,
    BlobStat,
    ReadStream,
    Span,
    StorageAccessDenied,
    StorageBucketMissing,
    StorageError,
    StorageFailure,
    StorageMisconfigured,
    StorageTimeout,
    StorageUnavailable,
    StorageUnreachable,
    TempCopies,
    check_key,
    read_span,
)
from camroll.server.storage.s3config import STORAGE_URL_ENV, S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

# Objects up to this size go in one PUT; larger ones in parts of at least this size, a few at a time:
# memory stays near MULTIPART_CHUNK * MULTIPART_CONCURRENCY whatever the file's size.
MULTIPART_THRESHOLD = 64 * 2**20
MULTIPART_CHUNK = 16 * 2**20
MULTIPART_CONCURRENCY = 4
# CopyObject's own limit; a larger object is refreshed by a multipart copy.
COPY_LIMIT = 5 * 2**30
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def provider_name(endpoint: str | None) -> str:
    """A name people know for the S3 server at ``endpoint`` (for messages only; nothing depends on it)."""
    host = (urlsplit(endpoint).hostname or "") if endpoint else "amazonaws.com"
    known = {"amazonaws.com": "AWS S3", "backblazeb2.com": "Backblaze B2", "wasabisys.com": "Wasabi",
             "r2.cloudflarestorage.com": "Cloudflare R2", "synologyc2.net": "Synology C2",
             "digitaloceanspaces.com": "DigitalOcean Spaces", "linodeobjects.com": "Linode Object Storage",
             "storage.googleapis.com": "Google Cloud Storage", "scw.cloud": "Scaleway"}
    for suffix, name in known.items():
        if host == suffix or host.endswith("." + suffix):
            return name
    return f"The S3 server at {endpoint}"


class S3BlobStore:
    """Originals as objects ``<prefix>/blobs/ab/cd/<sha256>`` in one bucket.

    ``client``, ``bucket`` and ``prefix`` are public so that other stores in the same bucket (thumbnails,
    upload parts) share the client's connection pool and the error translation (``call``)."""

    def __init__(self, client: S3Client, location: S3Location, copies: TempCopies | None = None, *,
                 multipart_threshold: int = MULTIPART_THRESHOLD, multipart_chunk: int = MULTIPART_CHUNK) -> None:
        self.client = client
        self.copies = copies or TempCopies()
        self.multipart_threshold = multipart_threshold
        self.multipart_chunk = multipart_chunk
        self.bucket = location.bucket
        self.prefix = location.prefix
        self.location = location
        self.endpoint: str = client.meta.endpoint_url
        self.provider = provider_name(self.endpoint if "amazonaws.com" not in self.endpoint else None)
        self._blobs = self.key("blobs") + "/"

    # -- keys ----------------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        """The object key of ``parts`` joined under this store's prefix."""
        return "/".join((self.prefix, *parts) if self.prefix else parts)

    def key_for(self, sha256: str) -> str:
        """The object key of blob ``sha256`` (raises ``InvalidKey`` first)."""
        check_key(sha256)
        return f"{self._blobs}{sha256[:2]}/{sha256[2:4]}/{sha256}"

    # -- errors --------------------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with botocore's errors turned into ``StorageFailure`` (``what`` names
        the operation in the message, e.g. "read blob ab12..."); ``BlobNotFound`` passes through."""
        try:
            return fn(*args, **kwargs)
        except StorageError:
            raise
        except Exception as exc:
            raise self.failure(what, exc) from exc

    def failure(self, what: str, exc: BaseException) -> StorageError:
        """The ``StorageFailure`` that says what ``exc`` (a botocore or connection error) means here."""
        return _failure(self, what, exc)

    # -- BlobStore -----------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise ``StorageFailure`` unless the bucket answers with these credentials: a one-key listing of
        the blobs (a GET, whose error body names the cause where a HEAD's cannot; it also proves the list
        right that the orphan sweep needs)."""
        self.call(f"reach bucket {self.bucket}", self.client.list_objects_v2, Bucket=self.bucket,
                  Prefix=self._blobs, MaxKeys=1)

    def _head(self, key: str, sha256: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key))
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise self.failure(f"look up blob {sha256}", exc) from exc

    def put_file(self, sha256: str, source: Path) -> BlobStat:
        key = self.key_for(sha256)
        head = self._head(key, sha256)
        if head is not None and self._touch(key, sha256, int(head["ContentLength"])):
            size = int(head["ContentLength"])
        else:
            size = source.stat().st_size
            self._upload(key, sha256, source)
        with contextlib.suppress(FileNotFoundError):
            source.unlink()  # as the local store does: the source is consumed
        return BlobStat(sha256, size, time.time())

    def _upload(self, key: str, sha256: str, source: Path) -> None:
        from boto3.s3.transfer import TransferConfig

        cfg = TransferConfig(multipart_threshold=self.multipart_threshold, multipart_chunksize=self.multipart_chunk,
                             max_concurrency=MULTIPART_CONCURRENCY, use_threads=True)
        self.call(f"store blob {sha256}", self.client.upload_file, str(source), self.bucket, key, Config=cfg)

    def _touch(self, key: str, sha256: str, size: int) -> bool:
        """Give the existing object a new LastModified: a server-side copy onto itself.  False if the object
        vanished since the HEAD (a sweep took it): the caller uploads it again."""
        # "mtime" is rclone's convention for an object's modification time (rclone serve s3 keeps the
        # old one on a copy otherwise); other servers store it as plain user metadata.
        meta = {"mtime": f"{time.time():.3f}"}
        try:
            if size < COPY_LIMIT:
                self.client.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                                        MetadataDirective="REPLACE", Metadata=meta)
            else:
                self.client.copy({"Bucket": self.bucket, "Key": key}, self.bucket, key,
                                 ExtraArgs={"MetadataDirective": "REPLACE", "Metadata": meta})
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise self.failure(f"refresh blob {sha256}", exc) from exc
        return True

    def put_batch(self, source: Path, spans: Sequence[Span]) -> set[str]:
        # A completed PUT is durable: nothing to group but the round trips, which run side by side.
        unique = list({check_key(s.sha256): s for s in reversed(spans)}.values())

        def one(span: Span) -> bool:
            key = self.key_for(span.sha256)
            head = self._head(key, span.sha256)
            if head is not None and self._touch(key, span.sha256, int(head["ContentLength"])):
                return True
            self.call(f"store blob {span.sha256}", self.client.put_object, Bucket=self.bucket, Key=key,
                      Body=read_span(source, span))
            return False

        with ThreadPoolExecutor(min(8, max(1, len(unique))), thread_name_prefix="camroll-s3-put") as pool:
            reused = list(pool.map(one, unique))
        with contextlib.suppress(FileNotFoundError):
            source.unlink()
        return {span.sha256 for span, was in zip(unique, reused, strict=True) if was}

    def open(self, sha256: str, offset: int = 0, length: int | None = None) -> ReadStream:
        key = self.key_for(sha256)
        if length == 0 or offset < 0 or (length is not None and length < 0):
            self.stat(sha256)  # BlobNotFound if absent, like every store
            return _Empty()
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"
        try:
            resp = self.client.get_object(**args)
        except Exception as exc:
            if _is_missing(exc):
                raise BlobNotFound(sha256) from None
            if _code(exc) == "InvalidRange":
                # From at or past the end: S3 answers 416; every store returns no bytes instead.
                self.stat(sha256)
                return _Empty()
            raise self.failure(f"read blob {sha256}", exc) from exc
        return _Body(self, resp["Body"], f"read blob {sha256}")

    def stat(self, sha256: str) -> BlobStat:
        head = self._head(self.key_for(sha256), sha256)
        if head is None:
            raise BlobNotFound(sha256)
        return BlobStat(sha256, int(head["ContentLength"]), head["LastModified"].timestamp())

    def exists(self, sha256: str) -> bool:
        return self._head(self.key_for(sha256), sha256) is not None

    def delete(self, sha256: str) -> None:
        # S3 answers 204 for a key that is not there: idempotent by itself.
        self.call(f"delete blob {sha256}", self.client.delete_object, Bucket=self.bucket, Key=self.key_for(sha256))

    def local_file(self, sha256: str) -> AbstractContextManager[Path]:
        return self.copies.copy(self, sha256)

    def list(self) -> Iterator[BlobStat]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._blobs)
        it = iter(pages)
        start = len(self._blobs)
        while True:
            page = self.call(f"list bucket {self.bucket}", next, it, None)
            if page is None:
                return
            for obj in page.get("Contents", []):
                rel = obj["Key"][start:]
                # ab/cd/<sha256>, nothing else (a stray object someone put in the bucket is not a blob).
                sha = rel[6:]
                if (len(rel) == 70 and rel[2] == "/" and rel[5] == "/" and rel[:2] == sha[:2]
                        and rel[3:5] == sha[2:4] and _is_sha(sha)):
                    yield BlobStat(sha, int(obj["Size"]), obj["LastModified"].timestamp())


def _is_sha(s: str) -> bool:
    return len(s) == 64 and all(c in "0123456789abcdef" for c in s)


class _Empty:
    def read(self, size: int = -1, /) -> bytes:
        return b""

    def close(self) -> None:
        pass

    def __enter__(self) -> _Empty:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Body:
    """An object's streaming body whose read errors (a connection cut, a read timeout) become
    ``StorageFailure``s; closing it before the end drops the connection instead of reading the rest."""

    def __init__(self, store: S3BlobStore, body: Any, what: str) -> None:
        self._store = store
        self._body = body
        self._what = what

    def read(self, size: int = -1, /) -> bytes:
        try:
            data: bytes = self._body.read(None if size < 0 else size)
        except Exception as exc:
            raise self._store.failure(self._what, exc) from exc
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def _is_missing(exc: BaseException) -> bool:
    return _code(exc) in _MISSING_CODES


def _failure(store: S3BlobStore, what: str, exc: BaseException) -> StorageError:
    """Name the problem and the fix for ``exc``; ``what`` is the operation ("store blob ab12...")."""
    import boto3.exceptions
    import botocore.exceptions as bx

    # boto3's transfer manager wraps the client's error; the cause is what tells.
    while isinstance(exc, boto3.exceptions.S3UploadFailedError | boto3.exceptions.RetriesExceededError):
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    who, bucket, url = store.provider, store.bucket, store.location.url
    endpoint = store.endpoint
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return StorageMisconfigured(
            f"No S3 credentials were found to {what} in {url}.",
            "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE with ~/.aws/credentials) in the "
            "server's environment.")
    if isinstance(exc, bx.ConnectTimeoutError | bx.EndpointConnectionError):
        return StorageUnreachable(
            f"Could not connect to {endpoint} to {what}: {exc}.",
            "Check AWS_ENDPOINT_URL (scheme, host and port as your provider gives them) and that the server "
            "is up and reachable from this machine.")
    if isinstance(exc, bx.ReadTimeoutError):
        return StorageTimeout(f"{who} did not answer in time to {what}.",
                              "The server is overloaded or the network is slow; camroll will try again. "
                              "If it persists, check the server's health and the network path to it.")
    if isinstance(exc, bx.SSLError):
        return StorageUnreachable(f"The TLS connection to {endpoint} failed to {what}: {exc}.",
                                  "Check the endpoint's certificate, or AWS_CA_BUNDLE for a private CA.")
    if isinstance(exc, bx.ConnectionClosedError | bx.HTTPClientError | ConnectionError):
        return StorageUnavailable(f"The connection to {endpoint} broke to {what}: {exc}.",
                                  "camroll will try again; if it persists, check the server and the network.")
    if isinstance(exc, bx.ClientError):
        code, status = _code(exc), _status(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")) or code
        if code == "NoSuchBucket" or (status == 404 and what.startswith("reach bucket")):
            return StorageBucketMissing(
                f"{who} has no bucket {bucket!r} (answered {code or status} to {what}).",
                f"Create the bucket in your provider's console, or fix {STORAGE_URL_ENV} (now {url}) and "
                f"AWS_ENDPOINT_URL.")
        if code == "InvalidAccessKeyId":
            return StorageAccessDenied(
                f"{who} does not know the access key id camroll sent to {what}.",
                "Check AWS_ACCESS_KEY_ID (or the profile's aws_access_key_id); a key of one provider or region "
                "is unknown at another, so check AWS_ENDPOINT_URL too.")
        if code == "SignatureDoesNotMatch":
            return StorageAccessDenied(
                f"{who} refused the request signature to {what}: the secret key does not match the key id.",
                "Check AWS_SECRET_ACCESS_KEY (copy it again from your provider; it is shown only once).")
        if code in ("AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException"):
            return StorageMisconfigured(
                f"{who} says bucket {bucket!r} is in another region than the one camroll signed for ({message}).",
                "Set AWS_REGION to the bucket's region as your provider shows it.")
        if status == 403 or code in ("AccessDenied", "AllAccessDisabled", "AccountProblem"):
            right = _right(what)
            # AWS answers a HEAD of a missing object with 403, not 404, when the key may not list the bucket.
            also = " (and list: without it a missing object is answered 403)" if what.startswith("look up") else ""
            return StorageAccessDenied(
                f"{who} answered 403 to {what}: the key has no {right} access to bucket {bucket!r} ({message}).",
                f"Give the key {right}{also} permission on the bucket (and its prefix) in your provider's console, "
                f"or use a key that has it.")
        if status in (500, 502, 503, 504) or code in ("SlowDown", "ServiceUnavailable", "InternalError",
                                                      "RequestTimeout"):
            return StorageUnavailable(f"{who} answered {status} {code} to {what}, after retries.",
                                      "The store is overloaded or down; camroll will try again later.")
        return StorageFailure(f"{who} refused to {what}: {status} {code}: {message}.",
                              f"Check the bucket and key configuration ({STORAGE_URL_ENV}, AWS_*).")
    if isinstance(exc, bx.BotoCoreError):
        return StorageFailure(f"The S3 client could not {what}: {exc}.",
                              "Check the AWS_* configuration and the endpoint.")
    if isinstance(exc, OSError):
        return StorageFailure(f"Could not {what}: {exc}.", "Check the local file and the disk.")
    return StorageFailure(f"Could not {what}: {type(exc).__name__}: {exc}.",
                          "Check the storage configuration and the server log.")


def _right(what: str) -> str:
    for verb, right in (("store", "write"), ("refresh", "write"), ("delete", "delete"), ("list", "list"),
                        ("read", "read"), ("look up", "read"), ("reach", "read")):
        if what.startswith(verb):
            return right
    return "the needed"
