"""``extract(path)``: what camroll knows about one photo or video (capture time and where it came
from, size, camera, place, video properties, Live Photo / Motion Photo links), never raising for a
bad file: whatever could be read is returned with ``error`` set to the reason the rest could not.

Capture time sources, first found wins: ``exif`` (DateTimeOriginal + OffsetTimeOriginal +
SubSecTimeOriginal, then DateTimeDigitized, then DateTime), ``quicktime`` (the container's creation
time via ffprobe: Apple's local ``com.apple.quicktime.creationdate`` with its offset if present, else
``creation_time``, which QuickTime/MP4 store in UTC), ``filename`` (see ``filenames``), ``mtime``
(the file's modification time, passed in by the caller because the server's copy has a new one).

Times are aware when the offset is known (EXIF OffsetTime*, else implied by the EXIF GPS clock, which
is UTC); a naive time is the camera's wall clock with no known offset (most file names).
"""

from __future__ import annotations

import datetime as dt
import re
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any, Literal

import pillow_heif
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict

from camroll.media import exif as exif_mod
from camroll.media import filenames, limits, motion, raw, tools, types
from camroll.media.errors import JXL_UNSUPPORTED, MediaError
from camroll.media.motion import MotionPhoto

pillow_heif.register_heif_opener()

CaptureTimeSource = Literal["exif", "quicktime", "filename", "sidecar", "mtime"]

# Errors a damaged or unexpected file makes Pillow, struct or ffprobe raise; anything else is a bug.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, Image.DecompressionBombError,
    UnidentifiedImageError, MediaError, subprocess.SubprocessError, IndexError,
    RuntimeError,  # pillow-heif reports some libheif failures this way
)
_MAX_TAG = 64
_ISO6709 = re.compile(r"^([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?")


class MediaInfo(BaseModel):
    """Everything ``extract`` learned about one file. JSON round-trips with ``model_dump_json()`` /
    ``MediaInfo.model_validate_json()``. Width and height are as displayed (orientation applied)."""

    model_config = ConfigDict(frozen=True)

    mime: str | None = None
    kind: Literal["image", "video"] | None = None
    capture_time: dt.datetime | None = None
    capture_time_source: CaptureTimeSource | None = None
    width: int | None = None
    height: int | None = None
    orientation: int | None = None
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    duration: float | None = None
    frame_rate: float | None = None
    video_codec: str | None = None
    live_photo_id: str | None = None
    motion_photo: MotionPhoto | None = None
    error: str | None = None


def extract(path: Path, *, mime: str | None = None, mtime: float | None = None) -> MediaInfo:
    """What camroll can read from the photo or video at ``path``. ``mime`` skips sniffing when the
    caller already knows the type; ``mtime`` (seconds since the epoch) is the last-resort capture
    time. Never raises for a bad file: ``error`` says what went wrong."""
    fields: dict[str, Any] = {}
    try:
        with open(path, "rb") as f:
            head = f.read(types.SNIFF_BYTES)
        if not head:
            raise MediaError("The file is empty.")
        mt = _type_for(mime, head)
        if mt is None:
            raise MediaError("This file is not a photo or video type camroll understands.")
        fields["mime"], fields["kind"] = mt.mime, mt.kind
        if mt.kind == "video":
            _video(path, fields)
        elif mt in (types.TIFF, types.CR3, types.RAF):
            _raw(path, head, fields)
        else:
            _image(path, mt, fields)
    except DECODE_ERRORS as exc:
        fields["error"] = describe(exc)
    if fields.get("capture_time") is None:
        fields.pop("capture_time_source", None)
        _fallback_time(path, mtime, fields)
    return MediaInfo(**fields)


def describe(exc: BaseException) -> str:
    """A one-sentence reason for a decode failure."""
    if isinstance(exc, MediaError):
        return str(exc)
    if isinstance(exc, UnidentifiedImageError):
        return "The image data is not readable: the file is corrupt or not really the type its bytes claim."
    if isinstance(exc, Image.DecompressionBombError):
        return (f"The image is too large to decode safely (over the {limits.MAX_PIXELS // 1_000_000} megapixel "
                "limit camroll decodes); the original is kept.")
    if isinstance(exc, FileNotFoundError):
        return "The file does not exist (any more)."
    if isinstance(exc, PermissionError):
        return "The file cannot be read: permission denied."
    if isinstance(exc, OSError) and "truncated" in str(exc):
        return "The image data stops early: the file is truncated."
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return f"The file is damaged or truncated ({text})."


def _type_for(mime: str | None, head: bytes) -> types.MediaType | None:
    if mime is not None:
        for mt in types.SUPPORTED:
            if mt.mime == mime:
                return mt
    return types.sniff(head)


def _image(path: Path, mt: types.MediaType, fields: dict[str, Any]) -> None:
    if mt is types.JXL and not pillow_reads(path):
        raise MediaError(JXL_UNSUPPORTED)
    with Image.open(path) as im:
        width, height = im.size
        # Pillow's PNG getexif() decodes every pixel to look for an eXIf chunk after the image data: a
        # 137 KiB PNG bomb then costs a gigabyte. Only the chunks before the pixels are read.
        exif = Image.Exif() if im.format == "PNG" and "exif" not in im.info else im.getexif()
        ex = exif_mod.read(exif)
        xmp = im.info.get("xmp")
        if im.format == "HEIF":
            # libheif applies the HEIF rotation on decode and resets the EXIF tag; the size is
            # already the displayed one.
            original = im.info.get("original_orientation")
            orientation = original if isinstance(original, int) and 1 <= original <= 8 else 1
        else:
            orientation = ex.orientation or 1
            if orientation >= 5:
                width, height = height, width
    _apply_exif(ex, fields)
    fields.update(width=width, height=height, orientation=orientation)
    if mt in (types.JPEG, types.HEIC):
        found = motion.find(path, xmp if isinstance(xmp, bytes) else None)
        if found is not None:
            fields["motion_photo"] = found


def pillow_reads(path: Path) -> bool:
    """Whether an installed Pillow plugin recognises the file (JPEG XL needs one camroll lacks)."""
    try:
        with Image.open(path):
            return True
    except UnidentifiedImageError:
        return False


def _raw(path: Path, head: bytes, fields: dict[str, Any]) -> None:
    """RAW files and TIFFs (which share a header): EXIF from the TIFF structure or the preview, and
    the largest of the sizes on offer, because IFD0 of many RAWs is only a small thumbnail."""
    ex = raw.read_exif(path, head)
    orientation = (ex.orientation if ex is not None else None) or 1
    if ex is not None:
        _apply_exif(ex, fields)
    sizes: list[tuple[int, int]] = []
    if ex is not None and ex.width and ex.height:
        sizes.append((ex.width, ex.height))
    preview = raw.find_preview(path)
    if preview is not None:
        sizes.append((preview.width, preview.height))
    if head.startswith((b"II*\x00", b"MM\x00*")):
        try:
            with Image.open(path) as im:
                sizes.append(im.size)
        except DECODE_ERRORS:
            if not sizes:
                raise
    fields["orientation"] = orientation
    if sizes:
        w, h = max(sizes, key=lambda wh: wh[0] * wh[1])
        if orientation >= 5:
            w, h = h, w
        fields.update(width=w, height=h)


def _apply_exif(ex: exif_mod.ExifFields, fields: dict[str, Any]) -> None:
    for name in ("make", "model", "lens", "latitude", "longitude", "altitude", "live_photo_id"):
        value = getattr(ex, name)
        if value is not None:
            fields[name] = value
    if ex.capture_time is not None:
        fields.update(capture_time=ex.capture_time, capture_time_source="exif")


def _video(path: Path, fields: dict[str, Any]) -> None:
    info = tools.probe(path)
    fmt = info.get("format") or {}
    tags = {str(k).lower(): str(v) for k, v in (fmt.get("tags") or {}).items()}
    streams = [s for s in info.get("streams") or [] if isinstance(s, dict)]
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    duration = _float(fmt.get("duration")) or (_float(video.get("duration")) if video else None)
    if duration is not None:
        fields["duration"] = round(duration, 3)
    if video is not None:
        for k, v in (video.get("tags") or {}).items():
            tags.setdefault(str(k).lower(), str(v))
        _video_stream(video, fields)
    when = _quicktime_time(tags)
    if when is not None:
        fields.update(capture_time=when, capture_time_source="quicktime")
    for key, name in (("com.apple.quicktime.make", "make"), ("com.apple.quicktime.model", "model"),
                      ("com.android.manufacturer", "make"), ("com.android.model", "model")):
        if tags.get(key) and name not in fields:
            fields[name] = tags[key].strip()
    content_id = tags.get("com.apple.quicktime.content.identifier")
    if content_id:
        fields["live_photo_id"] = content_id.strip()
    place = tags.get("com.apple.quicktime.location.iso6709") or tags.get("location")
    if place:
        _iso6709(place, fields)


def _video_stream(video: dict[str, Any], fields: dict[str, Any]) -> None:
    width, height = video.get("width"), video.get("height")
    rotation = 0
    for side in video.get("side_data_list") or []:
        if isinstance(side, dict) and "rotation" in side:
            rotation = int(_float(side["rotation"]) or 0)
    if not rotation:
        rotation = int(_float((video.get("tags") or {}).get("rotate")) or 0)
    rotation %= 360
    # The EXIF orientation matching what ffmpeg's autorotation (used for posters) does with this
    # angle; tests/media pins the two together with a real rotated clip.
    fields["orientation"] = {0: 1, 90: 8, 180: 3, 270: 6}.get(rotation, 1)
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        if rotation in (90, 270):
            width, height = height, width
        fields.update(width=width, height=height)
    rate = _fraction(video.get("avg_frame_rate")) or _fraction(video.get("r_frame_rate"))
    if rate:
        fields["frame_rate"] = round(rate, 3)
    if video.get("codec_name"):
        fields["video_codec"] = str(video["codec_name"])


def _quicktime_time(tags: dict[str, str]) -> dt.datetime | None:
    local = tags.get("com.apple.quicktime.creationdate")
    if local:
        when = _iso(local)
        if when is not None:
            return when
    utc = tags.get("creation_time")
    if utc:
        when = _iso(utc)
        # Cameras without a clock write the QuickTime epoch (1904) or the Unix epoch.
        if when is not None and when.year > 1970:
            return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
    return None


def _iso(text: str) -> dt.datetime | None:
    # Container tags come from the file: an ISO time is ~30 characters, a tag can be a megabyte.
    text = text[:_MAX_TAG].strip().replace("Z", "+00:00")
    # "+0100" -> "+01:00" for Python 3.11's fromisoformat.
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _iso6709(text: str, fields: dict[str, Any]) -> None:
    m = _ISO6709.match(text[:_MAX_TAG].strip())
    if not m:
        return
    lat, lon = float(m.group(1)), float(m.group(2))
    if -90 <= lat <= 90 and -180 <= lon <= 180 and (lat, lon) != (0, 0):
        fields.update(latitude=lat, longitude=lon)
        if m.group(3):
            fields["altitude"] = float(m.group(3))


def _fallback_time(path: Path, mtime: float | None, fields: dict[str, Any]) -> None:
    when = filenames.capture_time(path.name)
    if when is not None:
        fields.update(capture_time=when, capture_time_source="filename")
    elif mtime is not None:
        fields.update(capture_time=dt.datetime.fromtimestamp(mtime, dt.UTC), capture_time_source="mtime")


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _fraction(value: object) -> float | None:
    if not isinstance(value, str) or "/" not in value:
        return _float(value)
    num, _, den = value.partition("/")
    n, d = _float(num), _float(den)
    return n / d if n and d else None
