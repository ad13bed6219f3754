"""What camroll reads from EXIF: capture time with its offset, orientation, camera, lens, GPS and
Apple's Live Photo content identifier (in Apple's maker note)."""

from __future__ import annotations

import datetime as dt
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from PIL import ExifTags, Image

_IFD0 = ExifTags.Base
_DATE_RE = re.compile(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET_RE = re.compile(r"^\s*([+-])(\d{2}):?(\d{2})\s*$")
# EXIF dates, sub-seconds and offsets are a few bytes; a file can make them megabytes, so only this
# much of each is looked at (the patterns are linear anyway, but need not be fast on a megabyte).
_MAX_FIELD = 64

# Apple's maker note: "Apple iOS\0", a 2-byte version, "MM", then a big-endian IFD whose offsets
# count from the start of the maker note. Tag 0x0011 is the Live Photo content identifier shared by
# the still and its MOV.
_APPLE_MAKERNOTE = b"Apple iOS\x00"
_APPLE_CONTENT_ID = 0x0011


@dataclass(frozen=True)
class ExifFields:
    capture_time: dt.datetime | None = None
    orientation: int | None = None
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    width: int | None = None
    height: int | None = None
    live_photo_id: str | None = None


def read(exif: Image.Exif) -> ExifFields:
    """The fields camroll uses from a Pillow Exif object; missing or malformed values are None."""
    return read_ifds(exif, exif.get_ifd(ExifTags.IFD.Exif), exif.get_ifd(ExifTags.IFD.GPSInfo))


def read_ifds(exif: Mapping[int, object], sub: Mapping[int, object], gps: Mapping[int, object]) -> ExifFields:
    """Like ``read``, from the three IFDs given separately (CR3 stores them as separate TIFFs)."""
    lat, lon, alt = _gps(gps)
    orientation = exif.get(_IFD0.Orientation)
    return ExifFields(
        capture_time=_with_gps_offset(capture_time(exif, sub), gps),
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None,
        make=_text(exif.get(_IFD0.Make)),
        model=_text(exif.get(_IFD0.Model)),
        lens=_text(sub.get(ExifTags.Base.LensModel)),
        latitude=lat,
        longitude=lon,
        altitude=alt,
        width=_positive_int(sub.get(ExifTags.Base.ExifImageWidth)),
        height=_positive_int(sub.get(ExifTags.Base.ExifImageHeight)),
        live_photo_id=apple_content_id(sub.get(ExifTags.Base.MakerNote)),
    )


def capture_time(exif: Mapping[int, object], sub: Mapping[int, object]) -> dt.datetime | None:
    """DateTimeOriginal (then DateTimeDigitized, then IFD0 DateTime) with its sub-seconds, aware
    when the matching OffsetTime* tag is present, naive (local wall time) otherwise."""
    candidates = (
        (sub.get(ExifTags.Base.DateTimeOriginal), sub.get(ExifTags.Base.SubsecTimeOriginal),
         sub.get(ExifTags.Base.OffsetTimeOriginal)),
        (sub.get(ExifTags.Base.DateTimeDigitized), sub.get(ExifTags.Base.SubsecTimeDigitized),
         sub.get(ExifTags.Base.OffsetTimeDigitized)),
        (exif.get(_IFD0.DateTime), sub.get(ExifTags.Base.SubsecTime), sub.get(ExifTags.Base.OffsetTime)),
    )
    for stamp, subsec, offset in candidates:
        when = parse_datetime(_text(stamp), _text(subsec), _text(offset))
        if when is not None:
            return when
    return None


def _with_gps_offset(when: dt.datetime | None, gps: Mapping[int, object]) -> dt.datetime | None:
    """A naive EXIF time made aware with the offset implied by the GPS clock (always UTC), for
    cameras that record a GPS fix but no OffsetTime; the offset is rounded to 15 minutes, as time
    zones are, so a GPS fix taken a little before the shot still gives the right zone."""
    if when is None or when.tzinfo is not None:
        return when
    stamp, hms = _text(gps.get(ExifTags.GPS.GPSDateStamp)), gps.get(ExifTags.GPS.GPSTimeStamp)
    if not stamp or not isinstance(hms, tuple | list) or len(hms) != 3:
        return when
    parts = [_number(v) for v in hms]
    m = re.match(r"^(\d{4})[:\-](\d{2})[:\-](\d{2})", stamp)
    if m is None or any(p is None for p in parts):
        return when
    h, mi, sec = (p for p in parts if p is not None)
    try:
        utc = dt.datetime(int(m[1]), int(m[2]), int(m[3])) + dt.timedelta(hours=h, minutes=mi, seconds=sec)
    except (ValueError, OverflowError):
        return when
    quarter = round((when.replace(microsecond=0) - utc).total_seconds() / 900)
    if abs(quarter) > 14 * 4:
        return when  # the two clocks disagree by more than any time zone: trust neither for an offset
    return when.replace(tzinfo=dt.timezone(dt.timedelta(minutes=15 * quarter)))


def parse_datetime(stamp: str | None, subsec: str | None = None, offset: str | None = None) -> dt.datetime | None:
    """An EXIF "YYYY:MM:DD HH:MM:SS" stamp as a datetime; None for blanks and zeros."""
    if not stamp:
        return None
    m = _DATE_RE.match(stamp[:_MAX_FIELD])
    if not m:
        return None
    try:
        y, mo, d, h, mi, sec = (int(g) for g in m.groups())
        when = dt.datetime(y, mo, d, h, mi, sec)
    except ValueError:
        return None
    if subsec:
        digits = "".join(ch for ch in subsec[:_MAX_FIELD] if ch.isdigit())[:6]
        if digits:
            when = when.replace(microsecond=int(digits.ljust(6, "0")))
    tz = parse_offset(offset)
    return when.replace(tzinfo=tz) if tz is not None else when


def parse_offset(text: str | None) -> dt.timezone | None:
    """"+02:00" / "-0500" as a timezone; None if absent or malformed."""
    if not text:
        return None
    text = text[:_MAX_FIELD]
    if text.strip() in ("Z", "z"):
        return dt.UTC
    m = _OFFSET_RE.match(text)
    if not m:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    if minutes > 18 * 60:
        return None
    return dt.timezone(dt.timedelta(minutes=-minutes if m.group(1) == "-" else minutes))


def _gps(gps: Mapping[int, object]) -> tuple[float | None, float | None, float | None]:
    lat = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "S")
    lon = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "W")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        # Many cameras write 0/0 when they had no fix; that is not a place.
        return None, None, None
    alt = _number(gps.get(ExifTags.GPS.GPSAltitude))
    ref = gps.get(ExifTags.GPS.GPSAltitudeRef)
    below = ref in (1, b"\x01") or (isinstance(ref, bytes) and ref[:1] == b"\x01")
    if alt is not None and below:
        alt = -alt
    return round(lat, 7), round(lon, 7), (round(alt, 2) if alt is not None else None)


def _degrees(value: object, ref: object, negative: str) -> float | None:
    if not isinstance(value, tuple | list) or len(value) != 3:
        return _number(value)
    parts = [_number(v) for v in value]
    if any(p is None for p in parts):
        return None
    d, m, s = (p for p in parts if p is not None)
    deg = d + m / 60 + s / 3600
    ref_text = _text(ref)
    return -deg if ref_text is not None and ref_text.upper().startswith(negative) else deg


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


def apple_content_id(makernote: object) -> str | None:
    """The Live Photo content identifier in Apple's maker note, or None."""
    if not isinstance(makernote, bytes) or not makernote.startswith(_APPLE_MAKERNOTE) or len(makernote) < 16:
        return None
    endian = ">" if makernote[12:14] == b"MM" else "<"
    try:
        (count,) = struct.unpack_from(endian + "H", makernote, 14)
        for i in range(min(count, 512)):
            tag, typ, n, value = struct.unpack_from(endian + "HHI4s", makernote, 16 + 12 * i)
            if tag != _APPLE_CONTENT_ID or typ != 2:
                continue
            if n <= 4:
                raw = value[:n]
            else:
                (offset,) = struct.unpack(endian + "I", value)
                raw = makernote[offset:offset + n]
            return _text(raw)
    except struct.error:
        return None
    return None
