"""Capture times that phones and apps write into file names, used when a file has no EXIF or
container date.

Times are naive (the device's wall clock) except Pixel's ``PXL_`` names, which Google's camera
writes in UTC. WhatsApp names carry a date only: midnight of that day is returned.
"""

from __future__ import annotations

import datetime as dt
import re

_SEP = r"[-_. ]?"
# YYYYMMDD_HHMMSS with optional separators and optional milliseconds:
# IMG_20240101_123456, VID_20240101_123456, PXL_20240101_123456789, 20240101_123456,
# Screenshot_2024-01-01-12-34-56, Screenshot_20240101-123456, signal-2024-01-01-123456,
# "Screenshot 2024-01-01 at 12.34.56".
_DATETIME = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d{2})-?(?P<mo>\d{2})-?(?P<d>\d{2})"
    r"(?:[-_ T]|[ _]at[ _])"
    rf"(?P<h>\d{{2}}){_SEP}(?P<mi>\d{{2}}){_SEP}(?P<s>\d{{2}})"
    r"(?:[-_.]?(?P<ms>\d{3}))?(?!\d)"
)
_WHATSAPP = re.compile(r"(?<!\d)(?P<y>(?:19|20)\d{2})(?P<mo>\d{2})(?P<d>\d{2})-WA\d+", re.IGNORECASE)
_PIXEL = re.compile(r"^PXL_", re.IGNORECASE)
# Longer than any file system's name limit (255 bytes); device paths reach here from the network.
_MAX_NAME = 1024


def capture_time(name: str) -> dt.datetime | None:
    """The capture time a file name states, or None if it states none (or an impossible one)."""
    name = name[:_MAX_NAME]
    m = _DATETIME.search(name)
    if m:
        try:
            when = dt.datetime(
                int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]), int(m["s"]),
                int(m["ms"]) * 1000 if m["ms"] else 0,
            )
        except ValueError:
            return None
        return when.replace(tzinfo=dt.UTC) if _PIXEL.match(name) else when
    m = _WHATSAPP.search(name)
    if m:
        try:
            return dt.datetime(int(m["y"]), int(m["mo"]), int(m["d"]))
        except ValueError:
            return None
    return None
