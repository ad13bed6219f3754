"""Camera RAW files (DNG, CR2, CR3, NEF, ARW, ORF, RW2, RAF): their embedded JPEG preview and their
EXIF, read without a RAW decoder.

Every RAW format camroll supports carries a camera-rendered JPEG preview (usually full size or near
it). Rather than one parser per vendor layout, the file is scanned for JPEG start markers and each
candidate's header is parsed up to its frame header: the largest baseline or progressive JPEG wins
(lossless-JPEG raw data, SOF3, is not a preview and is skipped). EXIF comes from the TIFF structure
of TIFF-based RAWs, from CR3's CMT boxes, or from the preview's own EXIF (RAF).
"""

from __future__ import annotations

import io
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags, Image

from camroll.media import exif as exif_mod
from camroll.media import jpeg

_MAX_CANDIDATES = 256
# Where a RAW's metadata lives: TIFF IFDs and CR3 boxes sit in the first megabytes.
_HEAD_BYTES = 4 << 20
# ORF ("IIRO") and RW2 ("IIU\0") are TIFF with a vendor magic number.
_TIFF_MAGICS = {b"II*\x00": b"II*\x00", b"MM\x00*": b"MM\x00*", b"IIRO": b"II*\x00", b"IIU\x00": b"II*\x00"}


@dataclass(frozen=True)
class Preview:
    offset: int
    length: int
    width: int
    height: int


def is_raw(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a camera RAW rather than a plain TIFF (a guess from
    the header only; plain TIFFs that fail to decode are still tried as RAW by the callers)."""
    if head.startswith((b"IIRO", b"IIU\x00", b"FUJIFILMCCD-RAW")):
        return True
    if head[4:8] == b"ftyp" and head[8:12] == b"crx ":
        return True
    return head.startswith(b"II*\x00") and head[8:10] == b"CR"  # CR2


def find_preview(path: Path) -> Preview | None:
    """The largest decodable, complete JPEG embedded in ``path``, or None."""
    with open(path, "rb") as f:
        if path.stat().st_size < 4:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            best: Preview | None = None
            pos = data.find(b"\xff\xd8\xff", 1)
            seen = 0
            while pos >= 0 and seen < _MAX_CANDIDATES:
                seen += 1
                dims = jpeg.dimensions(data, pos)
                if dims is not None and (best is None or dims[0] * dims[1] > best.width * best.height):
                    stop = jpeg.end(data, pos)
                    if stop is not None:
                        best = Preview(pos, stop - pos, dims[0], dims[1])
                pos = data.find(b"\xff\xd8\xff", pos + 3)
            return best


def read_preview(path: Path, preview: Preview) -> bytes:
    """The preview's bytes."""
    with open(path, "rb") as f:
        f.seek(preview.offset)
        return f.read(preview.length)


def read_exif(path: Path, head: bytes) -> exif_mod.ExifFields | None:
    """EXIF fields of a RAW file, or None if none could be found."""
    with open(path, "rb") as f:
        data = f.read(_HEAD_BYTES)
    if data[4:8] == b"ftyp":
        return _cr3_exif(data)
    magic = _TIFF_MAGICS.get(data[:4])
    if magic is not None:
        exif = Image.Exif()
        exif.load(magic + data[4:])
        return exif_mod.read(exif)
    preview = find_preview(path)
    if preview is None:
        return None
    with Image.open(io.BytesIO(read_preview(path, preview))) as im:
        return exif_mod.read(im.getexif())


def _cr3_exif(data: bytes) -> exif_mod.ExifFields | None:
    tiffs: dict[bytes, dict[int, object]] = {}
    for name in (b"CMT1", b"CMT2", b"CMT4"):
        pos = data.find(name)
        if pos < 4:
            continue
        (box_size,) = struct.unpack_from(">I", data, pos - 4)
        blob = data[pos + 4:pos - 4 + box_size]
        exif = Image.Exif()
        try:
            exif.load(blob)
        except (SyntaxError, ValueError, struct.error):
            continue
        tiffs[name] = dict(exif)
    if b"CMT1" not in tiffs:
        return None
    return exif_mod.read_ifds(tiffs[b"CMT1"], tiffs.get(b"CMT2", {}), tiffs.get(b"CMT4", {}))


def orientation_of(path: Path) -> int:
    """The orientation a RAW file records for its image (1 if none)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
        if head[4:8] == b"ftyp":
            fields = _cr3_exif(head)
        elif head[:4] in _TIFF_MAGICS:
            exif = Image.Exif()
            exif.load(_TIFF_MAGICS[head[:4]] + head[4:])
            value = exif.get(ExifTags.Base.Orientation)
            return value if isinstance(value, int) and 1 <= value <= 8 else 1
        else:
            return 1
    except (OSError, SyntaxError, ValueError, struct.error):
        return 1
    return fields.orientation if fields is not None and fields.orientation else 1
