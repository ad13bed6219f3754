"""The HTTP API contract between agent and server.

Both sides import these pydantic models and constants; nothing else is shared except ``camroll.media``.
Changing a model here changes the protocol: keep additions optional and bump ``API_VERSION`` in
``camroll/__init__.py`` on anything incompatible.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

API_PREFIX = "/api/v1"
UPLOADS_PATH = f"{API_PREFIX}/uploads/"

# --- tus 1.0 --------------------------------------------------------------------------------------
TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "checksum",
    "termination",
    "expiration",
)
TUS_CHECKSUM_ALGORITHMS = ("sha1", "sha256")
# tus checksum extension: the chunk's checksum did not match; camroll uses it for the whole-file check too.
STATUS_CHECKSUM_MISMATCH = 460

# Keys of the tus ``Upload-Metadata`` header that camroll's server understands.  Only ``sha256`` is
# required for an upload to become an asset; the rest describe where the file came from.
META_FILENAME = "filename"
META_SHA256 = "sha256"
META_SIZE = "size"
META_MTIME_NS = "mtime_ns"
META_PATH = "path"
# A device path that is not valid UTF-8 (a latin-1 name from an old disk): ``path`` and ``filename`` then
# hold its readable form (:func:`display_name`) and ``path_raw`` its exact bytes (:func:`raw_name_to_wire`),
# so a restore can recreate the name byte for byte.  Absent for UTF-8 paths.
META_PATH_RAW = "path_raw"
# JSON of ``ImportHints``: what an importer knows beyond the file (a Takeout sidecar's date, place, caption,
# favourite flag and albums).
META_HINTS = "hints"

# Answer header of the request that completes an upload (and of HEAD on a completed one): the asset id.
ASSET_ID_HEADER = "Camroll-Asset-Id"

# Sent by the agent on every request so the server can refuse clients that are too old.
CLIENT_VERSION_HEADER = "X-Camroll-Client-Version"

PROBLEM_CONTENT_TYPE = "application/problem+json"

# --- Bounds on everything the API takes -------------------------------------------------------------
# Every integer is stored in a signed 64-bit column, and every string and list is kept or echoed, so
# each has a limit the server checks before anything is written (an out-of-range mtime once failed
# an upload only after its bytes were stored).
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
# Row ids: SQLite's INTEGER PRIMARY KEY is positive and below 2^63.
Id = Annotated[int, Field(ge=1, le=INT64_MAX)]
# Linux's PATH_MAX; a device path longer than this cannot be opened there anyway.
MAX_PATH = 4096
MAX_FILENAME = 1024
MAX_TEXT = 2000
MAX_CODE = 100
# Upload-Metadata: the header as sent (base64 inflates by 4/3), how many pairs, one decoded value.
MAX_UPLOAD_METADATA = 32 * 1024
MAX_UPLOAD_METADATA_PAIRS = 32
MAX_UPLOAD_METADATA_VALUE = 4 * MAX_PATH
# Any JSON request body (a check batch of MAX_CHECK_BATCH long paths is the largest one the agent sends).
MAX_JSON_BODY = 32 * 2**20


def display_name(raw: bytes) -> str:
    """A file name as people read it: UTF-8, each byte that is not UTF-8 shown as ``\\xNN``
    (``IMG_caf\\xe9.jpg``).  Not U+FFFD, which would give two different names the same text; not a guess
    at latin-1 or cp1252, which shows a Cyrillic or Shift-JIS name as plausible but wrong accented letters."""
    return raw.decode("utf-8", "backslashreplace")


def raw_name_to_wire(raw: bytes) -> str:
    """The exact bytes of a name as JSON/header text (standard base64)."""
    return base64.b64encode(raw).decode("ascii")


def raw_name_from_wire(text: str) -> bytes:
    """Inverse of :func:`raw_name_to_wire`; raises ``ValueError`` for text that is not base64."""
    return base64.b64decode(text, validate=True)


def encode_upload_metadata(meta: dict[str, str]) -> str:
    """Encode a tus ``Upload-Metadata`` header: ``key base64(value)`` pairs joined by commas."""
    return ",".join(f"{k} {base64.b64encode(v.encode('utf-8')).decode('ascii')}" for k, v in meta.items())


def decode_upload_metadata(header: str) -> dict[str, str]:
    """Decode a tus ``Upload-Metadata`` header; raises ``ValueError`` naming the bad pair or the limit
    it goes past (``MAX_UPLOAD_METADATA`` characters, ``MAX_UPLOAD_METADATA_PAIRS`` pairs,
    ``MAX_UPLOAD_METADATA_VALUE`` bytes per value)."""
    if len(header) > MAX_UPLOAD_METADATA:
        raise ValueError(f"the header has {len(header)} characters, more than the {MAX_UPLOAD_METADATA} "
                         "this server reads")
    out: dict[str, str] = {}
    for pair in header.split(","):
        pair = pair.strip()
        if not pair:
            continue
        if len(out) >= MAX_UPLOAD_METADATA_PAIRS:
            raise ValueError(f"more than {MAX_UPLOAD_METADATA_PAIRS} pairs")
        key, _, value = pair.partition(" ")
        if not key or " " in value.strip():
            raise ValueError(f"malformed Upload-Metadata pair {pair[:100]!r}: expected 'key base64value'")
        try:
            raw = base64.b64decode(value.strip(), validate=True) if value else b""
        except ValueError as exc:
            raise ValueError(f"Upload-Metadata value for {key[:100]!r} is not base64") from exc
        if len(raw) > MAX_UPLOAD_METADATA_VALUE:
            raise ValueError(f"the value of {key[:100]!r} has {len(raw)} bytes, more than {MAX_UPLOAD_METADATA_VALUE}")
        try:
            out[key] = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"Upload-Metadata value for {key[:100]!r} is not base64 of UTF-8 text") from exc
    return out


def parse_int64(text: str, *, signed: bool = False) -> int:
    """A decimal integer of ASCII digits (an optional '-' if ``signed``) within the 64-bit range.

    Stricter than ``int()``, which also takes other scripts' digits, underscores and spaces, and
    refuses more than 4,300 digits with an error of its own; raises ``ValueError`` with a sentence."""
    body = text.strip()
    negative = signed and body.startswith("-")
    digits = body[1:] if negative else body
    if not (0 < len(digits) <= 19 and digits.isascii() and digits.isdigit()):
        raise ValueError(f"{text[:40]!r} is not a {'' if signed else 'non-negative '}integer of at most 19 digits")
    value = -int(digits) if negative else int(digits)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{text[:40]!r} is outside the 64-bit integer range")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- Errors (RFC 9457) ----------------------------------------------------------------------------
ProblemCode = Literal[
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "gone",
    "quota_exceeded",
    "storage_full",
    "file_too_large",
    "unsupported_media_type",
    "checksum_mismatch",
    "offset_mismatch",
    "client_too_old",
    "tus_version",
    "rate_limited",
    "busy",
    "request_too_large",
    "not_ready",
    "internal",
]


class Problem(_Model):
    """An RFC 9457 problem document; ``code`` and ``fix`` are camroll's extension members."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: ProblemCode
    fix: str | None = None
    instance: str | None = None


# --- Server description ---------------------------------------------------------------------------
class MediaTypeInfo(_Model):
    mime: str
    kind: Literal["image", "video"]
    extensions: list[str]


class UploadLimits(_Model):
    max_file_size: int = Field(description="Largest single file the server accepts, in bytes.")
    tus_version: str = TUS_VERSION
    tus_extensions: list[str] = list(TUS_EXTENSIONS)
    checksum_algorithms: list[str] = list(TUS_CHECKSUM_ALGORITHMS)
    chunk_size: int = Field(description="Suggested PATCH size in bytes.")
    expiry_seconds: int = Field(description="An unfinished upload is deleted this long after its last byte.")


class ServerInfo(_Model):
    name: str
    version: str
    api_version: int
    min_client_version: str
    upload: UploadLimits
    media_types: list[MediaTypeInfo]


# --- Accounts and devices -------------------------------------------------------------------------
MAX_USERNAME_LENGTH = 200
MAX_PASSWORD_LENGTH = 1024


class LoginRequest(_Model):
    username: str = Field(max_length=MAX_USERNAME_LENGTH)
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)


class UserInfo(_Model):
    id: int
    username: str
    is_admin: bool
    quota_bytes: int | None
    used_bytes: int


class LoginResponse(_Model):
    token: str = Field(description="Session token; send as 'Authorization: Bearer <token>'.")
    expires_at: datetime
    user: UserInfo


class DeviceCreate(_Model):
    name: str = Field(min_length=1, max_length=200)
    platform: str = Field(default="", max_length=200)


class DeviceInfo(_Model):
    id: int
    name: str
    platform: str
    created_at: datetime
    last_seen_at: datetime | None
    revoked: bool


class DeviceCreated(DeviceInfo):
    token: str = Field(description="Device API token, shown once; the server keeps only its hash.")


# --- Device heartbeats and health -----------------------------------------------------------------
# What an agent is doing, in one word.  "paused" = a policy holds it (battery, network, switched off,
# time window); "stopped" = something outside the device holds it (quota, server, account); "error" =
# the agent itself cannot work (corrupt state it could not rebuild, unreadable config).
AgentState = Literal["idle", "backing_up", "paused", "stopped", "error"]
MAX_HEARTBEAT_PROBLEMS = 100


class DeviceProblem(_Model):
    """One file on a device that is not backed up, as ``camroll problems`` shows it."""
    path: str = Field(max_length=MAX_PATH)
    state: str = Field(max_length=MAX_CODE, description="waiting, skipped or failed (the agent's per-file state).")
    reason: str = Field(max_length=MAX_TEXT)
    fix: str | None = Field(default=None, max_length=MAX_TEXT)
    attempts: Count = 0
    next_retry_at: AwareDatetime | None = None


class Heartbeat(_Model):
    """Sent by an agent every few minutes and at the end of every pass (PUT /devices/current/heartbeat)."""
    agent_version: str = Field(max_length=MAX_CODE)
    state: AgentState
    headline: str = Field(max_length=MAX_TEXT,
                          description="The agent's one-line status, e.g. 'Paused: battery 14% ...'.")
    blocker_code: str | None = Field(default=None, max_length=MAX_CODE,
                                     description="Machine code of the blocker, e.g. battery_low.")
    blocker: str | None = Field(default=None, max_length=MAX_TEXT,
                                description="The blocker as a sentence with its fix.")
    pending_files: Count = 0
    pending_bytes: Count = 0
    failed_files: Count = 0
    skipped_files: Count = 0
    backed_up_files: Count = 0
    left_out_files: Count = Field(default=0, description="Files left out by choice: hidden, in Android's trash, "
                                  "or kept out by the include/exclude settings (not problems).")
    last_success_at: AwareDatetime | None = Field(default=None, description="End of the last pass that left "
                                                  "nothing to do.")
    problems: list[DeviceProblem] = Field(default_factory=list, max_length=MAX_HEARTBEAT_PROBLEMS)


class HeartbeatAck(_Model):
    server_time: datetime = Field(description="For the agent's clock-skew check.")
    interval_seconds: int = Field(description="Send the next heartbeat within this many seconds.")


class DeviceHealth(_Model):
    """The server's view of one device's backup."""
    last_heartbeat_at: datetime | None
    last_upload_at: datetime | None = Field(description="Last asset this device completed (server clock).")
    agent_version: str | None
    state: AgentState | Literal["never_seen", "silent"]
    headline: str
    blocker_code: str | None
    blocker: str | None
    pending_files: int
    pending_bytes: int
    failed_files: int
    skipped_files: int
    backed_up_files: int
    left_out_files: int = 0
    stalled: bool = Field(description="Pending work and no progress for longer than the stall limit.")
    problems: list[DeviceProblem]


class DeviceWithHealth(DeviceInfo):
    health: DeviceHealth


# --- Backup alerts (apprise URLs per user) --------------------------------------------------------
class NotificationTargetCreate(_Model):
    url: str = Field(min_length=1, max_length=2000, description="An apprise URL, e.g. ntfy://ntfy.sh/my-topic.")


class NotificationTarget(_Model):
    id: int
    url: str = Field(description="The URL with its secrets masked.")
    created_at: datetime
    last_sent_at: datetime | None
    last_error: str | None = Field(description="Why the last message to this URL failed, if it did.")
    last_error_at: datetime | None


class NotificationResult(_Model):
    id: int
    url: str = Field(description="The URL with its secrets masked.")
    ok: bool
    error: str | None = None


# --- Assets ---------------------------------------------------------------------------------------
MAX_CHECK_BATCH = 5000


MAX_HINT_ALBUMS = 100
MAX_DESCRIPTION = 2000


class ImportHints(_Model):
    """What an importer knows about a file beyond its bytes (a Google Takeout sidecar, an XMP file).  The
    file's own metadata wins where it has any: a hint's time and place are used only when it has none."""

    taken_at: AwareDatetime | None = Field(default=None, description="When it was taken (years 1800-2200).")
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    altitude: float | None = Field(default=None, ge=-20_000, le=100_000)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    favorite: bool = False
    albums: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=MAX_HINT_ALBUMS,
        description="Albums to put it in (made when the user has none of that name).")

    @field_validator("taken_at")
    @classmethod
    def _plausible(cls, v: datetime | None) -> datetime | None:
        if v is not None and not 1800 <= v.year <= 2200:
            raise ValueError("a capture time must lie between the years 1800 and 2200")
        return v


class CheckItem(_Model):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # When given and the asset exists, the server records this device path for it, so a file found
    # in a second folder is known to be backed up without sending its bytes again.
    path: str | None = Field(default=None, max_length=MAX_PATH)
    filename: str | None = Field(default=None, max_length=MAX_FILENAME)
    mtime_ns: Int64 | None = None
    # Base64 of MAX_PATH bytes is at most 4/3 as long.
    path_raw: str | None = Field(default=None, max_length=MAX_PATH * 4 // 3 + 4,
                                 description="Base64 of the path's exact bytes when they are not UTF-8 "
                                             "(``path`` then shows them as \\xNN).")
    hints: ImportHints | None = Field(default=None, description="For an asset the server has: the importer's "
                                      "albums, favourite flag and caption are added to it.")


class CheckRequest(_Model):
    items: list[CheckItem] = Field(max_length=MAX_CHECK_BATCH)


class UploadRoom(_Model):
    """How much this user could upload right now: asked before a body is sent, so a file that does not
    fit is refused by a bodiless tus creation instead of being sent whole first."""
    quota_left: int | None = Field(description="Bytes left in the user's quota (minus unfinished uploads); "
                                   "null when the user has no quota.")
    disk_left: int = Field(description="Bytes the server's disk can still take for uploads (free space minus "
                           "unfinished uploads and the reserve it keeps for its database).")

    @property
    def bytes(self) -> int:
        return self.disk_left if self.quota_left is None else min(self.quota_left, self.disk_left)


class CheckResponse(_Model):
    present: dict[str, int] = Field(description="sha256 -> asset id, for hashes this user already has.")
    missing: list[str]
    room: UploadRoom | None = Field(default=None, description="Room for uploads now; absent from servers "
                                    "too old to tell.")
    trashed: list[str] = Field(default_factory=list, description="Of ``present``, the hashes whose asset is in "
                               "the trash (purged after the trash period): there, but not safe.")


class AssetFileInfo(_Model):
    device_id: int | None
    device_name: str | None
    path: str
    filename: str
    mtime_ns: Int64 | None
    path_raw: str | None = Field(default=None, description="Base64 of the path's exact bytes on the device "
                                 "when they are not UTF-8; a restore recreates the name from these.")


class AssetInfo(_Model):
    id: int
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: Count
    mime: str | None
    filename: str
    created_at: datetime = Field(description="When the server stored the verified blob.")
    files: list[AssetFileInfo]


class AssetPage(_Model):
    items: list[AssetInfo]
    next_cursor: str | None


# --- Library: timeline, details, thumbnails, trash, storage ------------------------------------------
# Filled in by the server's background jobs (metadata extraction, thumbnails); until a job has run the
# fields are null and ``capture_time`` falls back to the file's mtime.
CaptureTimeSource = Literal["exif", "quicktime", "filename", "sidecar", "mtime", "upload"]
ThumbSize = Literal["grid", "preview"]
MAX_TIMELINE_LIMIT = 1000


class TimelineItem(_Model):
    id: int
    kind: Literal["image", "video", "other"]
    mime: str | None
    filename: str
    size: int
    capture_time: datetime = Field(description="When it was taken (best source known), timezone-aware.")
    capture_time_source: CaptureTimeSource
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    # False until the thumbnail job has run; the UI shows a placeholder meanwhile.
    has_thumbnail: bool = False
    live_video_id: int | None = Field(default=None, description="The MOV half of a Live Photo, shown as one.")
    motion_photo: bool = False
    trashed_at: datetime | None = Field(default=None, description="Set in the trash listing: when it was trashed.")


class TimelineDay(_Model):
    date: str = Field(description="YYYY-MM-DD in the capture time's own offset.")
    items: list[TimelineItem]


class TimelinePage(_Model):
    """Newest first.  A day can continue on the next page (same ``date`` again)."""
    days: list[TimelineDay]
    next_cursor: str | None
    total: int = Field(description="Assets matching the filters (not trashed).")


class AssetMetadata(_Model):
    capture_time: datetime | None = None
    capture_time_source: CaptureTimeSource | None = None
    width: int | None = None
    height: int | None = None
    orientation: int | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    duration_s: float | None = None
    frame_rate: float | None = None
    video_codec: str | None = None
    error: str | None = Field(default=None, description="Why metadata could not (fully) be read.")


class AssetCopy(_Model):
    """One replica's copy of an asset's original (server/replicas/)."""
    replica: str = Field(max_length=64)
    state: Literal["pending", "copied", "verified", "failed"]
    reason: str | None = Field(default=None, description="Why the last copy failed (a typed reason).")
    copied_at: datetime | None = None
    verified_at: datetime | None = Field(default=None, description="When this copy was last proven to hash right.")


class AssetDetail(AssetInfo):
    kind: Literal["image", "video", "other"]
    metadata: AssetMetadata
    has_thumbnail: bool
    job_error: str | None = Field(default=None, description="Why a background job failed for this asset.")
    trashed_at: datetime | None = None
    live_video_id: int | None = None
    motion_video_offset: int | None = Field(default=None, description="Where a Motion Photo's MP4 starts.")
    motion_video_length: int | None = Field(default=None, description="Its length; play it at /assets/{id}/motion.")
    verified_at: datetime | None = Field(default=None, description="When scrub last proved the original intact "
                                         "on the server (re-hashed to its SHA-256); null until then.")
    copies: list[AssetCopy] = Field(default_factory=list, max_length=100,
                                    description="Where the original's other copies are (replicas), and their state.")
    favorite: bool = Field(default=False, description="Marked as a favourite (e.g. in Google Photos, by an import).")
    description: str | None = Field(default=None, description="Its caption, when one was imported.")


MAX_ASSET_IDS = 10_000


class AssetIds(_Model):
    ids: list[Id] = Field(min_length=1, max_length=MAX_ASSET_IDS)


class TrashResult(_Model):
    changed: int
    purge_after_days: int = 30


class StorageUse(_Model):
    kind: Literal["image", "video", "other"]
    files: int
    bytes: int


class ReplicaBacklog(_Model):
    """A replica's backlog, for an admin's storage page (server/replicas/)."""
    name: str = Field(max_length=64)
    paused: bool
    backlog_files: int
    backlog_bytes: int
    oldest_pending: datetime | None = Field(default=None, description="When the oldest original not yet "
                                            "copied became durable here.")
    failing: str | None = Field(default=None, max_length=4100, description="Why it fails, with the fix.")


class StorageInfo(_Model):
    used_bytes: int
    quota_bytes: int | None
    by_kind: list[StorageUse]
    trashed_bytes: int
    replicas: list[ReplicaBacklog] = Field(default_factory=list, max_length=1000,
                                           description="The server's replicas and their backlog (admins only).")


# --- Upload activity per device (the web UI's "uploads per day" charts) --------------------------------
class UploadDay(_Model):
    date: str = Field(description="YYYY-MM-DD (UTC) on which the server learnt of these copies.")
    files: int
    bytes: int


class DeviceActivity(_Model):
    device_id: int | None = Field(description="None for files uploaded from the web page.")
    days: list[UploadDay] = Field(description="Oldest first; days without uploads are left out.")


# --- Albums --------------------------------------------------------------------------------------------
MAX_ALBUM_NAME = 200
MAX_ALBUMS_PER_USER = 10_000
MAX_ALBUM_ITEMS = 200_000
AlbumName = Annotated[str, Field(min_length=1, max_length=MAX_ALBUM_NAME,
                                 description="Shown as given, without leading or trailing spaces; unique per user.")]


class AlbumInfo(_Model):
    id: int
    name: str
    item_count: int = Field(description="Items shown in the album: trashed ones are left out until restored.")
    cover_asset_id: int | None = Field(
        description="The chosen cover, or the newest item when none is chosen (or it is in the trash).")
    cover_chosen: bool = Field(description="True when the user picked the cover.")
    created_at: datetime
    updated_at: datetime


class AlbumCreate(_Model):
    name: AlbumName
    ids: list[Id] = Field(default_factory=list, max_length=MAX_ASSET_IDS, description="Assets to put in it.")


class AlbumUpdate(_Model):
    name: AlbumName | None = None
    cover_asset_id: Id | None = Field(default=None, description="An asset in the album (see clear_cover).")
    clear_cover: bool = Field(default=False, description="Go back to the newest item as the cover.")


class AlbumChange(_Model):
    changed: int = Field(description="How many items were added or removed; ids already so, or not yours, count 0.")
    album: AlbumInfo


# --- Batched uploads of small files (POST BATCH_PATH) -------------------------------------------------
# One request carries many small files: BATCH_MAGIC, a 4-byte big-endian length, that many bytes of a
# BatchManifest in JSON, then every file's bytes back to back in manifest order (exactly the declared
# sizes, nothing between).  The server checks the manifest (bounds, sizes against the quota) before it
# reads a byte of the files, verifies each file by its own SHA-256, stores the verified ones with one
# round of fsyncs and records them in one transaction; each file gets its own BatchItemResult.
BATCH_PATH = f"{UPLOADS_PATH}batch"
BATCH_CONTENT_TYPE = "application/vnd.camroll.batch"
BATCH_MAGIC = b"CRB1"
MAX_BATCH_FILES = 1000
MAX_BATCH_BYTES = 64 * 2**20
# Larger files go through tus, one at a time, resumable mid-file.
MAX_BATCH_FILE_SIZE = 4 * 2**20
MAX_BATCH_MANIFEST = 8 * 2**20


class BatchEntry(_Model):
    size: int = Field(ge=0, le=MAX_BATCH_FILE_SIZE)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    path: str = Field(default="", max_length=MAX_PATH)
    filename: str | None = Field(default=None, max_length=MAX_FILENAME)
    mtime_ns: Int64 | None = None
    path_raw: str | None = Field(default=None, max_length=MAX_PATH * 4 // 3 + 4,
                                 description="Base64 of the path's exact bytes when they are not UTF-8.")


class BatchManifest(_Model):
    files: list[BatchEntry] = Field(min_length=1, max_length=MAX_BATCH_FILES)


BatchStatus = Literal["created", "duplicate", "refused"]
# Why one file of a batch was refused; everything but the first four is worth sending again later.
BatchRefusal = Literal[
    "checksum_mismatch",       # its bytes do not hash to the declared SHA-256: read the file again
    "unsupported_media_type",  # not a photo or video (recognised from its bytes)
    "file_too_large",          # over the server's max file size
    "quota_exceeded",          # the account has no room for it
    "storage_full",            # the server's disk has no room for it
    "not_stored",              # the store failed or its bytes were removed meanwhile: send it again
]


class BatchItemResult(_Model):
    index: Count = Field(description="Position of the file in the manifest.")
    sha256: str
    status: BatchStatus
    asset_id: int | None = None
    code: BatchRefusal | None = None
    detail: str | None = None
    fix: str | None = None


class BatchResponse(_Model):
    results: list[BatchItemResult]
