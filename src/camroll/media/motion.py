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

from camroll.media import jpeg
from camroll.media.errors import UnreadableMedia

_MICRO_OFFSET = re.compile(rb"MicroVideoOffset(?:=\"|>)\s*(\d+)")
_MOTION_FLAG = re.compile(rb"(?:MotionPhoto|MicroVideo)(?:=\"|>)\s*1")
# In the Container directory, the item whose Semantic is MotionPhoto carries the video's Length.
_ITEM = re.compile(rb"<Container:Item\b(.*?)(?:/>|</Container:Item>)", re.DOTALL)
_SEMANTIC_MOTION = re.compile(rb"Item:Semantic=\"MotionPhoto\"")
_LENGTH = re.compile(rb"Item:Length=\"(\d+)\"")
_BRAND = re.compile(rb"^[A-Za-z0-9 ]{4}$")
# How far past the end of the image an appended MP4 may start (gain maps, markers, padding).
_TRAILER_SEARCH = 16 << 20


class MotionPhoto(BaseModel):
    """Where the embedded video lies in the file (byte offset and length)."""

    model_config = ConfigDict(frozen=True)

    offset: int
    length: int
    found_by: Literal["xmp", "trailer"]


def from_xmp(xmp: bytes, file_size: int) -> MotionPhoto | None:
    """The embedded video an XMP packet declares, or None if it declares none (or an impossible one)."""
    if not _MOTION_FLAG.search(xmp):
        return None
    length: int | None = None
    for item in _ITEM.finditer(xmp):
        if _SEMANTIC_MOTION.search(item.group(1)):
            m = _LENGTH.search(item.group(1))
            if m:
                length = int(m.group(1))
    if length is None:
        m = _MICRO_OFFSET.search(xmp)
        if m:
            length = int(m.group(1))
    if length is None or not 0 < length < file_size:
        return None
    return MotionPhoto(offset=file_size - length, length=length, found_by="xmp")


def find(path: Path, xmp: bytes | None) -> MotionPhoto | None:
    """The Motion Photo video embedded in the JPEG at ``path``, or None. Raises UnreadableMedia if
    the JPEG has no end-of-image marker (a cut-off copy), found on the way for free."""
    size = path.stat().st_size
    if xmp:
        declared = from_xmp(xmp, size)
        if declared is not None and _is_ftyp_at(path, declared.offset):
            return declared
    with open(path, "rb") as f:
        # A plain JPEG ends with its end-of-image marker; only other files, and those whose XMP
        # says they hold a video, are searched.
        f.seek(max(0, size - 2))
        if f.read(2) == b"\xff\xd9" and not (xmp and _MOTION_FLAG.search(xmp)):
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
