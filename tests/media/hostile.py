"""Hostile media made at test time: decompression bombs, truncated and malformed files, pathological
EXIF and XMP, polyglots, playlists posing as videos. Each maker returns the file's bytes; none takes
more than a fraction of a second (bombs are built from repeated deflate blocks, never by encoding
their pixels)."""

from __future__ import annotations

import io
import struct
import subprocess
import zlib
from pathlib import Path

from PIL import Image

# --- building blocks ---------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zeros_zlib(n: int) -> bytes:
    """A valid zlib stream of ``n`` zero bytes, made in milliseconds: after a full flush deflate's
    state is reset, so the compressed form of each 1 MiB of zeros is the same bytes."""
    mib = 1 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(mib)) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(bytes(mib)) + c.flush(zlib.Z_FULL_FLUSH)
    assert again == block
    whole, rest = divmod(n, mib)
    body = block * whole + c.compress(bytes(rest)) + c.flush()
    adler = ((n % 65521) << 16) | 1  # Adler-32 of n zero bytes
    return b"\x78\xda" + body + struct.pack(">I", adler)


def png_bomb(width: int, height: int, *, color_type: int = 6) -> bytes:
    """A real, complete PNG of ``width`` x ``height`` black pixels (RGBA by default), a few hundred KiB."""
    channels = {0: 1, 2: 3, 6: 4}[color_type]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    raw = (width * channels + 1) * height
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zeros_zlib(raw)) + _chunk(b"IEND", b"")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size and stops after a few bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(bytes(4096)))


def picture(size: tuple[int, int] = (320, 240)) -> Image.Image:
    return Image.effect_mandelbrot(size, (-2.0, -1.2, 1.0, 1.2), 30).convert("RGB")


def jpeg(size: tuple[int, int] = (320, 240), **kw: object) -> bytes:
    buf = io.BytesIO()
    picture(size).save(buf, "JPEG", quality=80, **kw)
    return buf.getvalue()


def png(size: tuple[int, int] = (320, 240)) -> bytes:
    buf = io.BytesIO()
    picture(size).save(buf, "PNG")
    return buf.getvalue()


def heic(size: tuple[int, int] = (128, 96), **kw: object) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    picture(size).save(buf, "HEIF", quality=40, **kw)
    return buf.getvalue()


def heic_declaring(width: int, height: int) -> bytes:
    """A small HEIC whose every image-size property ('ispe') claims ``width`` x ``height``."""
    data = bytearray(heic())
    pos = data.find(b"ispe")
    assert pos > 0
    while pos > 0:
        struct.pack_into(">II", data, pos + 8, width, height)
        pos = data.find(b"ispe", pos + 4)
    return bytes(data)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A JPEG whose frame header claims ``width`` x ``height`` over a tiny real scan."""
    data = bytearray(jpeg((64, 48)))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose logical screen and only frame claim ``width`` x ``height``, with a tiny LZW stream."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x4c\x01\x00"
    return header + frame + b"\x3b"


def webp_declaring(width: int, height: int) -> bytes:
    """A lossless WebP whose bitstream header claims ``width`` x ``height`` (at most 16384 each)."""
    buf = io.BytesIO()
    picture((64, 48)).save(buf, "WEBP", lossless=True)
    data = bytearray(buf.getvalue())
    pos = data.find(b"VP8L")
    assert pos > 0 and data[pos + 8] == 0x2F
    (old,) = struct.unpack_from("<I", data, pos + 9)
    struct.pack_into("<I", data, pos + 9, (width - 1) | (height - 1) << 14 | (old & 0xF0000000))
    return bytes(data)


def tiff_declaring(width: int, height: int) -> bytes:
    """A little-endian TIFF with one strip of a few bytes and a header claiming ``width`` x ``height``."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 16)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 8) + ifd + bytes(16)


def tiff_bomb(width: int, height: int) -> bytes:
    """A complete Deflate-compressed greyscale TIFF of ``width`` x ``height`` black pixels."""
    strip = zeros_zlib(width * height)
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, len(strip))]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 8) + ifd + strip


def _app1_exif(tiff: bytes) -> bytes:
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def jpeg_with_exif(tiff: bytes) -> bytes:
    """A real JPEG with ``tiff`` (raw TIFF-structured bytes) as its EXIF segment."""
    base = jpeg((160, 120))
    return base[:2] + _app1_exif(tiff) + base[2:]


def exif_ifd_loop() -> bytes:
    """IFD0 whose next-IFD offset points at itself, and whose Exif and GPS pointers point back at IFD0."""
    entries = [(0x010F, 2, 4, int.from_bytes(b"cam\0", "little")), (0x8769, 4, 1, 8), (0x8825, 4, 1, 8)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 8)
    return b"II*\x00" + struct.pack("<I", 8) + ifd


def exif_huge_counts() -> bytes:
    """IFD entries whose counts claim gigabytes of values past the end of the segment."""
    entries = [(0x010F, 2, 0xFFFFFFF0, 26), (0x0110, 2, 0x7FFFFFFF, 26), (0x9003, 2, 0xFFFFFFFF, 26),
               (0x8769, 4, 1, 0xFFFFFF00), (0x0112, 3, 0x40000000, 26)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"x" * 16


def exif_many_entries() -> bytes:
    """An IFD claiming 65535 entries in a 60 KiB segment."""
    body = struct.pack("<HHII", 0x010E, 2, 4, 0) * 5000
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0xFFFF) + body


def xmp_quadratic(n: int) -> bytes:
    """An XMP packet that made the old Motion Photo pattern quadratic: many openings, no closings."""
    head = b'<x:xmpmeta GCamera:MotionPhoto="1">'
    return (head + b"<Container:Item " * (n // 16 + 1))[:n]


def xmp_nested(n: int) -> bytes:
    depth = n // 8
    return b'<a GCamera:MotionPhoto="1">' + b"<b>" * depth + b"</b>" * depth + b"</a>"


def xmp_entity_bomb() -> bytes:
    """The billion laughs: ten levels of ten references each."""
    ents = b'<!ENTITY l0 "lol">' + b"".join(
        b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10) for i in range(1, 10))
    return (b'<?xml version="1.0"?><!DOCTYPE x [' + ents + b']>'
            b'<x:xmpmeta GCamera:MotionPhoto="1" Item:Length="&l9;">&l9;</x:xmpmeta>')


def jpeg_with_xmp(packet: bytes) -> bytes:
    """A real JPEG carrying ``packet`` in its XMP segment (at most ~64 KiB, JPEG's segment limit)."""
    return jpeg((160, 120), xmp=packet)


def heic_with_xmp(packet: bytes) -> bytes:
    return heic(xmp=packet)


def video(tmp: Path, name: str = "clip.mp4", seconds: float = 1.0, size: str = "160x120") -> bytes:
    out = tmp / name
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=10:duration={seconds}", "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out.read_bytes()


def hls_playlist(target: str) -> bytes:
    """An HLS playlist whose one segment is ``target`` (a loopback URL, a local file): ffmpeg's own
    format detection would follow it."""
    return (b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
            b"#EXTINF:10.0,\n" + target.encode() + b"\n#EXT-X-ENDLIST\n")


def mp4_with_playlist(target: str) -> bytes:
    """An 'MP4': a real ftyp box, then an HLS playlist where the movie should be."""
    ftyp = struct.pack(">I", 20) + b"ftypisom" + struct.pack(">I", 0x200) + b"isom"
    return ftyp + b"\n" + hls_playlist(target)


def concat_script(port: int) -> bytes:
    return (b"ffconcat version 1.0\nfile '/etc/passwd'\n" + f"file 'http://127.0.0.1:{port}/concat.mp4'\n".encode())


def mp4_with_concat(port: int) -> bytes:
    ftyp = struct.pack(">I", 20) + b"ftypmp42" + struct.pack(">I", 0) + b"mp42"
    return ftyp + concat_script(port)


def zip_bytes() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("payload.txt", "x" * 10000)
    return buf.getvalue()


def hostile_set(tmp: Path, port: int) -> dict[str, bytes]:
    """Every hostile file, by name (the name tells what it is)."""
    base_jpeg, base_png, base_heic = jpeg(), png(), heic()
    clip = video(tmp)
    files: dict[str, bytes] = {
        # decompression bombs: complete files whose pixels are tiny once compressed
        "bomb-png-12000x12000-rgba.png": png_bomb(12000, 12000),
        "bomb-png-20000x20000-rgba.png": png_bomb(20000, 20000),
        "bomb-png-header-60000x60000.png": png_header_only(60000, 60000),
        "bomb-tiff-16000x16000-deflate.tif": tiff_bomb(16000, 16000),
        "bomb-tiff-header-100000x100000.tif": tiff_declaring(100000, 100000),
        "bomb-jpeg-65000x65000.jpg": jpeg_declaring(65000, 65000),
        "bomb-jpeg-15000x15000.jpg": jpeg_declaring(15000, 15000),
        "bomb-gif-65535x65535.gif": gif_declaring(65535, 65535),
        "bomb-gif-12000x12000.gif": gif_declaring(12000, 12000),
        "bomb-webp-16384x16384.webp": webp_declaring(16384, 16384),
        "bomb-heic-40000x40000.heic": heic_declaring(40000, 40000),
        "bomb-heic-12000x12000.heic": heic_declaring(12000, 12000),
        # truncated
        "truncated-half.jpg": base_jpeg[: len(base_jpeg) // 2],
        "truncated-header.jpg": base_jpeg[:200],
        "truncated-half.png": base_png[: len(base_png) // 2],
        "truncated-half.heic": base_heic[: len(base_heic) // 2],
        "truncated-ftyp.heic": base_heic[:40],
        "truncated-half.mp4": clip[: len(clip) // 2],
        "truncated-head.mp4": clip[:64],
        # malformed
        "malformed-jpeg-garbage.jpg": b"\xff\xd8\xff\xe0" + bytes(range(256)) * 64,
        "malformed-png-bad-crc.png": base_png[:29] + b"\0\0\0\0" + base_png[33:],
        "malformed-heic-garbage.heic": base_heic[:32] + bytes(4096),
        "malformed-mp4-garbage.mp4": clip[:32] + bytes(range(256)) * 32,
        "malformed-mp4-moov-sizes.mp4": clip.replace(b"moov", b"moov\xff\xff\xff\xff", 1),
        # pathological EXIF
        "exif-ifd-loop.jpg": jpeg_with_exif(exif_ifd_loop()),
        "exif-huge-counts.jpg": jpeg_with_exif(exif_huge_counts()),
        "exif-65535-entries.jpg": jpeg_with_exif(exif_many_entries()),
        "exif-ifd-loop.tif": exif_ifd_loop() + bytes(64),
        # pathological XMP
        "xmp-64k-quadratic.jpg": jpeg_with_xmp(xmp_quadratic(64000)),
        "xmp-64k-nested.jpg": jpeg_with_xmp(xmp_nested(64000)[:64000]),
        "xmp-entity-bomb.jpg": jpeg_with_xmp(xmp_entity_bomb()),
        "xmp-192k-quadratic.heic": heic_with_xmp(xmp_quadratic(192 << 10)),
        "xmp-1m-quadratic.heic": heic_with_xmp(xmp_quadratic(1 << 20)),
        "xmp-1m-nested.heic": heic_with_xmp(xmp_nested(1 << 20)),
        "xmp-entity-bomb.heic": heic_with_xmp(xmp_entity_bomb()),
        # polyglots
        "polyglot-jpeg-zip.jpg": base_jpeg + zip_bytes(),
        "polyglot-png-html.png": base_png + b"<html><script>alert(1)</script></html>",
        "polyglot-jpeg-mp4-trailer.jpg": base_jpeg + b"MotionPhoto_Data" + clip[:200],
        # playlists posing as videos
        "hls-url-in-mp4.mp4": mp4_with_playlist(f"http://127.0.0.1:{port}/hls/seg0.ts"),
        "hls-passwd-in-mp4.mp4": mp4_with_playlist("file:///etc/passwd"),
        "concat-in-mp4.mp4": mp4_with_concat(port),
        "hls-url-bare.mp4": hls_playlist(f"http://127.0.0.1:{port}/hls/seg1.ts"),
        # nothing at all
        "zero-length.jpg": b"",
    }
    return files
