"""Small real media files for tests."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image


def jpeg_bytes(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    rng = random.Random(seed)
    img = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    for _ in range(20):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        img.putpixel((x, y), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png_bytes(seed: int, size: tuple[int, int] = (32, 32)) -> bytes:
    rng = random.Random(seed)
    img = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def mp4_bytes(size: int, seed: int = 0) -> bytes:
    """An MP4-looking file: a valid ``ftyp`` box followed by random bytes."""
    ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    rng = random.Random(seed)
    return ftyp + rng.randbytes(max(0, size - len(ftyp)))


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_mp4(path: Path, size: int, seed: int = 0) -> Path:
    """Write a large MP4-looking file without holding it all in memory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.write(ftyp)
        left = size - len(ftyp)
        while left > 0:
            n = min(left, 4 << 20)
            f.write(rng.randbytes(n))
            left -= n
    return path
