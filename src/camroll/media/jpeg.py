"""Walking a JPEG's marker segments in place (in a file's bytes or a memory map): where its image
ends and how large it is, without decoding it."""

from __future__ import annotations

import mmap
import struct

Buffer = mmap.mmap | bytes

# Frame headers a preview may have: baseline, extended sequential, progressive (Huffman).
DECODABLE_SOF = {0xC0, 0xC1, 0xC2}
_ANY_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def end(data: Buffer, start: int = 0) -> int | None:
    """The offset just past the end-of-image marker of the JPEG at ``start``: walk the segments to
    the first start-of-scan (skipping an EXIF thumbnail, which lives inside APP1), then find FFD9 in
    the entropy-coded data, where 0xFF bytes are always stuffed or restart markers. None if the
    bytes are not a JPEG or it has no end (a truncated file)."""
    if data[start:start + 2] != b"\xff\xd8":
        return None
    pos = start + 2
    size = len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker == 0xDA:
            eoi = data.find(b"\xff\xd9", pos + 2 + length)
            return None if eoi < 0 else eoi + 2
        pos += 2 + length
    return None


def dimensions(data: Buffer, start: int) -> tuple[int, int] | None:
    """(width, height) of a baseline/progressive JPEG starting at ``start``, or None if the bytes
    there are not a well-formed JPEG header one can decode (lossless JPEG, as RAW sensor data is
    stored, is refused; so are the many chance FFD8FF sequences in RAW data)."""
    pos = start + 2
    size = len(data)
    for _ in range(64):
        if pos + 4 > size or data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            return None
        if marker in _ANY_SOF:
            if marker not in DECODABLE_SOF or pos + 9 > size:
                return None
            height, width = struct.unpack_from(">HH", data, pos + 5)
            components = data[pos + 9] if pos + 9 < size else 0
            if width < 16 or height < 16 or components not in (1, 3):
                return None
            return width, height
        if marker == 0xDA or not (0xC0 <= marker <= 0xFE):
            return None
        pos += 2 + length
    return None
