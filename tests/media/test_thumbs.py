"""Thumbnails: sizes, orientation, draft decoding, one decode for two sizes, every kind of source,
and damaged files failing with a sentence."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from camroll.media import thumbs
from camroll.media.errors import ToolMissing, UnreadableMedia
from camroll.media.metadata import extract

from . import files


def _open(path: Path) -> Image.Image:
    im = Image.open(path)
    im.load()
    return im


def test_fit_never_upscales() -> None:
    assert thumbs.fit(4032, 3024, 250) == (250, 188)
    assert thumbs.fit(3024, 4032, 1440) == (1080, 1440)
    assert thumbs.fit(200, 100, 250) == (200, 100)
    assert thumbs.fit(10000, 10, 250) == (250, 1)


def test_jpeg_is_decoded_with_draft_at_the_target_scale(tmp_path: Path) -> None:
    src = files.jpeg(tmp_path / "big.jpg", (4000, 3000))
    out = tmp_path / "grid.webp"
    res = thumbs.make_thumbnail(src, out, size=thumbs.GRID, mime="image/jpeg")
    # The DCT decoded at 1/8 scale: 500x375, not 4000x3000.
    assert (res.decoded_width, res.decoded_height) == (500, 375)
    assert (res.width, res.height) == (250, 188)
    with _open(out) as im:
        assert (im.format, im.size) == ("WEBP", (250, 188))
    assert res.bytes_written == out.stat().st_size
    assert res.mime == "image/webp" and res.source == "image"


def test_orientation_6_gives_a_portrait_thumbnail(tmp_path: Path) -> None:
    src = files.jpeg(tmp_path / "rotated.jpg", (1600, 1200), ex=files.exif(orientation=6))
    out = tmp_path / "t.webp"
    res = thumbs.make_thumbnail(src, out, size=thumbs.GRID)
    assert (res.width, res.height) == (188, 250)
    with _open(out) as im:
        rgb = im.convert("RGB")
        # Stored top-left red quadrant is, after a 90 degree clockwise turn, the top-right one.
        assert rgb.getpixel((im.width - 10, 10))[0] > 150
        assert rgb.getpixel((10, 10))[2] > 150


def test_both_sizes_from_one_decode(tmp_path: Path) -> None:
    src = files.jpeg(tmp_path / "big.jpg", (4000, 3000))
    grid, preview = thumbs.make_grid_and_preview(src, tmp_path / "g.webp", tmp_path / "p.webp")
    assert (preview.width, preview.height) == (1440, 1080)
    assert (grid.width, grid.height) == (250, 188)
    # One decode, at 1/2 scale (the largest that still covers 1440 px), shared by both.
    assert (preview.decoded_width, preview.decoded_height) == (2000, 1500)
    assert (grid.decoded_width, grid.decoded_height) == (2000, 1500)
    with _open(tmp_path / "g.webp") as g, _open(tmp_path / "p.webp") as p:
        assert (g.size, p.size) == ((250, 188), (1440, 1080))


def test_results_come_back_in_the_order_asked(tmp_path: Path) -> None:
    src = files.jpeg(tmp_path / "a.jpg", (2000, 1000))
    small, large = thumbs.make_thumbnails(src, [(100, io.BytesIO()), (800, io.BytesIO())])
    assert (small.size, small.width, large.size, large.width) == (100, 100, 800, 800)


def test_small_images_are_not_upscaled(tmp_path: Path) -> None:
    src = files.jpeg(tmp_path / "small.jpg", (120, 80))
    buf = io.BytesIO()
    res = thumbs.make_thumbnail(src, buf, size=thumbs.PREVIEW)
    assert (res.width, res.height) == (120, 80)
    assert Image.open(io.BytesIO(buf.getvalue())).size == (120, 80)


def test_heic(tmp_path: Path) -> None:
    src = files.heic(tmp_path / "a.heic", (800, 600), ex=files.exif(orientation=6))
    res = thumbs.make_thumbnail(src, tmp_path / "t.webp", size=thumbs.GRID, mime="image/heic")
    assert (res.width, res.height) == (188, 250)


def test_heic_grid_from_its_embedded_thumbnail(tmp_path: Path) -> None:
    src = files.heic(tmp_path / "a.heic", (2000, 1500), ex=files.exif(orientation=6), thumbnail=320)
    grid = thumbs.make_thumbnail(src, tmp_path / "g.webp", size=thumbs.GRID)
    # The 320 px thumbnail iPhones store covers 250 px: the 3 MP image is not decoded.
    assert (grid.decoded_width, grid.decoded_height) == (240, 320)
    assert (grid.width, grid.height) == (188, 250)
    preview = thumbs.make_thumbnail(src, tmp_path / "p.webp", size=thumbs.PREVIEW)
    assert (preview.decoded_width, preview.decoded_height) == (1500, 2000)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "GIF"])
def test_other_image_formats(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / f"a.{fmt.lower()}"
    files.picture((600, 400)).save(src, fmt)
    res = thumbs.make_thumbnail(src, tmp_path / "t.webp", size=thumbs.GRID)
    assert (res.width, res.height) == (250, 167)


def test_transparency_is_kept(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    Image.new("RGBA", (400, 400), (255, 0, 0, 0)).save(src)
    out = tmp_path / "t.webp"
    thumbs.make_thumbnail(src, out, size=thumbs.GRID)
    with _open(out) as im:
        assert im.mode == "RGBA" and im.getpixel((5, 5))[3] == 0


def test_animated_gif_uses_the_first_frame(tmp_path: Path) -> None:
    src = tmp_path / "a.gif"
    frames = [Image.new("RGB", (300, 300), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = tmp_path / "t.webp"
    thumbs.make_thumbnail(src, out, size=thumbs.GRID)
    with _open(out) as im:
        r, _g, b = im.convert("RGB").getpixel((150, 150))
        assert r > 200 and b < 50


def test_tiff_raw_uses_its_embedded_preview_and_orientation(tmp_path: Path) -> None:
    src = files.tiff_raw(tmp_path / "a.nef", files.jpeg_bytes((1600, 1200)), orientation=6)
    res = thumbs.make_thumbnail(src, tmp_path / "t.webp", size=thumbs.GRID)
    assert res.source == "raw_preview"
    assert (res.width, res.height) == (188, 250)
    assert res.decoded_width < 1600  # the preview, too, is decoded with draft


@pytest.mark.parametrize("magic", [b"IIRO", b"IIU\x00"])
def test_orf_and_rw2_previews(tmp_path: Path, magic: bytes) -> None:
    src = files.tiff_raw(tmp_path / "a.raw", files.jpeg_bytes((800, 600)), magic=magic, orientation=1)
    res = thumbs.make_thumbnail(src, tmp_path / "t.webp", size=thumbs.GRID)
    assert (res.source, res.width, res.height) == ("raw_preview", 250, 188)


def test_raf_preview(tmp_path: Path) -> None:
    src = files.raf(tmp_path / "a.raf", files.jpeg_bytes((1200, 800), files.exif(orientation=8)))
    res = thumbs.make_thumbnail(src, tmp_path / "t.webp", size=thumbs.GRID)
    assert (res.source, res.width, res.height) == ("raw_preview", 167, 250)


@pytest.mark.usefixtures("ffmpeg")
def test_video_poster(tmp_path: Path) -> None:
    src = files.video(tmp_path / "clip.mp4", seconds=2, size="640x360")
    grid, preview = thumbs.make_grid_and_preview(src, tmp_path / "g.webp", tmp_path / "p.webp")
    assert grid.source == "video_frame"
    assert (preview.width, preview.height) == (640, 360)  # never upscaled to 1440
    assert (grid.width, grid.height) == (250, 141)
    with _open(tmp_path / "g.webp") as im:
        assert im.size == (250, 141)


@pytest.mark.usefixtures("ffmpeg")
def test_short_video_falls_back_to_the_first_frame(tmp_path: Path) -> None:
    src = files.video(tmp_path / "short.mp4", seconds=0.4, size="320x240")
    res = thumbs.make_thumbnail(src, tmp_path / "t.webp", size=thumbs.GRID)
    assert (res.width, res.height) == (250, 188)


@pytest.mark.usefixtures("ffmpeg")
def test_corrupt_video_raises_a_sentence(tmp_path: Path) -> None:
    src = tmp_path / "bad.mp4"
    src.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(2000))
    with pytest.raises(UnreadableMedia, match=r"^ffmpeg could not decode a frame of this video"):
        thumbs.make_thumbnail(src, tmp_path / "t.webp", size=thumbs.GRID)
    assert not (tmp_path / "t.webp").exists()


def test_missing_ffmpeg_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(100))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolMissing, match=r"^ffmpeg not found: install ffmpeg"):
        thumbs.make_thumbnail(src, tmp_path / "t.webp", size=thumbs.GRID)


def test_truncated_jpeg_raises_and_leaves_no_file(tmp_path: Path) -> None:
    whole = files.jpeg(tmp_path / "whole.jpg", (800, 600)).read_bytes()
    src = tmp_path / "cut.jpg"
    src.write_bytes(whole[: len(whole) // 3])
    out = tmp_path / "thumbs" / "t.webp"
    out.parent.mkdir()
    with pytest.raises(UnreadableMedia) as err:
        thumbs.make_thumbnail(src, out, size=thumbs.GRID)
    assert str(err.value) == "The image data stops early: the file is truncated."
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir()] == []  # no temporary file left behind


def test_truncated_heic_raises_unreadable(tmp_path: Path) -> None:
    whole = files.heic(tmp_path / "whole.heic", (800, 600)).read_bytes()
    src = tmp_path / "cut.heic"
    src.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UnreadableMedia, match=r"^The file is damaged or truncated"):
        thumbs.make_thumbnail(src, io.BytesIO(), size=thumbs.GRID)
    # Metadata reads headers only, which survive the cut: the thumbnail job is what finds it broken.
    assert extract(src).mime == "image/heic"


@pytest.mark.parametrize("data", [b"", b"hello", b"\xff\xd8\xff\xe0" + bytes(50), b"II*\x00" + bytes(64)])
def test_garbage_raises_unreadable(tmp_path: Path, data: bytes) -> None:
    src = tmp_path / "x"
    src.write_bytes(data)
    with pytest.raises(UnreadableMedia):
        thumbs.make_thumbnail(src, io.BytesIO(), size=thumbs.GRID)


def test_source_is_not_modified(tmp_path: Path) -> None:
    src = files.jpeg(tmp_path / "a.jpg", (900, 600), ex=files.exif(orientation=6))
    before = (src.read_bytes(), src.stat().st_mtime_ns)
    thumbs.make_grid_and_preview(src, tmp_path / "g.webp", tmp_path / "p.webp")
    assert (src.read_bytes(), src.stat().st_mtime_ns) == before


@pytest.mark.usefixtures("ffmpeg")
def test_rotated_video_orientation_matches_its_poster(tmp_path: Path) -> None:
    """A phone's portrait clip: landscape frames plus a display rotation. The size and orientation
    extract() reports must agree with the poster ffmpeg renders."""
    still = tmp_path / "q.png"
    files.picture((320, 240)).save(still)
    plain = tmp_path / "plain.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-loop", "1", "-i", str(still), "-t", "1",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(plain)], check=True)
    rotated = tmp_path / "rotated.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(plain), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(rotated)], check=True)
    info = extract(rotated)
    assert (info.width, info.height) == (240, 320)
    assert info.orientation in (6, 8)
    out = tmp_path / "t.webp"
    res = thumbs.make_thumbnail(rotated, out, size=thumbs.GRID)
    assert (res.width, res.height) == (188, 250)
    with _open(out) as im:
        rgb = im.convert("RGB")
        # The stored top-left (red) corner lands top-right for a clockwise turn (6), bottom-left for
        # a counter-clockwise one (8).
        corner = (im.width - 5, 5) if info.orientation == 6 else (5, im.height - 5)
        assert rgb.getpixel(corner)[0] > 150
