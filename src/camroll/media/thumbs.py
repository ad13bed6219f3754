"""Thumbnails: a grid size and a preview size of any supported photo or video, orientation applied.

Sizing rule: a thumbnail fits within a ``size`` x ``size`` box (its long edge is ``size``), keeps the
aspect ratio and is never larger than the source (no upscaling). One rule for every size keeps
thumbnails predictable for the web UI: ``GRID`` (250) is for grid cells and justified rows up to
about 250 px (a 4:3 landscape photo gives 250x188), ``PREVIEW`` (1440) fills a viewer on most screens.

Output: WebP at quality 80: a third smaller than JPEG at the same nominal quality (a 24 MP photo's
1440 px preview: 124 KB against 186 KB), and shown by every browser camroll's web UI supports. The
source's ICC profile is kept so wide-gamut phone photos keep their colours; transparency is kept.

Decoding is the cost, so it happens once at the smallest resolution that still covers the largest
size asked for: JPEGs (and RAW previews, which are JPEGs) are decoded with ``Image.draft`` at a DCT
scale of 1/2, 1/4 or 1/8; HEICs use their embedded thumbnail when it covers the box; videos are
scaled by ffmpeg while decoding the poster frame.
``make_thumbnails`` then resizes that one decode to each size, largest first, each from the last.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from PIL import Image, ImageOps

from camroll.media import limits, raw, tools, types
from camroll.media.errors import JXL_UNSUPPORTED, MediaError, UnreadableMedia
from camroll.media.metadata import DECODE_ERRORS, describe, pillow_reads

GRID = 250
PREVIEW = 1440
# Bumped whenever sizes, format or quality change: part of thumbnail file names and ETags, so old
# thumbnails are regenerated rather than served forever from long-lived caches.
VERSION = 1
QUALITY = 80
# libwebp's effort level: 2 encodes in half the time of the default 4 for about 3 % more bytes.
WEBP_METHOD = 2
MIME = "image/webp"
EXTENSION = ".webp"
# Where a video's poster frame comes from: 1 s in (past fade-ins and black first frames), or the
# first frame of a clip shorter than that.
POSTER_AT = 1.0

Source = Literal["image", "raw_preview", "video_frame"]
Out = Path | BinaryIO

_ORIENTATION_OPS: dict[int, list[Image.Transpose]] = {
    2: [Image.Transpose.FLIP_LEFT_RIGHT],
    3: [Image.Transpose.ROTATE_180],
    4: [Image.Transpose.FLIP_TOP_BOTTOM],
    5: [Image.Transpose.TRANSPOSE],
    6: [Image.Transpose.ROTATE_270],
    7: [Image.Transpose.TRANSVERSE],
    8: [Image.Transpose.ROTATE_90],
}


@dataclass(frozen=True)
class ThumbResult:
    size: int  # the box asked for
    width: int
    height: int
    bytes_written: int
    decoded_width: int  # what was decoded before resizing: smaller than the original when draft
    decoded_height: int  # mode or ffmpeg's scaling did their job
    source: Source
    mime: str = MIME


def fit(width: int, height: int, size: int) -> tuple[int, int]:
    """The size of a ``width`` x ``height`` image fitted within a ``size`` box, never enlarged."""
    if width <= size and height <= size:
        return width, height
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def make_thumbnail(path: Path, out: Out, *, size: int, mime: str | None = None) -> ThumbResult:
    """One thumbnail of ``path`` fitting a ``size`` box, written to ``out`` (a path, replaced
    atomically, or a binary stream). Raises ``MediaError`` (``ToolMissing`` or ``UnreadableMedia``)
    with a sentence for the asset's record; the source file is only read."""
    return make_thumbnails(path, [(size, out)], mime=mime)[0]


def make_thumbnails(path: Path, outs: Sequence[tuple[int, Out]], *, mime: str | None = None) -> list[ThumbResult]:
    """Several thumbnail sizes from one decode (e.g. ``[(PREVIEW, p), (GRID, g)]``): the source is
    decoded once for the largest size, each smaller one is resized from the previous. Results come
    back in the order asked."""
    if not outs:
        return []
    order = sorted(range(len(outs)), key=lambda i: -outs[i][0])
    try:
        image, source = _decode(path, mime, outs[order[0]][0])
        decoded = image.size
        icc = image.info.get("icc_profile")
        results: dict[int, ThumbResult] = {}
        for i in order:
            size, out = outs[i]
            image = _resize(image, fit(image.width, image.height, size))
            written = _save(image, out, icc if isinstance(icc, bytes) else None)
            results[i] = ThumbResult(size, image.width, image.height, written, decoded[0], decoded[1], source)
        return [results[i] for i in range(len(outs))]
    except MediaError:
        raise
    except DECODE_ERRORS as exc:
        raise UnreadableMedia(describe(exc)) from exc


def _resize(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Lanczos to ``target``, after a box reduction by the largest whole factor that stays above it:
    what JPEG's draft mode does for free, done here for decoders without one (HEIC, PNG, frames).
    Lanczos over a full 12 MP decode costs more than the box reduction and a Lanczos over the rest."""
    if target == image.size:
        return image
    factor = min(image.width // target[0], image.height // target[1])
    if factor >= 2:
        image = image.reduce(factor)
    return image.resize(target, Image.Resampling.LANCZOS)


def make_grid_and_preview(
    path: Path, grid_out: Out, preview_out: Out, *, mime: str | None = None
) -> tuple[ThumbResult, ThumbResult]:
    """Both standard sizes from one decode: (grid, preview)."""
    preview, grid = make_thumbnails(path, [(PREVIEW, preview_out), (GRID, grid_out)], mime=mime)
    return grid, preview


def _decode(path: Path, mime: str | None, box: int) -> tuple[Image.Image, Source]:
    with open(path, "rb") as f:
        head = f.read(types.SNIFF_BYTES)
    mt = next((t for t in types.SUPPORTED if t.mime == mime), None) if mime else None
    mt = mt or types.sniff(head)
    if not head:
        raise UnreadableMedia("The file is empty.")
    if mt is None:
        raise UnreadableMedia("This file is not a photo or video type camroll can make a thumbnail of.")
    if mt.kind == "video":
        return _video_frame(path, box), "video_frame"
    if mt in (types.CR3, types.RAF) or (mt is types.TIFF and raw.is_raw(head)):
        return _raw_preview(path, box), "raw_preview"
    if mt is types.TIFF:
        return _tiff(path, box)
    if mt is types.JXL and not pillow_reads(path):
        raise UnreadableMedia(JXL_UNSUPPORTED)
    with Image.open(path) as im:
        return _oriented(im, box), "image"


def _tiff(path: Path, box: int) -> tuple[Image.Image, Source]:
    """A TIFF is decoded as such unless it carries a larger JPEG than its first image, as DNG, NEF
    and ARW files do (their first image is a small thumbnail or undecodable sensor data)."""
    preview = raw.find_preview(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            if preview is None or preview.width * preview.height <= w * h:
                return _oriented(im, box), "image"
    except DECODE_ERRORS:
        if preview is None:
            raise
    return _raw_preview(path, box), "raw_preview"


def _oriented(im: Image.Image, box: int, orientation: int | None = None) -> Image.Image:
    """``im`` decoded (at a reduced DCT scale when it is a JPEG), EXIF orientation applied, in a
    mode WebP can store."""
    # Image.open read only the header: refuse here, before a pixel is decoded (Pillow's own check
    # at open time is the same limit; this one names the size).
    limits.check(*im.size)
    if im.format in ("JPEG", "HEIF"):
        # JPEG: decode at 1/2, 1/4 or 1/8 scale. HEIF (pillow-heif 1.x): decode the embedded
        # thumbnail phones store (e.g. 320 px on iPhones) when it covers the box.
        w, h = im.size
        im.draft("RGB", fit(w, h, box))
    im.seek(0)  # first frame of an animation
    im.load()
    if orientation is None:
        transposed = ImageOps.exif_transpose(im)
        out = transposed if transposed is not None else im
    else:
        out = im
        for op in _ORIENTATION_OPS.get(orientation, []):
            out = out.transpose(op)
    return _webp_mode(out)


def _webp_mode(im: Image.Image) -> Image.Image:
    if im.mode in ("RGB", "RGBA"):
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: keep the top 8 bits rather than clipping everything to white.
        im = im.point(lambda v: v / 256).convert("L")
    has_alpha = im.mode in ("LA", "PA", "La") or (im.mode == "P" and "transparency" in im.info)
    return im.convert("RGBA" if has_alpha else "RGB")


def _raw_preview(path: Path, box: int) -> Image.Image:
    preview = raw.find_preview(path)
    if preview is None:
        raise UnreadableMedia("This RAW file has no embedded JPEG preview camroll can show.")
    with Image.open(io.BytesIO(raw.read_preview(path, preview))) as im:
        own = im.getexif().get(0x0112)
        orientation = own if isinstance(own, int) and 2 <= own <= 8 else raw.orientation_of(path)
        return _oriented(im, box, orientation)


def _video_frame(path: Path, box: int) -> Image.Image:
    data = tools.frame(path, at=POSTER_AT, max_edge=box)
    if not data:
        data = tools.frame(path, at=None, max_edge=box)
    if not data:
        raise UnreadableMedia("This video has no frame ffmpeg can decode.")
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return _webp_mode(im)


def _save(image: Image.Image, out: Out, icc: bytes | None) -> int:
    params: dict[str, object] = {"quality": QUALITY, "method": WEBP_METHOD}
    if icc:
        params["icc_profile"] = icc
    if not isinstance(out, Path):
        start = out.tell() if out.seekable() else 0
        image.save(out, "WEBP", **params)
        return out.tell() - start if out.seekable() else -1
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".thumb-", suffix=EXTENSION, dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, "WEBP", **params)
            written = f.tell()
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return written
