"""Takeout's JSON files, classified by their shape (their names are localised: metadata.json,
métadonnées.json, Metadaten.json ...): a photo's sidecar, an album's metadata, or neither.

Only ``photoTakenTime`` gives the capture time (``creationTime`` is when it was uploaded to Google);
GPS comes from ``geoDataExif``, then ``geoData``; 0,0 means unknown.  Every value is bounded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# A real sidecar is 1-3 KiB; anything larger than this is not read (a huge JSON cannot cost memory).
MAX_JSON_BYTES = 256 * 1024
MAX_TEXT = 2000
# Epoch seconds camroll accepts as a capture time: 1826 .. 2200.
_MIN_TS, _MAX_TS = -4_575_744_000, 7_258_118_400


@dataclass(frozen=True)
class Sidecar:
    """What a photo's sidecar says.  ``taken_at`` None when absent or "0"."""

    title: str
    taken_at: datetime | None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    description: str = ""
    favorited: bool = False
    trashed: bool = False
    archived: bool = False


@dataclass(frozen=True)
class AlbumMeta:
    title: str
    description: str = ""


@dataclass(frozen=True)
class NotUsable:
    """A JSON that is neither (print orders, shared-album comments, broken files); ``why`` for the report."""

    why: str


Parsed = Sidecar | AlbumMeta | NotUsable


def _text(value: Any) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def _timestamp(block: Any) -> datetime | None:
    if not isinstance(block, dict):
        return None
    raw = block.get("timestamp")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    try:
        ts = int(str(raw).strip()[:20])
    except ValueError:
        return None
    if ts == 0 or not _MIN_TS <= ts <= _MAX_TS:
        return None
    return datetime.fromtimestamp(ts, UTC)


def _geo(block: Any) -> tuple[float, float, float | None] | None:
    if not isinstance(block, dict):
        return None
    try:
        lat, lon = float(block.get("latitude", 0.0)), float(block.get("longitude", 0.0))
        alt_raw = block.get("altitude")
        alt = float(alt_raw) if alt_raw is not None else None
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon)) or (lat == 0.0 and lon == 0.0):
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    if alt is not None and not math.isfinite(alt):
        alt = None
    return lat, lon, alt


def parse(data: bytes | None) -> Parsed:
    """Classify and read one JSON member (``None``: it was larger than :data:`MAX_JSON_BYTES`)."""
    if data is None:
        return NotUsable(f"larger than {MAX_JSON_BYTES // 1024} KiB, so not read")
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return NotUsable("not valid JSON")
    if not isinstance(doc, dict):
        return NotUsable("not a JSON object")
    if isinstance(doc.get("albumData"), dict):
        doc = doc["albumData"]
    taken = doc.get("photoTakenTime")
    if taken is not None:
        where = _geo(doc.get("geoDataExif")) or _geo(doc.get("geoData"))
        return Sidecar(
            title=_text(doc.get("title")),
            taken_at=_timestamp(taken),
            latitude=where[0] if where else None,
            longitude=where[1] if where else None,
            altitude=where[2] if where else None,
            description=_text(doc.get("description")),
            favorited=doc.get("favorited") is True,
            trashed=doc.get("trashed") is True,
            archived=doc.get("archived") is True,
        )
    title = _text(doc.get("title")).strip()
    if title:
        return AlbumMeta(title=title, description=_text(doc.get("description")))
    return NotUsable("neither a photo's sidecar (no photoTakenTime) nor an album's metadata (no title)")
