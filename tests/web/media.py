"""Real fixture media for the browser tests: JPEGs with EXIF capture times and an MP4 made by ffmpeg."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image, ImageDraw

EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 0x9003
MAKE, MODEL = 0x010F, 0x0110


@dataclass(frozen=True)
class Fixture:
    path: Path
    taken: datetime
    kind: str


def _exif(taken: datetime) -> Image.Exif:
    exif = Image.Exif()
    exif[MAKE] = "Pixel"
    exif[MODEL] = "Pixel 8"
    exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = taken.strftime("%Y:%m:%d %H:%M:%S")
    return exif


def photo(path: Path, taken: datetime, colors: tuple[tuple[int, int, int], tuple[int, int, int]],
          size: tuple[int, int] = (960, 720)) -> Fixture:
    """A landscape-ish picture (sky, hills, sun) so screenshots look like a photo library."""
    w, h = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    top, bottom = colors
    for y in range(h):
        t = y / h
        draw.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    draw.ellipse([w * 0.62, h * 0.12, w * 0.78, h * 0.33], fill=(255, 236, 170))
    draw.polygon([(0, h), (0, h * 0.7), (w * 0.3, h * 0.5), (w * 0.6, h * 0.72), (w, h * 0.55), (w, h)],
                 fill=tuple(max(0, c - 70) for c in bottom))
    img.save(path, "JPEG", quality=88, exif=_exif(taken))
    os.utime(path, (taken.timestamp(), taken.timestamp()))
    return Fixture(path, taken, "image")


def noisy_photo(path: Path, taken: datetime, megabytes: float) -> Fixture:
    """A JPEG of random pixels: it does not compress, so its size is close to ``megabytes``."""
    side = int((megabytes * 1_000_000 / 2.4) ** 0.5)  # noise at quality 95 without subsampling: ~2.4 B/pixel
    img = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    img.save(path, "JPEG", quality=95, subsampling=0, exif=_exif(taken))
    return Fixture(path, taken, "image")


def video(path: Path, taken: datetime) -> Fixture:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=25",
         "-pix_fmt", "yuv420p", "-c:v", "libx264", "-movflags", "+faststart",
         "-metadata", f"creation_time={taken.strftime('%Y-%m-%dT%H:%M:%S')}Z", str(path)],
        check=True, capture_output=True, timeout=60)
    return Fixture(path, taken, "video")
