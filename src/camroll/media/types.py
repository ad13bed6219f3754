"""Media types camroll backs up, recognised from a file's first bytes rather than its name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# How many leading bytes ``sniff`` needs to recognise every type in the table.
SNIFF_BYTES = 512


@dataclass(frozen=True)
class MediaType:
    mime: str
    kind: Literal["image", "video"]
    extensions: tuple[str, ...]


JPEG = MediaType("image/jpeg", "image", (".jpg", ".jpeg", ".jpe"))
PNG = MediaType("image/png", "image", (".png",))
GIF = MediaType("image/gif", "image", (".gif",))
WEBP = MediaType("image/webp", "image", (".webp",))
HEIC = MediaType("image/heic", "image", (".heic", ".heif", ".hif"))
AVIF = MediaType("image/avif", "image", (".avif",))
JXL = MediaType("image/jxl", "image", (".jxl",))
TIFF = MediaType("image/tiff", "image", (".tif", ".tiff", ".dng", ".nef", ".cr2", ".arw", ".orf", ".rw2"))
CR3 = MediaType("image/x-canon-cr3", "image", (".cr3",))
RAF = MediaType("image/x-fuji-raf", "image", (".raf",))
MP4 = MediaType("video/mp4", "video", (".mp4", ".m4v", ".3gp", ".3g2"))
MOV = MediaType("video/quicktime", "video", (".mov", ".qt"))
MKV = MediaType("video/x-matroska", "video", (".mkv", ".webm"))
AVI = MediaType("video/x-msvideo", "video", (".avi",))
MTS = MediaType("video/mp2t", "video", (".mts", ".m2ts", ".ts"))
MPEG = MediaType("video/mpeg", "video", (".mpg", ".mpeg"))
WMV = MediaType("video/x-ms-wmv", "video", (".wmv", ".asf"))

SUPPORTED: tuple[MediaType, ...] = (
    JPEG, PNG, GIF, WEBP, HEIC, AVIF, JXL, TIFF, CR3, RAF, MP4, MOV, MKV, AVI, MTS, MPEG, WMV,
)

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


def _sniff_isobmff(head: bytes) -> MediaType | None:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    major = head[8:12]
    if major in _AVIF_BRANDS:
        return AVIF
    if major in _HEIF_BRANDS:
        return HEIC
    if major == b"crx ":
        return CR3
    if major == b"qt  ":
        return MOV
    return MP4


def sniff(head: bytes) -> MediaType | None:
    """The media type of a file whose first bytes are ``head`` (at least ``SNIFF_BYTES`` if the file
    is that long), or None if it is not a type camroll backs up."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return AVI
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return JXL
    if head[:4] in (b"II*\x00", b"MM\x00*", b"IIRO", b"IIU\x00"):
        return TIFF
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return RAF
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return MKV
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return WMV
    if head.startswith(b"\x00\x00\x01\xba") or head.startswith(b"\x00\x00\x01\xb3"):
        return MPEG
    # MPEG transport stream: 0x47 sync byte every 188 bytes, or 192-byte M2TS packets with a
    # 4-byte timestamp before each sync byte.
    for start, step in ((0, 188), (4, 192)):
        if len(head) > start + 2 * step and all(head[start + i * step] == 0x47 for i in range(3)):
            return MTS
    return _sniff_isobmff(head)


def by_extension(name: str) -> MediaType | None:
    """The media type a file name suggests; used only as a hint, never to accept a file."""
    dot = name.rfind(".")
    if dot < 0:
        return None
    ext = name[dot:].lower()
    for mt in SUPPORTED:
        if ext in mt.extensions:
            return mt
    return None
