"""Type sniffing from bytes: real encoder output must be recognised, look-alikes must not."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from camroll.media import types


def _encoded(fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 120, 40)).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("JPEG", types.JPEG), ("PNG", types.PNG), ("GIF", types.GIF), ("WEBP", types.WEBP), ("TIFF", types.TIFF)],
)
def test_real_images_are_recognised(fmt: str, expected: types.MediaType) -> None:
    assert types.sniff(_encoded(fmt)[: types.SNIFF_BYTES]) == expected


@pytest.mark.parametrize(
    ("brand", "expected"),
    [(b"isom", types.MP4), (b"mp42", types.MP4), (b"qt  ", types.MOV), (b"heic", types.HEIC),
     (b"mif1", types.HEIC), (b"avif", types.AVIF), (b"crx ", types.CR3)],
)
def test_isobmff_brands(brand: bytes, expected: types.MediaType) -> None:
    head = b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x02\x00" + brand
    assert types.sniff(head) == expected


def test_transport_stream_needs_repeated_sync_bytes() -> None:
    packet = b"\x47" + bytes(187)
    assert types.sniff(packet * 3) == types.MTS
    # A text file that merely starts with 'G' is not a video.
    assert types.sniff(b"GIT objects are not photos" + bytes(500)) is None


@pytest.mark.parametrize("head", [b"", b"hello world", b"%PDF-1.7\n", b"PK\x03\x04zipfile", bytes(64)])
def test_non_media_is_refused(head: bytes) -> None:
    assert types.sniff(head) is None


def test_extension_is_only_a_hint() -> None:
    assert types.by_extension("IMG_0001.JPG") == types.JPEG
    assert types.by_extension("clip.MOV") == types.MOV
    assert types.by_extension("notes.txt") is None
    assert types.by_extension("README") is None
