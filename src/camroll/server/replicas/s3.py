"""A replica in an S3 bucket (``s3://BUCKET[/PREFIX]``): the S3 blob store (storage/s3.py) with its layout,
error sentences and client, configured per replica.

Per-replica options (stored in the database, each optional; unset ones fall back to the standard AWS
configuration of the server's environment, as the primary store's do): ``endpoint``, ``region``,
``profile``, ``access_key_id`` + ``secret_access_key``, ``addressing_style``.  A secret is never shown:
``describe_options`` masks it.

Uploads ask the server to check a SHA-256 of the body (``ChecksumAlgorithm=SHA256``): a server that
supports it refuses a body that arrived altered, and keeps the checksum, which ``checksum`` reads back
(``HeadObject`` with ``ChecksumMode=ENABLED``).  Only a whole-object checksum counts (a multipart upload's
is a checksum of checksums, shown with a ``-N`` suffix, and is not the file's SHA-256): other copies are
read back by scrub."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camroll.server.replicas.target import Kind
from camroll.server.storage.base import BlobNotFound, BlobStat, ReadStream, StorageFailure
from camroll.server.storage.s3 import S3BlobStore
from camroll.server.storage.s3 import _is_missing as _is_missing  # the store's own reading of a 404
from camroll.server.storage.s3config import (
    CONNECT_TIMEOUT_S,
    DEFAULT_MAX_ATTEMPTS,
    READ_TIMEOUT_S,
    S3Location,
    StorageConfigError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

OPTION_KEYS = ("endpoint", "region", "profile", "access_key_id", "secret_access_key", "addressing_style")

_POOL = 16


def make_client(options: dict[str, Any]) -> S3Client:
    import boto3
    import botocore.exceptions
    from botocore.config import Config

    from camroll import __version__

    try:
        session = boto3.Session(profile_name=options.get("profile") or None)
    except botocore.exceptions.ProfileNotFound as exc:
        raise StorageConfigError(f"{exc}. Create it in ~/.aws/config (aws configure --profile NAME) or leave "
                                 f"--profile out.") from None
    style = options.get("addressing_style") or os.environ.get("AWS_S3_ADDRESSING_STYLE") or None
    config = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S, max_pool_connections=_POOL,
                    retries={"mode": "standard", "total_max_attempts": DEFAULT_MAX_ATTEMPTS},
                    s3={"addressing_style": style} if style else None,  # type: ignore[arg-type]
                    tcp_keepalive=True, user_agent_extra=f"camroll/{__version__}")
    kwargs: dict[str, Any] = {"config": config}
    if options.get("endpoint"):
        kwargs["endpoint_url"] = options["endpoint"]
    region = options.get("region") or os.environ.get("AWS_REGION", "").strip() or None
    if region:
        kwargs["region_name"] = region
    if options.get("access_key_id"):
        kwargs["aws_access_key_id"] = options["access_key_id"]
        kwargs["aws_secret_access_key"] = options.get("secret_access_key") or ""
    try:
        return session.client("s3", **kwargs)
    except ValueError as exc:
        raise StorageConfigError(f"The S3 endpoint is not usable: {exc}. Give --endpoint as your provider shows "
                                 f"it, e.g. https://s3.us-west-004.backblazeb2.com.") from None


class S3Target:
    kind = Kind.S3

    def __init__(self, location: S3Location, options: dict[str, Any], client: S3Client | None = None) -> None:
        self.store = S3BlobStore(client or make_client(options), location)
        self.where = f"{location.url} at {self.store.provider}"

    def put(self, sha256: str, source: Path) -> None:
        from boto3.s3.transfer import TransferConfig

        key = self.store.key_for(sha256)
        cfg = TransferConfig(multipart_threshold=self.store.multipart_threshold,
                             multipart_chunksize=self.store.multipart_chunk, max_concurrency=4)
        extra = {"ChecksumAlgorithm": "SHA256"}
        self.store.call(f"store blob {sha256}", self.store.client.upload_file, str(source), self.store.bucket, key,
                        ExtraArgs=extra, Config=cfg)

    def open(self, sha256: str) -> ReadStream:
        return self.store.open(sha256)

    def stat(self, sha256: str) -> BlobStat:
        return self.store.stat(sha256)

    def checksum(self, sha256: str) -> str | None:
        key = self.store.key_for(sha256)
        try:
            head = self.store.client.head_object(Bucket=self.store.bucket, Key=key, ChecksumMode="ENABLED")
        except Exception as exc:
            if _is_missing(exc):
                raise BlobNotFound(sha256) from None
            raise self.store.failure(f"look up blob {sha256}", exc) from exc
        value = head.get("ChecksumSHA256")
        if not value or "-" in value or head.get("ChecksumType") == "COMPOSITE":
            return None
        try:
            return base64.b64decode(value).hex()
        except ValueError:
            return None

    def delete(self, sha256: str) -> None:
        self.store.delete(sha256)

    def list(self) -> Iterator[BlobStat]:
        return self.store.list()

    def check(self) -> None:
        s = self.store
        key = s.key(f".camroll-probe-{uuid.uuid4().hex}")
        body = b"camroll replica probe"
        s.call(f"store a probe object in bucket {s.bucket}", s.client.put_object, Bucket=s.bucket, Key=key, Body=body)
        try:
            got = s.call(f"read a probe object in bucket {s.bucket}", s.client.get_object, Bucket=s.bucket, Key=key)
            data = got["Body"].read()
            if data != body:
                raise StorageFailure(f"{s.provider} gave back other bytes than were stored in bucket {s.bucket}.",
                                     "Check the endpoint: it may not be an S3 server.")
        finally:
            s.call(f"delete a probe object in bucket {s.bucket}", s.client.delete_object, Bucket=s.bucket, Key=key)

    def close(self) -> None:
        self.store.client.close()


