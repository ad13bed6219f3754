"""Real photos and videos made at test time: JPEGs with EXIF capture times, MP4s with creation_time."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import httpx
from PIL import Image

from camroll import wire


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
    from conftest import require

    ffmpeg = shutil.which("ffmpeg")
    require(ffmpeg is not None, "ffmpeg is not installed: apt-get install ffmpeg")
    assert ffmpeg is not None
    out = tmp / name
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=duration=1:size=320x240:rate=10", "-pix_fmt", "yuv420p",
                    "-metadata", f"creation_time={created}", str(out)], check=True, timeout=60)
    return out.read_bytes()


def wait_for_jobs(client: httpx.Client, ids: list[int], timeout: float = 60.0) -> dict[int, wire.AssetDetail]:
    """Poll until every asset has its thumbnail or a recorded job error."""
    deadline = time.monotonic() + timeout
    while True:
        details = {i: wire.AssetDetail.model_validate(client.get(f"/api/v1/assets/{i}").json()) for i in ids}
        if all(d.has_thumbnail or d.job_error for d in details.values()):
            return details
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs did not finish in {timeout} s: {details}")
        time.sleep(0.1)
