"""Real media files for camroll.media tests: JPEG/HEIC with EXIF, H.264 MP4/MOV via ffmpeg, a
Motion Photo, TIFF-based and Fuji RAW look-alikes carrying real JPEG previews."""

from __future__ import annotations

import datetime as dt
import io
import os
import struct
import subprocess
from pathlib import Path

import pillow_heif
from PIL import ExifTags, Image

pillow_heif.register_heif_opener()


def picture(size: tuple[int, int]) -> Image.Image:
    """A picture whose top-left quadrant is red, so orientation can be checked on the output."""
    w, h = size
    img = Image.new("RGB", size, (30, 60, 200))
    img.paste((220, 30, 30), (0, 0, w // 2, h // 2))
    return img


def exif(
    *,
    when: str | None = "2024:05:06 07:08:09",
    offset: str | None = "+02:00",
    subsec: str | None = "123",
    orientation: int = 1,
    gps: tuple[float, float, float] | None = None,
    gps_utc: str | None = None,
    content_id: str | None = None,
) -> Image.Exif:
    ex = Image.Exif()
    ex[ExifTags.Base.Make] = "Apple"
    ex[ExifTags.Base.Model] = "iPhone 15 Pro"
    ex[ExifTags.Base.Orientation] = orientation
    sub = ex.get_ifd(ExifTags.IFD.Exif)
    if when:
        sub[ExifTags.Base.DateTimeOriginal] = when
    if offset:
        sub[ExifTags.Base.OffsetTimeOriginal] = offset
    if subsec:
        sub[ExifTags.Base.SubsecTimeOriginal] = subsec
    sub[ExifTags.Base.LensModel] = "iPhone 15 Pro back camera 6.765mm f/1.78"
    if content_id:
        sub[ExifTags.Base.MakerNote] = apple_makernote(content_id)
    if gps:
        lat, lon, alt = gps
        g = ex.get_ifd(ExifTags.IFD.GPSInfo)
        g[ExifTags.GPS.GPSLatitudeRef] = "N" if lat >= 0 else "S"
        g[ExifTags.GPS.GPSLatitude] = _dms(lat)
        g[ExifTags.GPS.GPSLongitudeRef] = "E" if lon >= 0 else "W"
        g[ExifTags.GPS.GPSLongitude] = _dms(lon)
        g[ExifTags.GPS.GPSAltitudeRef] = b"\x01" if alt < 0 else b"\x00"
        g[ExifTags.GPS.GPSAltitude] = abs(alt)
        if gps_utc:  # "YYYY:MM:DD HH:MM:SS" of the GPS clock
            day, clock = gps_utc.split(" ")
            g[ExifTags.GPS.GPSDateStamp] = day
            g[ExifTags.GPS.GPSTimeStamp] = tuple(float(x) for x in clock.split(":"))
    return ex


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    return float(d), float(m), round(((value - d) * 60 - m) * 60, 4)


def apple_makernote(content_id: str) -> bytes:
    """Apple's maker note layout with one entry: tag 0x0011 (ASCII) = the content identifier."""
    text = content_id.encode() + b"\x00"
    ifd_start = 14
    data_offset = ifd_start + 2 + 12 + 4
    entry = struct.pack(">HHII", 0x0011, 2, len(text), data_offset)
    return b"Apple iOS\x00" + b"\x00\x01" + b"MM" + struct.pack(">H", 1) + entry + b"\x00" * 4 + text


def jpeg(path: Path, size: tuple[int, int] = (1200, 900), *, ex: Image.Exif | None = None,
         xmp: bytes | None = None) -> Path:
    kw: dict[str, object] = {"quality": 85}
    if ex is not None:
        kw["exif"] = ex.tobytes()
    if xmp is not None:
        kw["xmp"] = xmp
    path.parent.mkdir(parents=True, exist_ok=True)
    picture(size).save(path, "JPEG", **kw)
    return path


def heic(path: Path, size: tuple[int, int] = (640, 480), *, ex: Image.Exif | None = None,
         thumbnail: int | None = None) -> Path:
    kw: dict[str, object] = {"quality": 50}
    if thumbnail:
        kw["thumbnails"] = [thumbnail]
    if ex is not None:
        kw["exif"] = ex.tobytes()
    picture(size).save(path, "HEIF", **kw)
    return path


def video(path: Path, *, seconds: float = 2.0, size: str = "320x240", rate: int = 25,
          metadata: dict[str, str] | None = None) -> Path:
    """A real H.264 clip made by ffmpeg; ``metadata`` become container tags."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    for key, value in (metadata or {}).items():
        argv += ["-metadata", f"{key}={value}"]
    if metadata:
        argv += ["-movflags", "+use_metadata_tags"]
    argv.append(str(path))
    subprocess.run(argv, check=True)
    return path


def container(path: Path, fmt_args: list[str]) -> Path:
    """A one-second clip in another container/codec (for sniffing the video table)."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1", *fmt_args, str(path)]
    subprocess.run(argv, check=True)
    return path


def motion_photo_xmp(video_length: int) -> bytes:
    return (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
        b'xmlns:Container="http://ns.google.com/photos/1.0/container/" '
        b'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" '
        b'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1" GCamera:MotionPhotoPresentationTimestampUs="0">'
        b"<Container:Directory><rdf:Seq>"
        b'<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary" '
        b'Item:Length="0" Item:Padding="0"/></rdf:li>'
        b'<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4" Item:Semantic="MotionPhoto" '
        b'Item:Length="' + str(video_length).encode() + b'" Item:Padding="0"/></rdf:li>'
        b"</rdf:Seq></Container:Directory></rdf:Description></rdf:RDF></x:xmpmeta>"
    )


def tiff_raw(path: Path, preview: bytes, *, magic: bytes = b"II*\x00", orientation: int = 6,
             when: str = "2023:02:03 04:05:06") -> Path:
    """A TIFF-structured RAW look-alike (like DNG/NEF/ORF/RW2): IFD0 with Make, Model, Orientation and
    an Exif IFD, a small strip of undecodable 'sensor data', and a JPEG preview referenced by
    JPEGInterchangeFormat, as cameras lay them out."""
    make, model, stamp = b"TestCam\x00", b"RAW-1\x00", when.encode() + b"\x00"
    entries0 = 6
    ifd0 = 8
    exif_ifd = ifd0 + 2 + 12 * entries0 + 4
    data = exif_ifd + 2 + 12 + 4
    make_at, model_at = data, data + len(make)
    stamp_at = model_at + len(model)
    sensor_at = stamp_at + len(stamp)
    sensor = bytes(range(256)) * 64
    preview_at = sensor_at + len(sensor)
    out = bytearray(magic + struct.pack("<I", ifd0))
    out += struct.pack("<H", entries0)
    out += struct.pack("<HHII", 0x010F, 2, len(make), make_at)
    out += struct.pack("<HHII", 0x0110, 2, len(model), model_at)
    out += struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    out += struct.pack("<HHII", 0x0201, 4, 1, preview_at)
    out += struct.pack("<HHII", 0x0202, 4, 1, len(preview))
    out += struct.pack("<HHII", 0x8769, 4, 1, exif_ifd)
    out += struct.pack("<I", 0)
    out += struct.pack("<H", 1) + struct.pack("<HHII", 0x9003, 2, len(stamp), stamp_at) + struct.pack("<I", 0)
    out += make + model + stamp + sensor + preview
    path.write_bytes(bytes(out))
    return path


def raf(path: Path, preview: bytes) -> Path:
    """A Fuji RAF look-alike: the RAF header pointing at a JPEG preview (with its own EXIF)."""
    header = bytearray(b"FUJIFILMCCD-RAW 0201FF383501" + b"\x00" * 56)
    offset = 160
    header += struct.pack(">II", offset, len(preview))
    header += b"\x00" * (offset - len(header))
    path.write_bytes(bytes(header) + preview + b"\x00" * 4096)
    return path


def jpeg_bytes(size: tuple[int, int], ex: Image.Exif | None = None) -> bytes:
    buf = io.BytesIO()
    picture(size).save(buf, "JPEG", quality=85, **({"exif": ex.tobytes()} if ex is not None else {}))
    return buf.getvalue()


def set_mtime(path: Path, when: dt.datetime) -> float:
    ts = when.timestamp()
    os.utime(path, (ts, ts))
    return ts
