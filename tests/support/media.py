"""Small real media made at test time: seeded JPEGs and PNGs, MP4-looking files of any size, photos with
EXIF capture times and MP4s with a creation_time (ffmpeg), and waiting for the server's jobs on them.

Format-by-format makers for the media pipeline's own tests (HEIC, RAW, motion photos, hostile files)
stay beside those tests in tests/media/."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import httpx
from PIL import Image

from camroll import wire
from support.env import require
from support.wait import wait_until


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



def photo(taken: datetime | None, *, size: tuple[int, int] = (640, 480), color: tuple[int, int, int] = (200, 80, 40),
          make: str = "Canon", model: str = "EOS R5", offset: str | None = None) -> bytes:
    """A real JPEG; ``taken`` goes into EXIF DateTimeOriginal (wall clock), ``offset`` into OffsetTimeOriginal."""
    im = Image.new("RGB", size, color)
    # A gradient so each photo's bytes (and thumbnail) differ from a flat fill of another colour.
    for x in range(0, size[0], 8):
        im.paste((x % 256, color[1], color[2]), (x, 0, x + 4, size[1] // 2))
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    if taken is not None:
        sub = exif.get_ifd(0x8769)
        sub[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
        if offset:
            sub[0x9011] = offset
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85, exif=exif)
    return buf.getvalue()


def video(tmp: Path, created: str, name: str = "clip.mp4") -> bytes:
    """A one-second test-pattern MP4 whose container says it was created at ``created`` (ISO, UTC)."""
    ffmpeg = shutil.which("ffmpeg")
    require(ffmpeg is not None, "ffmpeg is not installed: apt-get install ffmpeg")
    assert ffmpeg is not None
    out = tmp / name
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=duration=1:size=320x240:rate=10", "-pix_fmt", "yuv420p",
                    "-metadata", f"creation_time={created}", str(out)], check=True, timeout=60)
    return out.read_bytes()


def wait_for_jobs(client: httpx.Client, ids: list[int], timeout: float = 60.0) -> dict[int, wire.AssetDetail]:
    """Poll until every asset has its thumbnail or a recorded job error; returns their details."""
    seen: dict[int, wire.AssetDetail] = {}

    def done() -> bool:
        seen.update({i: wire.AssetDetail.model_validate(client.get(f"/api/v1/assets/{i}").json()) for i in ids})
        return all(d.has_thumbnail or d.job_error for d in seen.values())

    wait_until(done, timeout, what="the media jobs finish", describe=lambda: seen)
    return seen
