"""Hostile input to the media library: XMP that made the old Motion Photo pattern quadratic, entity
bombs, images over the pixel limit, and playlists posing as videos that would make ffmpeg read other
files or URLs. Every file is made at test time (tests/media/hostile.py)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import psutil
import pytest

from camroll.media import limits, motion, thumbs, tools, xmp
from camroll.media.errors import UnreadableMedia
from camroll.media.metadata import extract

from . import files, hostile


def test_xmp_is_parsed_in_linear_time() -> None:
    # The old pattern took 2 s on the 64 KB packet (9 s on a loaded machine) and 17 s on 192 KB.
    for size in (64 << 10, 192 << 10, 1 << 20):
        packet = hostile.xmp_quadratic(size)
        start = time.perf_counter()
        assert motion.from_xmp(packet, 10 << 20) is None
        assert time.perf_counter() - start < 0.5, size
    nested = hostile.xmp_nested(xmp.MAX_BYTES - 64)
    start = time.perf_counter()
    assert xmp.motion(nested).flagged
    assert time.perf_counter() - start < 5


def test_xmp_over_the_cap_or_with_a_dtd_is_not_parsed() -> None:
    start = time.perf_counter()
    assert xmp.motion(hostile.xmp_entity_bomb()) == xmp.MotionXmp()
    assert time.perf_counter() - start < 0.1
    big = files.motion_photo_xmp(1000) + b" " * xmp.MAX_BYTES
    assert xmp.motion(big) == xmp.MotionXmp()


@pytest.mark.parametrize("packet", [
    files.motion_photo_xmp(4321),
    # element form, no namespace declarations (as some phones write it)
    b"<x><GCamera:MotionPhoto>1</GCamera:MotionPhoto><Container:Directory><rdf:Seq><rdf:li>"
    b"<Container:Item><Item:Semantic>MotionPhoto</Item:Semantic><Item:Length>4321</Item:Length>"
    b"</Container:Item></rdf:li></rdf:Seq></Container:Directory></x>",
    # the older MicroVideo fields
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description GCamera:MicroVideo="1" '
    b'GCamera:MicroVideoOffset="4321"/></x:xmpmeta>',
    # a packet cut off after its declaration still says where the video is
    files.motion_photo_xmp(4321)[:-40],
])
def test_xmp_motion_photo_declarations_are_read(packet: bytes) -> None:
    found = motion.from_xmp(packet, 100_000)
    assert found is not None and (found.offset, found.length) == (100_000 - 4321, 4321)


def test_heic_with_192k_of_xmp_is_read_quickly(tmp_path: Path) -> None:
    path = tmp_path / "x.heic"
    path.write_bytes(hostile.heic_with_xmp(hostile.xmp_quadratic(192 << 10)))
    start = time.perf_counter()
    info = extract(path)
    assert info.width == 128 and info.error is None and info.motion_photo is None
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("name,make", [
    ("png-20000x20000", lambda: hostile.png_bomb(20000, 20000)),
    ("png-header-60000", lambda: hostile.png_header_only(60000, 60000)),
    ("tiff-16000x16000", lambda: hostile.tiff_bomb(16000, 16000)),
    ("jpeg-65000", lambda: hostile.jpeg_declaring(65000, 65000)),
    ("gif-65535", lambda: hostile.gif_declaring(65535, 65535)),
    ("webp-16384", lambda: hostile.webp_declaring(16384, 16384)),
    ("heic-40000", lambda: hostile.heic_declaring(40000, 40000)),
])
def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path: Path, name: str, make: object) -> None:
    path = tmp_path / name
    path.write_bytes(make())  # type: ignore[operator]
    rss = psutil.Process().memory_info().rss
    start = time.perf_counter()
    with pytest.raises(UnreadableMedia, match="megapixel limit"):
        thumbs.make_thumbnails(path, [(thumbs.GRID, tmp_path / "g.webp")])
    assert "megapixel limit" in (extract(path).error or "")
    assert time.perf_counter() - start < 2
    assert psutil.Process().memory_info().rss - rss < 50 << 20
    assert not (tmp_path / "g.webp").exists()


def test_the_pixel_limit_names_the_size() -> None:
    with pytest.raises(UnreadableMedia, match=r"16384 x 12241 pixels \(201 megapixels\)"):
        limits.check(16384, 12241)
    limits.check(16320, 12240)  # a 200 MP phone photo is decoded


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"\x47" + bytes(187))

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[int, list[str]]]:
    hits: ClassVar[list[str]] = []
    handler = type("Handler", (_Recorder,), {"hits": hits})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1], hits
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.usefixtures("ffmpeg")
def test_ffmpeg_reads_only_the_file_it_is_given(tmp_path: Path, recorder: tuple[int, list[str]]) -> None:
    port, hits = recorder
    url = f"http://127.0.0.1:{port}/seg0.ts"
    # Another video on the same disk: ffmpeg's own detection would read it through the playlist and
    # report its streams as this file's (Debian's ffmpeg already refuses http from a local playlist).
    secret = files.container(tmp_path / "secret.ts", ["-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts"])
    for name, data in (("bare.m3u8", hostile.hls_playlist(url)), ("hls.mp4", hostile.mp4_with_playlist(url)),
                       ("other-file.mp4", hostile.hls_playlist(f"file://{secret}")),
                       ("other-file-relative.mp4", hostile.hls_playlist("secret.ts")),
                       ("passwd.m3u8", hostile.hls_playlist("file:///etc/passwd")),
                       ("concat.mp4", hostile.mp4_with_concat(port)), ("bare.ffconcat", hostile.concat_script(port))):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(UnreadableMedia):
            tools.probe(path)
        with pytest.raises(UnreadableMedia):
            tools.frame(path, at=None, max_edge=64)
        assert "root:" not in (extract(path).error or "")
    assert hits == []
    # Real containers are still read with the demuxer their bytes call for.
    clip = tmp_path / "clip.mkv"
    files.container(clip, ["-c:v", "libx264", "-preset", "ultrafast"])
    assert tools.probe(clip)["format"]["format_name"].startswith("matroska")


def test_png_metadata_does_not_decode_the_pixels(tmp_path: Path) -> None:
    # Pillow's PNG getexif() decoded the whole image: this 12000 x 12000 bomb took a gigabyte.
    path = tmp_path / "bomb.png"
    path.write_bytes(hostile.png_bomb(12000, 12000))
    rss = psutil.Process().memory_info().rss
    info = extract(path)
    assert (info.width, info.height, info.error) == (12000, 12000, None)
    assert psutil.Process().memory_info().rss - rss < 50 << 20


def test_every_pattern_over_metadata_is_linear() -> None:
    """The other regular expressions media/ runs over text from files (EXIF strings, container tags,
    file names) on 1 MB of the input most likely to make each backtrack."""
    from camroll.media import exif as exif_mod
    from camroll.media import filenames, metadata

    n = 1 << 20
    cases = [
        lambda: exif_mod.parse_datetime(" " * n + "2024"),
        lambda: exif_mod.parse_datetime("2024:01:01 10:10:10", "1" * n, " " * n + "+"),
        lambda: filenames.capture_time("2024" * (n // 4)),
        lambda: filenames.capture_time("20240101-WA" + "1" * n + "x"),
        lambda: metadata._iso("+0100" * (n // 5)),
        lambda: metadata._iso6709("+" + "1" * n, {}),
        lambda: metadata._iso6709("+1." + "1" * n + "+", {}),
        lambda: motion._BRAND.match(b"a" * n),
    ]
    for case in cases:
        start = time.perf_counter()
        case()
        assert time.perf_counter() - start < 0.05
