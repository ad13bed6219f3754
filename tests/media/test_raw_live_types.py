"""RAW metadata, Live Photo pairing, and the supported-type table against real encoder output."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from camroll.media import thumbs, types
from camroll.media.errors import UnreadableMedia
from camroll.media.live import LivePair, pair_live_photos
from camroll.media.metadata import MediaInfo, extract

from . import files


@pytest.mark.parametrize("magic", [b"II*\x00", b"IIRO", b"IIU\x00"])
def test_tiff_raw_metadata(tmp_path: Path, magic: bytes) -> None:
    path = files.tiff_raw(tmp_path / "DSC_0001.NEF", files.jpeg_bytes((1600, 1200)), magic=magic, orientation=6)
    info = extract(path, mtime=0)
    assert info.error is None
    assert (info.mime, info.make, info.model, info.orientation) == ("image/tiff", "TestCam", "RAW-1", 6)
    assert (info.capture_time, info.capture_time_source) == (dt.datetime(2023, 2, 3, 4, 5, 6), "exif")
    # No Exif image size in this file: the preview's size, turned by the orientation.
    assert (info.width, info.height) == (1200, 1600)


def test_raf_metadata_comes_from_the_preview(tmp_path: Path) -> None:
    preview = files.jpeg_bytes((1200, 800), files.exif(orientation=1))
    info = extract(files.raf(tmp_path / "DSCF0001.RAF", preview))
    assert info.mime == "image/x-fuji-raf"
    assert (info.make, info.capture_time_source) == ("Apple", "exif")


def _info(kind: str, content_id: str | None) -> MediaInfo:
    return MediaInfo(kind=kind, live_photo_id=content_id)  # type: ignore[arg-type]


def test_live_photos_pair_by_content_identifier() -> None:
    items = [
        ("still-a", _info("image", "A")),
        ("video-b", _info("video", "B")),
        ("video-a", _info("video", "A")),
        ("still-b", _info("image", "B")),
        ("still-c", _info("image", "C")),  # its video was never backed up
        ("video-d", _info("video", "D")),  # its still was never backed up
        ("plain", _info("image", None)),
        ("edited-a", _info("image", "A")),  # an edited copy of the still keeps the identifier
    ]
    assert pair_live_photos(items) == [
        LivePair("A", "still-a", "video-a"),
        LivePair("A", "edited-a", "video-a"),
        LivePair("B", "still-b", "video-b"),
    ]


def test_live_pair_from_real_files(tmp_path: Path, ffmpeg: None) -> None:
    still = files.heic(tmp_path / "IMG_0001.HEIC", ex=files.exif(content_id="1F2E-3D4C"))
    clip = files.video(tmp_path / "IMG_0001.MOV", seconds=1,
                       metadata={"com.apple.quicktime.content.identifier": "1F2E-3D4C"})
    pairs = pair_live_photos([(1, extract(still)), (2, extract(clip))])
    assert pairs == [LivePair("1F2E-3D4C", 1, 2)]


# --- the supported-type table ------------------------------------------------------------------

def _sniff(path: Path) -> types.MediaType | None:
    with open(path, "rb") as f:
        return types.sniff(f.read(types.SNIFF_BYTES))


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("a.mp4", ["-c:v", "libx264", "-preset", "ultrafast"], types.MP4),
        ("a.m4v", ["-c:v", "libx264", "-preset", "ultrafast", "-f", "ipod"], types.MP4),
        ("a.3gp", ["-c:v", "mpeg4", "-s", "176x144"], types.MP4),
        ("a.mov", ["-c:v", "libx264", "-preset", "ultrafast"], types.MOV),
        ("a.mkv", ["-c:v", "libx264", "-preset", "ultrafast"], types.MKV),
        ("a.webm", ["-c:v", "libvpx", "-deadline", "realtime"], types.MKV),
        ("a.avi", ["-c:v", "mpeg4"], types.AVI),
        ("a.mts", ["-c:v", "mpeg2video", "-f", "mpegts"], types.MTS),
        ("a.m2ts", ["-c:v", "mpeg2video", "-f", "mpegts", "-mpegts_m2ts_mode", "1"], types.MTS),
        ("a.mpg", ["-c:v", "mpeg2video", "-f", "vob"], types.MPEG),
        ("a.wmv", ["-c:v", "wmv2"], types.WMV),
    ],
)
def test_every_video_container_in_the_table(tmp_path: Path, ffmpeg: None, name: str, args: list[str],
                                            expected: types.MediaType) -> None:
    path = files.container(tmp_path / name, args)
    assert _sniff(path) == expected
    assert types.by_extension(name) == expected


def test_raw_headers_in_the_table() -> None:
    cr2 = b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(500)
    assert types.sniff(cr2) == types.TIFF
    assert types.sniff(b"IIRO\x08\x00\x00\x00" + bytes(500)) == types.TIFF  # ORF
    assert types.sniff(b"IIU\x00\x08\x00\x00\x00" + bytes(500)) == types.TIFF  # RW2
    assert types.sniff(b"MM\x00*\x00\x00\x00\x08" + bytes(500)) == types.TIFF  # NEF/DNG big-endian
    assert types.sniff(b"FUJIFILMCCD-RAW 0201FF383501" + bytes(500)) == types.RAF
    for ext in (".dng", ".cr2", ".nef", ".arw", ".orf", ".rw2", ".tif", ".tiff"):
        assert types.by_extension("x" + ext) == types.TIFF
    assert types.by_extension("x.cr3") == types.CR3 and types.by_extension("x.raf") == types.RAF


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def _tiff(ex: Image.Exif) -> bytes:
    data = ex.tobytes()
    return data[6:] if data.startswith(b"Exif\x00\x00") else data


def test_cr3_metadata_and_preview(tmp_path: Path) -> None:
    """CR3 (ISO BMFF): IFD0 in a CMT1 box, the Exif IFD in CMT2, the preview JPEG in a PRVW box."""
    ifd0 = Image.Exif()
    ifd0[ExifTags.Base.Make] = "Canon"
    ifd0[ExifTags.Base.Model] = "Canon EOS R5"
    ifd0[ExifTags.Base.Orientation] = 8
    sub = Image.Exif()
    sub[ExifTags.Base.DateTimeOriginal] = "2022:07:08 09:10:11"
    sub[ExifTags.Base.OffsetTimeOriginal] = "-04:00"
    canon = _box(b"CMT1", _tiff(ifd0)) + _box(b"CMT2", _tiff(sub))
    moov = _box(b"moov", _box(b"uuid", bytes.fromhex("85c0b687820f11e08111f4ce462b6a48") + canon))
    prvw = _box(b"uuid", bytes.fromhex("eaf42b5e1c984b88b9fbb7dc406e4d16") + bytes(8)
                + _box(b"PRVW", bytes(6) + files.jpeg_bytes((1620, 1080))))
    path = tmp_path / "IMG_0001.CR3"
    path.write_bytes(_box(b"ftyp", b"crx \x00\x00\x00\x01crx isom") + moov + prvw + _box(b"mdat", bytes(4096)))
    info = extract(path)
    assert info.error is None
    assert (info.mime, info.make, info.model, info.orientation) == ("image/x-canon-cr3", "Canon", "Canon EOS R5", 8)
    assert info.capture_time == dt.datetime(2022, 7, 8, 9, 10, 11, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    assert (info.width, info.height) == (1080, 1620)
    res = thumbs.make_thumbnail(path, tmp_path / "t.webp", size=thumbs.GRID)
    assert (res.source, res.width, res.height) == ("raw_preview", 167, 250)


def test_jpeg_xl_says_it_cannot_be_decoded(tmp_path: Path) -> None:
    path = tmp_path / "a.jxl"
    path.write_bytes(b"\xff\x0a" + bytes(200))
    info = extract(path, mtime=0)
    assert info.mime == "image/jxl"
    assert info.error is not None and "JPEG XL" in info.error
    with pytest.raises(UnreadableMedia, match="JPEG XL"):
        thumbs.make_thumbnail(path, tmp_path / "t.webp", size=thumbs.GRID)
