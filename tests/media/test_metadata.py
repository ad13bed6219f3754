"""extract(): capture time and its source for every source, dimensions after orientation, GPS signs,
video properties, Live Photo identifiers, Motion Photos, and damaged files that never raise."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from camroll.media import types
from camroll.media.metadata import MediaInfo, extract

from . import files

CET = dt.timezone(dt.timedelta(hours=2))


def test_jpeg_exif_time_with_offset_and_subseconds(tmp_path: Path) -> None:
    path = files.jpeg(tmp_path / "IMG_0001.JPG", ex=files.exif())
    info = extract(path, mtime=0)
    assert info.capture_time == dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=CET)
    assert info.capture_time_source == "exif"
    assert (info.mime, info.kind, info.width, info.height, info.orientation) == ("image/jpeg", "image", 1200, 900, 1)
    assert (info.make, info.model) == ("Apple", "iPhone 15 Pro")
    assert info.lens == "iPhone 15 Pro back camera 6.765mm f/1.78"
    assert info.error is None


def test_exif_without_offset_is_naive_wall_time(tmp_path: Path) -> None:
    path = files.jpeg(tmp_path / "a.jpg", ex=files.exif(offset=None, subsec=None))
    info = extract(path)
    assert info.capture_time == dt.datetime(2024, 5, 6, 7, 8, 9)
    assert info.capture_time.tzinfo is None


@pytest.mark.parametrize(
    ("gps_utc", "offset_minutes"),
    [("2024:05:06 05:07:30", 120), ("2024:05:06 12:38:09", -330), ("2024:05:05 21:08:09", 600)],
)
def test_offset_from_the_gps_clock_when_exif_has_none(tmp_path: Path, gps_utc: str, offset_minutes: int) -> None:
    ex = files.exif(offset=None, subsec=None, gps=(10.0, 20.0, 0.0), gps_utc=gps_utc)
    info = extract(files.jpeg(tmp_path / "a.jpg", ex=ex))
    assert info.capture_time is not None
    assert info.capture_time.replace(tzinfo=None) == dt.datetime(2024, 5, 6, 7, 8, 9)
    assert info.capture_time.utcoffset() == dt.timedelta(minutes=offset_minutes)


def test_exif_beats_filename_and_mtime(tmp_path: Path) -> None:
    path = files.jpeg(tmp_path / "IMG_20000101_000000.jpg", ex=files.exif())
    assert extract(path, mtime=1e9).capture_time_source == "exif"


def test_rotated_jpeg_reports_displayed_size(tmp_path: Path) -> None:
    path = files.jpeg(tmp_path / "a.jpg", (1200, 900), ex=files.exif(orientation=6))
    info = extract(path)
    assert (info.width, info.height, info.orientation) == (900, 1200, 6)


@pytest.mark.parametrize(
    ("gps", "expected"),
    [((48.8584, 2.2945, 35.0), (48.8584, 2.2945, 35.0)),
     ((-33.8568, 151.2153, 5.0), (-33.8568, 151.2153, 5.0)),
     ((40.758, -73.9855, -12.5), (40.758, -73.9855, -12.5))],
)
def test_gps_signs_from_refs(tmp_path: Path, gps: tuple[float, float, float],
                             expected: tuple[float, float, float]) -> None:
    info = extract(files.jpeg(tmp_path / "a.jpg", ex=files.exif(gps=gps)))
    assert info.latitude == pytest.approx(expected[0], abs=1e-4)
    assert info.longitude == pytest.approx(expected[1], abs=1e-4)
    assert info.altitude == pytest.approx(expected[2])


def test_heic_exif_and_orientation(tmp_path: Path) -> None:
    path = files.heic(tmp_path / "IMG_0002.HEIC", (640, 480), ex=files.exif(orientation=6, content_id="ABC-123"))
    info = extract(path)
    assert info.mime == "image/heic"
    assert info.capture_time == dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=CET)
    assert (info.width, info.height, info.orientation) == (480, 640, 6)
    assert info.live_photo_id == "ABC-123"


def test_filename_time_when_no_exif(tmp_path: Path) -> None:
    path = files.jpeg(tmp_path / "IMG_20240101_123456.jpg")
    info = extract(path, mtime=1e9)
    assert (info.capture_time, info.capture_time_source) == (dt.datetime(2024, 1, 1, 12, 34, 56), "filename")


def test_mtime_is_the_last_resort(tmp_path: Path) -> None:
    path = files.jpeg(tmp_path / "IMG_0003.jpg")
    info = extract(path, mtime=1_700_000_000.5)
    assert info.capture_time == dt.datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=dt.UTC)
    assert info.capture_time_source == "mtime"
    assert extract(path).capture_time is None


def test_png_has_size_but_no_camera(tmp_path: Path) -> None:
    path = tmp_path / "Screenshot_2024-01-01-12-34-56.png"
    files.picture((1080, 2400)).save(path, "PNG")
    info = extract(path)
    assert (info.mime, info.width, info.height, info.make, info.capture_time_source) == (
        "image/png", 1080, 2400, None, "filename")


def test_json_round_trip(tmp_path: Path) -> None:
    info = extract(files.jpeg(tmp_path / "a.jpg", ex=files.exif(gps=(1.5, -2.5, 3.0))))
    again = MediaInfo.model_validate_json(info.model_dump_json())
    assert again == info
    assert again.capture_time is not None and again.capture_time.utcoffset() == dt.timedelta(hours=2)


def test_mime_hint_skips_sniffing(tmp_path: Path) -> None:
    path = files.jpeg(tmp_path / "a.jpg", ex=files.exif())
    assert extract(path, mime=types.JPEG.mime).capture_time_source == "exif"


# --- video -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("ffmpeg")
def test_mp4_creation_time_duration_fps(tmp_path: Path) -> None:
    path = files.video(tmp_path / "clip.mp4", seconds=2, size="320x240", rate=25,
                       metadata={"creation_time": "2021-03-04T05:06:07.000000Z", "location": "+48.8584+002.2945/"})
    info = extract(path, mtime=0)
    assert info.capture_time == dt.datetime(2021, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    assert info.capture_time_source == "quicktime"
    assert (info.mime, info.kind, info.width, info.height) == ("video/mp4", "video", 320, 240)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert info.frame_rate == pytest.approx(25.0)
    assert info.video_codec == "h264"
    assert (info.latitude, info.longitude) == (pytest.approx(48.8584), pytest.approx(2.2945))
    assert info.error is None


@pytest.mark.usefixtures("ffmpeg")
def test_mov_live_photo_identifier(tmp_path: Path) -> None:
    path = files.video(tmp_path / "IMG_0002.MOV", seconds=1, metadata={
        "com.apple.quicktime.content.identifier": "ABC-123",
        "com.apple.quicktime.make": "Apple",
        "com.apple.quicktime.model": "iPhone 15 Pro",
        "com.apple.quicktime.creationdate": "2024-05-06T07:08:09+0200",
    })
    info = extract(path)
    assert info.mime == "video/quicktime"
    assert info.live_photo_id == "ABC-123"
    assert (info.make, info.model) == ("Apple", "iPhone 15 Pro")
    assert info.capture_time == dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=CET)
    assert info.capture_time_source == "quicktime"


@pytest.mark.usefixtures("ffmpeg")
def test_video_without_creation_time_falls_back_to_filename(tmp_path: Path) -> None:
    path = files.video(tmp_path / "VID_20200102_030405.mp4", seconds=1)
    info = extract(path, mtime=0)
    assert (info.capture_time, info.capture_time_source) == (dt.datetime(2020, 1, 2, 3, 4, 5), "filename")


def test_missing_ffprobe_is_a_reason_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "VID_20200102_030405.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(100))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    info = extract(path)
    assert info.error is not None and info.error.startswith("ffprobe not found: install ffmpeg")
    assert info.capture_time_source == "filename"
    assert info.kind == "video"


# --- Motion Photos -----------------------------------------------------------------------------


@pytest.mark.usefixtures("ffmpeg")
def test_motion_photo_declared_in_xmp(tmp_path: Path) -> None:
    clip = files.video(tmp_path / "clip.mp4", seconds=1).read_bytes()
    path = files.jpeg(tmp_path / "PXL_20240101_123456789.MP.jpg", xmp=files.motion_photo_xmp(len(clip)))
    jpeg_size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(clip)
    info = extract(path)
    assert info.motion_photo is not None
    assert (info.motion_photo.offset, info.motion_photo.length, info.motion_photo.found_by) == (
        jpeg_size, len(clip), "xmp")
    assert path.read_bytes()[info.motion_photo.offset:] == clip
    assert info.error is None


@pytest.mark.usefixtures("ffmpeg")
def test_motion_photo_found_after_end_of_image(tmp_path: Path) -> None:
    clip = files.video(tmp_path / "clip.mp4", seconds=1).read_bytes()
    # Samsung writes a marker between the image and the MP4.
    path = files.jpeg(tmp_path / "20240101_123456.jpg", ex=files.exif())
    jpeg_size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"MotionPhoto_Data" + clip)
    info = extract(path)
    assert info.motion_photo is not None
    assert (info.motion_photo.offset, info.motion_photo.found_by) == (jpeg_size + 16, "trailer")


def test_plain_jpeg_is_not_a_motion_photo(tmp_path: Path) -> None:
    path = files.jpeg(tmp_path / "a.jpg", ex=files.exif())
    with open(path, "ab") as f:
        f.write(bytes(64))  # padding some cameras leave after the image
    assert extract(path).motion_photo is None


# --- damaged files -----------------------------------------------------------------------------


def test_truncated_jpeg_keeps_what_was_read(tmp_path: Path) -> None:
    whole = files.jpeg(tmp_path / "whole.jpg", ex=files.exif()).read_bytes()
    path = tmp_path / "IMG_20240101_123456.jpg"
    path.write_bytes(whole[: len(whole) // 2])
    info = extract(path)
    assert info.error == "The JPEG stops before the end of its image data: the file is truncated."
    # Headers survive a cut in the image data: what they say is still there.
    assert (info.capture_time_source, info.make, info.width) == ("exif", "Apple", 1200)


@pytest.mark.parametrize(
    "data",
    [b"\xff\xd8\xff\xe0" + bytes(40), b"\xff\xd8\xff" + b"garbage" * 50, b"\x89PNG\r\n\x1a\n" + bytes(30),
     b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00heicmif1" + bytes(64), b"II*\x00" + bytes(20), b""],
)
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow says so too; the test checks camroll's sentence
def test_corrupt_files_give_an_error_sentence(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "IMG_20240101_123456.bin"
    path.write_bytes(data)
    info = extract(path, mtime=0)
    assert info.error is not None and info.error.endswith(".")
    assert "\n" not in info.error
    # The fallbacks still give the file a place on the timeline.
    assert info.capture_time_source == "filename"


@pytest.mark.usefixtures("ffmpeg")
def test_corrupt_video_gives_an_error_sentence(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(1000))
    info = extract(path, mtime=5)
    assert info.error is not None and info.error.startswith("ffprobe could not read this video")
    assert str(tmp_path) not in info.error  # a server's blob path is nobody's business
    assert info.capture_time_source == "mtime"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.touch()
    assert extract(path).error == "The file is empty."


def test_missing_file(tmp_path: Path) -> None:
    info = extract(tmp_path / "gone.jpg")
    assert info.error == "The file does not exist (any more)."
