"""Database tables as typed SQLAlchemy models; ``migrations/versions`` creates the same schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Row ids (and the foreign keys, which take their type): 64-bit, as the API's ids are.  SQLite's INTEGER
# PRIMARY KEY is 64-bit already, and only that exact spelling is the rowid that numbers new rows;
# PostgreSQL's INTEGER is 32-bit, so there it is BIGINT (migration 0008).
ID = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SessionToken(Base):
    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    platform: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Blob(Base):
    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Asset(Base):
    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("user_id", "sha256", name="uq_assets_user_sha256"),
        # The timeline is a keyset walk down this index: newest capture time first, id breaking ties.
        Index("ix_assets_timeline", "user_id", "taken_at", "id"),
        Index("ix_assets_user_trashed", "user_id", "trashed_at"),
        Index("ix_assets_user_live_photo", "user_id", "live_photo_id"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mime: Mapped[str | None] = mapped_column(String(100), nullable=True)
    filename: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Library (migration 0003).  ``taken_at`` is the best capture time known: the file's mtime or the
    # upload time until the metadata job reads EXIF/QuickTime/filename; ``taken_offset`` its UTC offset
    # in minutes when the source said (days group by the photographer's wall clock).
    kind: Mapped[str] = mapped_column(String(8), default="other")
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    taken_offset: Mapped[int | None] = mapped_column(Integer, nullable=True)
    taken_source: Mapped[str] = mapped_column(String(16), default="upload")
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    camera_make: Mapped[str | None] = mapped_column(String(200), nullable=True)
    camera_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    media: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # A Live Photo's still and MOV share ``live_photo_id``; the MOV points at its still with
    # ``live_of_id`` (and is hidden from the timeline), the still at its MOV with ``live_video_id``.
    live_photo_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    live_video_id: Mapped[int | None] = mapped_column(ID, nullable=True)
    live_of_id: Mapped[int | None] = mapped_column(ID, nullable=True)
    motion_photo: Mapped[bool] = mapped_column(Boolean, default=False)
    # Where a Motion Photo's embedded MP4 lies in the original, so it can be served without re-parsing.
    motion_video_offset: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    motion_video_length: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    metadata_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    thumbs_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    job_error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    job_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    trashed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # From importers (migration 0013): a favourite flag and caption, and ``hints`` (wire.ImportHints as
    # JSON: the sidecar's time and place) that the metadata job uses where the file itself has none.
    favorite: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    description: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    hints: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class AssetFile(Base):
    """Where a device holds a copy of an asset: one row per (device, path)."""

    __tablename__ = "asset_files"
    __table_args__ = (UniqueConstraint("asset_id", "device_id", "path", name="uq_asset_files_location"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # ``path`` is text a person reads; when the device's name is not UTF-8 it shows the other bytes as \xNN
    # (wire.display_name) and ``path_raw`` holds the exact bytes, for a restore.
    path: Mapped[str] = mapped_column(String(4000))
    filename: Mapped[str] = mapped_column(String(1000))
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    path_raw: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # When the server learnt of this copy (upload completed or hash check matched): a device's last
    # successful upload is the newest of these.  Null only for rows older than migration 0002's backfill.
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, default=utcnow)


class Upload(Base):
    """A tus upload.  ``state`` is ``active`` while bytes arrive, ``complete`` once it became an asset
    (kept until expiry so a client whose last response was lost can HEAD it), ``expired`` after the
    sweeper removed its bytes (kept so the client gets 410 rather than 404)."""

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_state_expires", "state", "expires_at"),
                      # A device's latest upload activity: progress for the stall checks.
                      Index("ix_uploads_device_updated", "device_id", "updated_at"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"), nullable=True)
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    meta: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    declared_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Set once the received bytes were hashed, before they go to the blob store, so a crash between
    # the blob store and the asset row can be finished at start-up.
    computed_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mime: Mapped[str | None] = mapped_column(String(100), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="active")
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # On an S3 part store (migration 0007): the multipart upload holding the acknowledged parts, and
    # the object holding the bytes after them (shorter than a part may be).  Empty on local part files.
    multipart_id: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    tail_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    tail_size: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The request writing to it (any replica) until ``lease_until``; renewed while a body streams.
    writer_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UploadPart(Base):
    """One acknowledged part of an upload's S3 multipart upload.  Parts uploaded by a request that
    failed before its offset was recorded have no row, so completion never lists them."""

    __tablename__ = "upload_parts"

    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(200))


class DeviceHealth(Base):
    """The latest heartbeat of a device, plus what the server derived from the ones before it."""

    __tablename__ = "device_health"

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    agent_version: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))
    headline: Mapped[str] = mapped_column(String(2000))
    blocker_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    blocker: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    pending_files: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    failed_files: Mapped[int] = mapped_column(BigInteger, default=0)
    skipped_files: Mapped[int] = mapped_column(BigInteger, default=0)
    backed_up_files: Mapped[int] = mapped_column(BigInteger, default=0)
    left_out_files: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Last heartbeat that showed progress (fewer pending files, more backed up, or nothing pending).
    progress_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Since when the agent has reported this same state and blocker code.
    state_since: Mapped[datetime] = mapped_column(UTCDateTime)


class NotifyTarget(Base):
    """An apprise URL that receives a user's backup alerts."""

    __tablename__ = "notify_targets"
    __table_args__ = (UniqueConstraint("user_id", "url", name="uq_notify_targets_user_url"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Incident(Base):
    """An open alert: a condition that was notified once and will be notified again when it clears.

    ``key`` names the condition within the user (``device:3:silent``, ``quota:90``), so the same
    condition never opens twice."""

    __tablename__ = "incidents"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_incidents_user_key"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), nullable=True)
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    message: Mapped[str] = mapped_column(String(2000))


class Lease(Base):
    """Work that one process at a time may do across replicas: a periodic task (``stall-checks``) or
    one asset's background job (``asset:42``), held by ``holder`` until ``expires_at``.  The rules
    (one atomic statement to take one, expiry as the only way a dead holder lets go) are in
    server/leases.py."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- Albums (migration 0010) ----------------------------------------------------------------------
class Album(Base):
    """A user's named set of assets.  Deleting an album never deletes a photo; an asset purged from the
    trash leaves every album (the item rows cascade), and a trashed one is only hidden from them."""

    __tablename__ = "albums"
    # One name per user, so an import that finds an album folder twice fills the same album.
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_albums_user_name"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Chosen by the user; when unset (or its asset is trashed) the newest visible item stands in.
    cover_asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlbumItem(Base):
    __tablename__ = "album_items"

    album_id: Mapped[int] = mapped_column(ForeignKey("albums.id", ondelete="CASCADE"), primary_key=True)
    # Indexed for the purge's cascade and for "which albums hold this asset".
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True, index=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DavFolder(Base):
    """A folder a WebDAV client made (MKCOL) in its device's tree; folders that hold files need no row
    (migration 0011)."""

    __tablename__ = "dav_folders"
    __table_args__ = (UniqueConstraint("device_id", "path", name="uq_dav_folders_device_path"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(4096))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DavUpload(Base):
    """A chunked WebDAV upload (Nextcloud chunking v2 folder under /dav/uploads/USER/): its chunks are
    appended to one upload row, so their bytes live in the part store and expire with it."""

    __tablename__ = "dav_uploads"
    __table_args__ = (UniqueConstraint("device_id", "name", name="uq_dav_uploads_device_name"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    upload_id: Mapped[str | None] = mapped_column(ForeignKey("uploads.id", ondelete="SET NULL"), nullable=True)
    # OC-Total-Length when the client sent it (an early quota check), else None.
    total_length: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DavChunk(Base):
    """One chunk of a chunked WebDAV upload: where its bytes start in the upload and how many arrived."""

    __tablename__ = "dav_chunks"

    dav_upload_id: Mapped[int] = mapped_column(ForeignKey("dav_uploads.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    start: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)


class Replica(Base):
    """A second place every original is copied to (server/replicas/): an S3 bucket, a folder or an rclone
    remote.  ``options`` holds what the URL cannot (endpoint, region, profile, keys; never shown whole);
    the ``failing_*`` and ``retry_at`` columns are the replica's health as its copy loop last saw it."""

    __tablename__ = "replicas"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    kind: Mapped[str] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failure_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    failure_problem: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    failure_fix: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReplicaCopy(Base):
    """One blob on one replica: pending, copied (the replica holds an object of the right size), verified
    (its bytes were proven to hash right) or failed (``reason``, typed; ``detail`` the sentence).  Keyed by
    blob, not asset: the bytes are shared by every asset (of any user) that has them."""

    __tablename__ = "replica_copies"
    __table_args__ = (Index("ix_replica_copies_work", "replica_id", "state", "retry_at"),
                      Index("ix_replica_copies_sha256", "sha256"))

    replica_id: Mapped[int] = mapped_column(ForeignKey("replicas.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detail: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # When the blob became durable here: the backlog's age counts from it.
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    copied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class BlobCheck(Base):
    """When scrub last proved a blob on the primary store intact (re-hashed to its SHA-256)."""

    __tablename__ = "blob_checks"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ScrubFinding(Base):
    """A blob scrub found wrong (missing, truncated, altered, unreadable) on the primary or a replica, and
    what was done about it (repaired from a replica, copied again from the primary, or not repaired)."""

    __tablename__ = "scrub_findings"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    found_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    # "primary" or the replica's name (kept as text: the finding outlives a removed replica).
    location: Mapped[str] = mapped_column(String(64))
    problem: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str] = mapped_column(String(2000))
