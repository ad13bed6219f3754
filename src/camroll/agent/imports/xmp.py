"""XMP sidecars (``IMG_1234.JPG.xmp`` or ``IMG_1234.xmp``) as Lightroom, darktable, digiKam, Apple Photos'
"export with XMP" and most photo managers write them: the capture time, place, caption and rating.

Untrusted input, parsed by ``camroll.media.xmp``'s bounded expat parser: one pass, no tree, a document type
declaration refused before any entity can expand, at most ``MAX_BYTES``.  Names are matched by their
local part (``exif:DateTimeOriginal`` and ``exifEX:DateTimeOriginal`` alike).  A value that does not
parse is left out; nothing here raises for bad content.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from datetime import UTC, datetime

from camroll.agent.imports.sidecar import Sidecar
from camroll.media.xmp import Refused, bounded_parser

MAX_BYTES = 1 << 20
# Capture time, best first: when the shutter fired, then what the software recorded as creation.
_TIMES = ("DateTimeOriginal", "DateCreated", "CreateDate", "DateTimeDigitized")
_TEXT = {"description"}
_ALL = {*_TIMES, *_TEXT, "GPSLatitude", "GPSLongitude", "GPSAltitude", "GPSAltitudeRef", "Rating"}
# 48,51.5034N / 48,51,30.2N / 48.8584 / -2.2945
_DMS = re.compile(r"^\s*(\d{1,3})(?:,(\d{1,2}(?:\.\d+)?))?(?:,(\d{1,2}(?:\.\d+)?))?\s*([NSEW])\s*$")
_RATIONAL = re.compile(r"^\s*(-?\d{1,9})(?:/(\d{1,9}))?\s*$")
# The rating a photo manager gives its favourites (xmp:Rating runs 1-5; -1 is rejected).
FAVORITE_RATING = 5


def _local(name: str) -> str:
    return name.rpartition(":")[2]


class _Collector:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self._stack: list[str] = []
        self._text: list[str] = []
        self._length = 0  # of _text: kept, not summed per call (a long caption would be quadratic)

    def start(self, name: str, attrs: dict[str, str]) -> None:
        for k, v in attrs.items():
            local = _local(k)
            if local in _ALL and local not in self.values:
                self.values[local] = v[:4000]
        self._stack.append(_local(name))
        self._text, self._length = [], 0

    def end(self, name: str) -> None:
        local = self._stack.pop() if self._stack else ""
        text = "".join(self._text).strip()
        self._text, self._length = [], 0
        if not text:
            return
        # A caption is rdf:Alt/rdf:li inside dc:description: the text belongs to the nearest known name.
        owner = next((n for n in reversed([*self._stack, local]) if n in _ALL), None)
        if owner is not None and owner not in self.values:
            self.values[owner] = text[:4000]

    def chars(self, data: str) -> None:
        if self._length < 8000:
            self._text.append(data)
            self._length += len(data)


def _time(text: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:  # EXIF's own form, as some writers copy it verbatim
            t = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
        except ValueError:
            return None
    if not 1900 <= t.year <= 2200:
        return None
    # Without an offset it is the camera's wall clock; taken as UTC, so its calendar day stays.
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _coordinate(text: str, limit: float) -> float | None:
    m = _DMS.match(text)
    if m:
        deg, minutes, seconds, hemi = m.groups()
        value = int(deg) + float(minutes or 0) / 60 + float(seconds or 0) / 3600
        value = -value if hemi in "SW" else value
    else:
        try:
            value = float(text)
        except ValueError:
            return None
    return round(value, 7) if -limit <= value <= limit else None


def _altitude(text: str, ref: str | None) -> float | None:
    m = _RATIONAL.match(text)
    if not m or (m.group(2) is not None and int(m.group(2)) == 0):
        return None
    value = int(m.group(1)) / int(m.group(2) or 1)
    value = -value if (ref or "").strip() == "1" else value
    return value if -20_000 <= value <= 100_000 else None


def parse(data: bytes | None, title: str) -> Sidecar | None:
    """What the sidecar says, or None when it is not XMP camroll can read (or says nothing)."""
    if not data or len(data) > MAX_BYTES:
        return None
    c = _Collector()
    p = bounded_parser(c.start, c.end, c.chars)
    try:
        p.Parse(data, True)
    except (Refused, xml.parsers.expat.ExpatError, ValueError):
        return None
    v = c.values
    taken = next((t for k in _TIMES if (t := _time(v.get(k, ""))) is not None), None)
    lat = _coordinate(v.get("GPSLatitude", ""), 90)
    lon = _coordinate(v.get("GPSLongitude", ""), 180)
    if lat is None or lon is None:
        lat = lon = None
    alt = _altitude(v.get("GPSAltitude", ""), v.get("GPSAltitudeRef")) if lat is not None else None
    rating = v.get("Rating", "").strip()
    found = Sidecar(title=title, taken_at=taken, latitude=lat, longitude=lon, altitude=alt,
                    description=v.get("description", "")[:2000],
                    favorited=rating.isascii() and rating.isdigit() and int(rating[:3]) >= FAVORITE_RATING)
    if found == Sidecar(title=title, taken_at=None):
        return None
    return found
