"""How large an image camroll decodes: one pixel limit for every format, checked from the header
before any pixel is decoded.

200 megapixels: the largest photos cameras make fit (phones with 200 MP sensors save 16320 x 12240,
199.8 MP; medium-format backs 150 MP), while Pillow's own default (an error above 179 MP) refuses
those phones' photos. Above the limit an image keeps no details or thumbnail, with a sentence saying
why; below it, what a decode may cost is bounded by the job sandbox's memory limit (a 200 MP RGB
decode is 600 MB, inside the default 1 GiB), never by the server's memory.
"""

from __future__ import annotations

from PIL import Image

from camroll.media.errors import UnreadableMedia

MAX_PIXELS = 200_000_000

# Pillow raises DecompressionBombError above twice MAX_IMAGE_PIXELS (and only warns below): this
# makes its refusal, at open time for every plugin (pillow-heif's HEIF/AVIF opener included), fall
# exactly on camroll's limit.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2


def too_large(width: int, height: int) -> str:
    return (f"The image is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels), over the "
            f"{MAX_PIXELS // 1_000_000} megapixel limit camroll decodes; the original is kept.")


def check(width: int, height: int) -> None:
    """Refuse to decode an image of this size (from its header) when it is over the limit."""
    if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
        raise UnreadableMedia(too_large(width, height) if width > 0 and height > 0 else
                              f"The image declares an impossible size ({width} x {height}).")
