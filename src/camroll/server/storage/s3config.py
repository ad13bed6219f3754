"""Where blobs live (``CAMROLL_STORAGE_URL``) and the S3 client made from the standard AWS configuration.

``CAMROLL_STORAGE_URL`` is unset or ``file:///path`` for the local store (unset: ``<data>/blobs``), or
``s3://BUCKET[/PREFIX]`` for any S3 API.  Everything else about S3 comes from the configuration every
AWS SDK reads, so a provider's own instructions (Backblaze B2, Wasabi, Synology C2, Cloudflare R2, MinIO,
Ceph, SeaweedFS) apply unchanged; boto3's ``Session`` resolves it, camroll does not re-implement it:

* endpoint: ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (or ``endpoint_url`` in ``~/.aws/config``);
  unset means AWS itself;
* credentials: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``
  with ``~/.aws/credentials`` and ``~/.aws/config``, SSO, instance and container roles;
* region: ``AWS_REGION`` (read here, as the AWS CLI v2 and the other SDKs do; botocore alone would not),
  else ``AWS_DEFAULT_REGION`` or the profile's ``region``;
* retries: ``AWS_RETRY_MODE`` / ``AWS_MAX_ATTEMPTS`` (or the profile's); camroll's default when neither
  says is botocore's ``standard`` mode with 5 attempts;
* addressing style: the profile's ``s3 = addressing_style = path|virtual|auto`` (botocore's own key), or
  ``AWS_S3_ADDRESSING_STYLE`` (the name django-storages uses; botocore has no variable for it); default
  ``auto``.  Servers on your own host name (MinIO, Ceph, SeaweedFS, Garage) usually want ``path``; on an
  IP address botocore picks path style by itself.

camroll adds only what a server needs and the SDK leaves open: bounded connect and read timeouts and a
connection pool as large as the threads that may talk to the store at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

STORAGE_URL_ENV = "CAMROLL_STORAGE_URL"
ADDRESSING_STYLE_ENV = "AWS_S3_ADDRESSING_STYLE"
AddressingStyle = Literal["auto", "path", "virtual"]
_STYLES: tuple[AddressingStyle, ...] = ("auto", "path", "virtual")

# A stalled server must not hold a request thread forever; a slow one (a large ranged GET over a thin
# line) still gets a minute per read, which botocore counts per socket read, not per object.
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
DEFAULT_MAX_ATTEMPTS = 5
# Request threads (anyio's default limiter: 40) plus background job workers and transfer threads.
DEFAULT_POOL_SIZE = 64

# S3's own bucket-name rules (3-63 characters, lowercase letters, digits, dots, hyphens), relaxed to allow
# underscores and capitals, which some S3-compatible servers accept.
_BUCKET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
MAX_PREFIX = 512


class StorageConfigError(ValueError):
    """``CAMROLL_STORAGE_URL`` or the S3 configuration is wrong; the message names the problem and the fix."""


@dataclass(frozen=True)
class LocalLocation:
    """Blobs in a local directory; ``path`` None means ``<data>/blobs``."""

    path: Path | None = None


@dataclass(frozen=True)
class S3Location:
    """Blobs in ``bucket`` under ``prefix`` (no leading or trailing slash; '' for the bucket's root)."""

    bucket: str
    prefix: str = ""

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


StorageLocation = LocalLocation | S3Location


def parse_storage_url(url: str | None) -> StorageLocation:
    """What ``CAMROLL_STORAGE_URL`` says; raises ``StorageConfigError`` naming what is wrong and the fix."""
    if url is None or not url.strip():
        return LocalLocation()
    url = url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageConfigError(
                f"{STORAGE_URL_ENV}={url!r} names the host {parts.netloc!r}; a file URL must be local.",
            ) from None
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise StorageConfigError(f"{STORAGE_URL_ENV}={url!r} is not an absolute path. "
                                     f"Write three slashes and the full path, e.g. file:///srv/camroll/blobs.")
        return LocalLocation(Path(path))
    if scheme == "s3":
        return _parse_s3(url, parts.netloc, parts.path, parts.query, parts.fragment)
    hint = (" Give the bucket name, not the endpoint: s3://BUCKET[/PREFIX], with the endpoint in AWS_ENDPOINT_URL."
            if scheme in ("http", "https") else "")
    raise StorageConfigError(
        f"{STORAGE_URL_ENV}={url!r} is neither s3://BUCKET[/PREFIX] nor file:///PATH.{hint} "
        f"Unset it to keep originals in the data directory.")


def _parse_s3(url: str, bucket: str, path: str, query: str, fragment: str) -> S3Location:
    if "@" in bucket or ":" in bucket:
        raise StorageConfigError(
            f"{STORAGE_URL_ENV}={url!r} holds credentials or a port; it takes only s3://BUCKET[/PREFIX]. "
            f"Put the keys in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or a profile) and the server in "
            f"AWS_ENDPOINT_URL.")
    if query or fragment:
        raise StorageConfigError(f"{STORAGE_URL_ENV}={url!r} has a query or fragment; write s3://BUCKET[/PREFIX] "
                                 f"and put other settings in the AWS_* variables or ~/.aws/config.")
    if not bucket:
        raise StorageConfigError(f"{STORAGE_URL_ENV}={url!r} names no bucket; write s3://BUCKET[/PREFIX].")
    if not 3 <= len(bucket) <= 63 or not set(bucket) <= _BUCKET_CHARS:
        raise StorageConfigError(
            f"{STORAGE_URL_ENV}={url!r}: {bucket!r} is not a bucket name (3 to 63 letters, digits, dots and "
            f"hyphens). Use the bucket name your provider shows, e.g. s3://camroll-photos.")
    prefix = unquote(path).strip("/")
    segments = prefix.split("/") if prefix else []
    if any(s in ("", ".", "..") for s in segments) or len(prefix) > MAX_PREFIX or any(ord(c) < 32 for c in prefix):
        raise StorageConfigError(
            f"{STORAGE_URL_ENV}={url!r}: the prefix {prefix!r} must be folder names joined by single slashes "
            f"(no '.', '..', empty parts or control characters, at most {MAX_PREFIX} characters), "
            f"e.g. s3://{bucket}/camroll.")
    return S3Location(bucket, prefix)


def storage_location_from_env() -> StorageLocation:
    return parse_storage_url(os.environ.get(STORAGE_URL_ENV))


def addressing_style() -> AddressingStyle | None:
    """``AWS_S3_ADDRESSING_STYLE`` if set (validated); None lets the AWS config file (or 'auto') decide."""
    raw = os.environ.get(ADDRESSING_STYLE_ENV, "").strip().lower()
    if not raw:
        return None
    for style in _STYLES:
        if raw == style:
            return style
    raise StorageConfigError(f"{ADDRESSING_STYLE_ENV}={raw!r} is not one of auto, path, virtual. "
                             f"Use path for MinIO, Ceph or SeaweedFS on your own host name.")


def make_client(*, pool_size: int = DEFAULT_POOL_SIZE, connect_timeout: float = CONNECT_TIMEOUT_S,
                read_timeout: float = READ_TIMEOUT_S, profile: str | None = None) -> S3Client:
    """An S3 client from the standard AWS configuration (see the module docstring).

    Raises ``StorageConfigError`` for a profile that does not exist or an endpoint that is not a URL.
    Makes no request: whether the bucket answers is ``S3BlobStore.check``'s business."""
    import boto3
    import botocore.exceptions
    from botocore.config import Config

    from camroll import __version__

    try:
        session = boto3.Session(profile_name=profile)
    except botocore.exceptions.ProfileNotFound as exc:
        raise StorageConfigError(f"{exc}. Create it in ~/.aws/config (aws configure --profile NAME) or unset "
                                 f"AWS_PROFILE.") from None
    scoped = session._session.get_scoped_config()
    retries: dict[str, object] = {}
    if not (os.environ.get("AWS_RETRY_MODE") or scoped.get("retry_mode")):
        retries["mode"] = "standard"
    if not (os.environ.get("AWS_MAX_ATTEMPTS") or scoped.get("max_attempts")):
        retries["total_max_attempts"] = DEFAULT_MAX_ATTEMPTS
    style = addressing_style()
    config = Config(
        connect_timeout=connect_timeout, read_timeout=read_timeout, max_pool_connections=pool_size,
        retries=retries or None,  # type: ignore[arg-type]
        # Only when the variable says: otherwise the profile's s3.addressing_style (or 'auto') applies.
        s3={"addressing_style": style} if style else None,
        tcp_keepalive=True, user_agent_extra=f"camroll/{__version__}",
    )
    # AWS_REGION is what the AWS CLI v2 and the other SDKs read first; botocore reads only
    # AWS_DEFAULT_REGION and the profile, so it is passed on explicitly (and wins, as in the CLI).
    region = os.environ.get("AWS_REGION", "").strip() or None
    try:
        return session.client("s3", config=config, region_name=region)
    except ValueError as exc:  # botocore says "Invalid endpoint: ..." for a malformed AWS_ENDPOINT_URL
        raise StorageConfigError(f"The S3 endpoint is not usable: {exc}. Set AWS_ENDPOINT_URL to the URL your "
                                 f"provider gives, e.g. https://s3.us-west-004.backblazeb2.com.") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise StorageConfigError(f"The S3 configuration is not usable: {exc}. Check the AWS_* variables and "
                                 f"~/.aws/config.") from None
