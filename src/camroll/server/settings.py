"""Server settings and where the server keeps its data; shared by ``serve``, ``admin`` and ``camroll up``."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from camroll.server.egress import EgressPolicy
from camroll.server.storage.s3config import LocalLocation, StorageLocation, storage_location_from_env

DATA_ENV = "CAMROLL_DATA"
DATABASE_URL_ENV = "CAMROLL_DATABASE_URL"

DEFAULT_LISTEN = "127.0.0.1:8420"
DEFAULT_MAX_FILE_SIZE = 100 * 10**9
DEFAULT_CHUNK_SIZE = 16 * 2**20
DEFAULT_UPLOAD_EXPIRY_HOURS = 24.0
DEFAULT_MIN_CLIENT_VERSION = "0.1.0"
DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 300
DEFAULT_STALL_MINUTES = 60.0
DEFAULT_SILENCE_HOURS = 24.0
DEFAULT_STALL_CHECK_SECONDS = 60.0
# The largest blob copied to local disk for a decoder when originals are not on local disk (S3): as large
# as any accepted file by default, so every video gets its poster; the free-space check still applies.
LOCAL_COPY_MAX_ENV = "CAMROLL_LOCAL_COPY_MAX"
# Environment variables behind the ``camroll serve`` options of the same meaning.
STALL_MINUTES_ENV = "CAMROLL_STALL_MINUTES"
SILENCE_HOURS_ENV = "CAMROLL_SILENCE_HOURS"
HEARTBEAT_INTERVAL_ENV = "CAMROLL_HEARTBEAT_INTERVAL"
STALL_CHECK_INTERVAL_ENV = "CAMROLL_STALL_CHECK_INTERVAL"
PUBLIC_URL_ENV = "CAMROLL_PUBLIC_URL"
METRICS_TOKEN_ENV = "CAMROLL_METRICS_TOKEN"
# A scrape token is a shared secret in a Prometheus config: long enough that guessing it is hopeless.
MIN_METRICS_TOKEN_LENGTH = 16


def resolve_data_dir(option: Path | str | None = None) -> Path:
    """The server data directory: ``--data`` if given, else ``$CAMROLL_DATA``, else the per-user
    data directory (``~/.local/share/camroll/server`` on Linux)."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("camroll")) / "server"


def database_url(data_dir: Path) -> str:
    """``$CAMROLL_DATABASE_URL`` if set, else SQLite at ``<data>/camroll.db``."""
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite+pysqlite:///{data_dir / 'camroll.db'}"


def _size_env(name: str) -> int:
    from camroll.units import parse_size

    raw = os.environ.get(name, "").strip()
    if not raw:
        return 0
    try:
        return parse_size(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r}: {exc}; write a size such as 20GB") from None
def metrics_token(token: str | None) -> str | None:
    """The scrape token ``/metrics`` asks for, or None; ValueError says what is wrong with it."""
    if token is None or not token.strip():
        return None
    token = token.strip()
    if len(token) < MIN_METRICS_TOKEN_LENGTH:
        raise ValueError(f"{METRICS_TOKEN_ENV} is {len(token)} characters long; use at least "
                         f"{MIN_METRICS_TOKEN_LENGTH} (e.g. the output of 'openssl rand -hex 32') or unset it")
    return token


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str = ""
    name: str = field(default_factory=socket.gethostname)
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    chunk_size: int = DEFAULT_CHUNK_SIZE
    upload_expiry_seconds: float = DEFAULT_UPLOAD_EXPIRY_HOURS * 3600
    min_client_version: str = DEFAULT_MIN_CLIENT_VERSION
    session_days: int = 30
    # Only the photo and video types in camroll.media.types are stored unless the admin allows other
    # files ("--accept-other-files"); the agent already skips them by the same table.
    accept_other_files: bool = False
    # Device health and alerts (see services/health.py and services/stalls.py).
    heartbeat_interval_seconds: int = DEFAULT_HEARTBEAT_INTERVAL_SECONDS
    stall_seconds: float = DEFAULT_STALL_MINUTES * 60
    silence_seconds: float = DEFAULT_SILENCE_HOURS * 3600
    stall_check_seconds: float = DEFAULT_STALL_CHECK_SECONDS
    notify_timeout_seconds: float = 30.0
    # Which alert URLs may be sent to (schemes, addresses): $CAMROLL_NOTIFY_* through for_data_dir.
    notify_policy: EgressPolicy = field(default_factory=EgressPolicy)
    # Where originals and thumbnails live: $CAMROLL_STORAGE_URL (storage/s3config.py); local by default.
    storage: StorageLocation = field(default_factory=LocalLocation)
    # Largest temporary local copy of a blob for a decoder (0: as large as max_file_size).
    local_copy_max_bytes: int = 0
    # Operations (server/metrics.py, server/checks.py): the bearer token /metrics asks for
    # ($CAMROLL_METRICS_TOKEN), a second address serving /metrics with no token (--metrics-listen), and
    # the URL clients reach the server at ($CAMROLL_PUBLIC_URL / --public-url; admin check looks at it).
    metrics_token: str | None = None
    metrics_listen: str | None = None
    public_url: str | None = None

    @classmethod
    def for_data_dir(cls, data_dir: Path, **overrides: object) -> Settings:
        """Settings for ``data_dir`` from the environment; ValueError names a variable that is wrong."""
        overrides.setdefault("notify_policy", EgressPolicy.from_env())
        overrides.setdefault("storage", storage_location_from_env())
        overrides.setdefault("local_copy_max_bytes", _size_env(LOCAL_COPY_MAX_ENV))
        overrides.setdefault("metrics_token", metrics_token(os.environ.get(METRICS_TOKEN_ENV)))
        overrides.setdefault("public_url", os.environ.get(PUBLIC_URL_ENV, "").strip() or None)
        return cls(data_dir=data_dir, database_url=database_url(data_dir), **overrides)  # type: ignore[arg-type]

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def blobs_dir(self) -> Path:
        """The local blob store's directory (``file://`` storage URL, else ``<data>/blobs``)."""
        if isinstance(self.storage, LocalLocation) and self.storage.path is not None:
            return self.storage.path
        return self.data_dir / "blobs"

    @property
    def local_copy_max(self) -> int:
        return self.local_copy_max_bytes or self.max_file_size

    @property
    def sweep_interval_seconds(self) -> float:
        # Often enough that an expired upload's disk space comes back within a fraction of the expiry.
        return max(0.5, min(60.0, self.upload_expiry_seconds / 4))
