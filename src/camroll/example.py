"""A small example camera roll of real photos, so a new user can try camroll before pointing it at
their own pictures.  Deterministic: the same files every time, so a second ``camroll up --example``
finds nothing new."""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image, ImageDraw

_CAMERAS = (("Apple", "iPhone 13"), ("Google", "Pixel 6"), ("Canon", "Canon EOS 80D"))
_EXIF_MAKE, _EXIF_MODEL, _EXIF_DATETIME_ORIGINAL, _EXIF_IFD = 0x010F, 0x0110, 0x9003, 0x8769


def _photo(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A landscape-like picture: sky gradient, a sun, hills; different for every seed."""
    w, h = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    top = (rng.randrange(40, 120), rng.randrange(90, 170), rng.randrange(170, 255))
    bottom = (rng.randrange(180, 255), rng.randrange(150, 220), rng.randrange(100, 200))
    for y in range(h):
        t = y / h
        draw.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    r = rng.randrange(h // 12, h // 6)
    cx, cy = rng.randrange(r, w - r), rng.randrange(r, h // 2)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(255, 236, 150))
    for layer in range(3):
        base = int(h * (0.55 + 0.12 * layer))
        colour = (rng.randrange(20, 90), rng.randrange(80, 160), rng.randrange(20, 80))
        points = [(0, h)]
        for x in range(0, w + 40, 40):
            points.append((x, base + int(rng.gauss(0, h * 0.03))))
        points.append((w, h))
        draw.polygon(points, fill=colour)
    return img


def make_example_roll(folder: Path, count: int = 24) -> list[Path]:
    """Write ``count`` JPEGs with EXIF capture time and camera, plus one PNG screenshot, into
    ``folder`` (DCIM-like layout).  Existing files are left as they are."""
    start = datetime(2024, 6, 1, 9, 30)
    written: list[Path] = []
    for i in range(count):
        # One generator per photo, so a photo that already exists need not be drawn again.
        rng = random.Random(20241124 + i)
        taken = start + timedelta(days=i * 3, minutes=rng.randrange(0, 600))
        make, model = _CAMERAS[i % len(_CAMERAS)]
        path = folder / "DCIM" / f"{taken:%Y}" / f"IMG_{taken:%Y%m%d_%H%M%S}.jpg"
        written.append(path)
        if path.exists():
            continue
        img = _photo(rng, (1600, 1200))
        path.parent.mkdir(parents=True, exist_ok=True)
        exif = Image.Exif()
        exif[_EXIF_MAKE] = make
        exif[_EXIF_MODEL] = model
        exif.get_ifd(_EXIF_IFD)[_EXIF_DATETIME_ORIGINAL] = taken.strftime("%Y:%m:%d %H:%M:%S")
        # Written aside and renamed, so an interrupted run never leaves a half photo that looks done.
        tmp = path.with_suffix(".tmp")
        img.save(tmp, "JPEG", quality=88, exif=exif)
        stamp = taken.timestamp()
        os.utime(tmp, (stamp, stamp))
        os.replace(tmp, path)
    shot = folder / "Screenshots" / "Screenshot_20240715-101500.png"
    if not shot.exists():
        shot.parent.mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", (540, 1170), (245, 245, 245))
        draw = ImageDraw.Draw(img)
        for row in range(12):
            draw.rounded_rectangle([30, 40 + row * 90, 510, 110 + row * 90], 12, fill=(220, 228, 240))
        tmp = shot.with_suffix(".tmp")
        img.save(tmp, "PNG")
        os.replace(tmp, shot)
    written.append(shot)
    return written
