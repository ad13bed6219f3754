"""Google/Samsung Motion Photos: a JPEG (or HEIC) with a short MP4 appended after the image.

Found by the XMP that describes it (``GCamera:MotionPhoto`` with a ``Container`` item length, or the
older ``GCamera:MicroVideo`` with ``MicroVideoOffset``, both counted from the end of the file), else by
an MP4 ``ftyp`` box right after the JPEG's end-of-image marker.
"""

from __future__ import annotations

import mmap
import re
import struct
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from camroll.media import jpeg, xmp
from camroll.media.errors import UnreadableMedia

# Anchored and of fixed length: linear in the 4 bytes it is given.
_BRAND = re.compile(rb"^[A-Za-z0-9 ]{4}$")
# How far past the end of the image an appended MP4 may start (gain maps, markers, padding).
_TRAILER_SEARCH = 16 << 20


class MotionPhoto(BaseModel):
    """Where the embedded video lies in the file (byte offset and length)."""

    model_config = ConfigDict(frozen=True)

    offset: int
    length: int
    found_by: Literal["xmp", "trailer"]


def from_xmp(packet: bytes | xmp.MotionXmp, file_size: int) -> MotionPhoto | None:
    """The embedded video an XMP packet declares, or None if it declares none (or an impossible one)."""
    declared = packet if isinstance(packet, xmp.MotionXmp) else xmp.motion(packet)
    length = declared.video_length
    if not declared.flagged or length is None or not 0 < length < file_size:
        return None
    return MotionPhoto(offset=file_size - length, length=length, found_by="xmp")


def find(path: Path, packet: bytes | None) -> MotionPhoto | None:
    """The Motion Photo video embedded in the JPEG at ``path``, or None. Raises UnreadableMedia if
    the JPEG has no end-of-image marker (a cut-off copy), found on the way for free."""
    size = path.stat().st_size
    parsed = xmp.motion(packet) if packet else xmp.MotionXmp()
    declared = from_xmp(parsed, size)
    if declared is not None and _is_ftyp_at(path, declared.offset):
        return declared
    with open(path, "rb") as f:
        # A plain JPEG ends with its end-of-image marker; only other files, and those whose XMP
        # says they hold a video, are searched.
        f.seek(max(0, size - 2))
        if f.read(2) == b"\xff\xd9" and not parsed.flagged:
            return None
        if size == 0:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            end = jpeg.end(data)
            if end is None and data[:2] == b"\xff\xd8":
                raise UnreadableMedia("The JPEG stops before the end of its image data: the file is truncated.")
            if end is None or end >= size:
                return None
            return _trailer_mp4(data, end, size)


def _is_ftyp_at(path: Path, offset: int) -> bool:
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(12)
    return len(head) == 12 and head[4:8] == b"ftyp" and bool(_BRAND.match(head[8:12]))


def _trailer_mp4(data: mmap.mmap, start: int, size: int) -> MotionPhoto | None:
    search_end = min(size, start + _TRAILER_SEARCH)
    pos = data.find(b"ftyp", start + 4, search_end)
    while pos >= 0:
        box = pos - 4
        (box_size,) = struct.unpack_from(">I", data, box)
        if 8 <= box_size <= 4096 and pos + 8 <= size and _BRAND.match(data[pos + 4:pos + 8]):
            return MotionPhoto(offset=box, length=size - box, found_by="trailer")
        pos = data.find(b"ftyp", pos + 4, search_end)
    return None
