"""ffprobe and ffmpeg: where they are and how they are run (bounded time, no stdin, JSON out).

They read untrusted files, so each run is confined to the one file it is given: the demuxer is the
one for the container camroll sniffed from the file's bytes (``-f``), never ffmpeg's own guess, so a
file cannot pass itself off as an HLS or concat playlist that names other files or URLs; and the
only protocol allowed is ``file`` (``-protocol_whitelist``), so nothing a demuxer reads inside the
file can reach the network or a pipe. Memory and CPU are bounded by the job sandbox they run in
(its rlimits are inherited), and decoding uses at most two threads, since ffmpeg's default of one
frame thread per core multiplies its memory on a large machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from camroll.media import types
from camroll.media.errors import ToolMissing, UnreadableMedia

# A probe reads headers only; a poster frame decodes a few frames. Both are bounded so that one
# pathological file cannot hold a worker forever.
PROBE_TIMEOUT = 30.0
FRAME_TIMEOUT = 60.0
THREADS = 2
# ffmpeg's demuxer for each video container camroll backs up.
DEMUXERS: dict[types.MediaType, str] = {
    types.MP4: "mov", types.MOV: "mov", types.MKV: "matroska", types.AVI: "avi", types.MTS: "mpegts",
    types.MPEG: "mpeg", types.WMV: "asf",
}


def find(name: str) -> str:
    """The path of ``name`` (ffprobe or ffmpeg) on PATH, or ToolMissing with the fix."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found: install ffmpeg (for example 'apt-get install ffmpeg') and retry.")
    return path


def available() -> bool:
    """Whether both ffprobe and ffmpeg are installed (video metadata and posters need them)."""
    return shutil.which("ffprobe") is not None and shutil.which("ffmpeg") is not None


def input_args(path: Path) -> list[str]:
    """The options that make ffmpeg/ffprobe read ``path``, and only it, with the demuxer its bytes
    call for. UnreadableMedia when the bytes are not a video container camroll knows."""
    with open(path, "rb") as f:
        mt = types.sniff(f.read(types.SNIFF_BYTES))
    demuxer = DEMUXERS.get(mt) if mt is not None else None
    if demuxer is None:
        raise UnreadableMedia("This file is not a video container camroll reads.")
    return ["-protocol_whitelist", "file", "-f", demuxer, "-i", f"file:{path.absolute()}"]


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's JSON description (format + streams) of a video file."""
    argv = [find("ffprobe"), "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
            *input_args(path)]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise UnreadableMedia(f"ffprobe took over {PROBE_TIMEOUT:.0f} s on this file; it is likely corrupt.") from exc
    if proc.returncode != 0:
        raise UnreadableMedia(f"ffprobe could not read this video: {_last_line(proc.stderr, path)}.")
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise UnreadableMedia("ffprobe printed something that is not JSON for this video.") from exc
    if not isinstance(data, dict):
        raise UnreadableMedia("ffprobe printed something that is not a JSON object for this video.")
    return data


def frame(path: Path, *, at: float | None, max_edge: int) -> bytes:
    """One decoded frame as PPM bytes (rotation applied, scaled to fit ``max_edge`` without
    upscaling), taken at ``at`` seconds or at the first frame; empty bytes if the video has no
    frame at that time (a clip shorter than ``at``)."""
    scale = (
        f"scale=w='min({max_edge},iw)':h='min({max_edge},ih)':force_original_aspect_ratio=decrease,format=rgb24"
    )
    argv = [find("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error"]
    if at is not None:
        argv += ["-ss", f"{at:.3f}"]
    argv += ["-threads", str(THREADS), *input_args(path),
             "-map", "0:v:0", "-frames:v", "1", "-vf", scale, "-f", "image2pipe", "-c:v", "ppm", "-"]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=FRAME_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise UnreadableMedia(f"ffmpeg took over {FRAME_TIMEOUT:.0f} s to decode one frame of this video.") from exc
    if proc.returncode != 0:
        if b"matches no streams" in proc.stderr:
            raise UnreadableMedia("This video has no video stream ffmpeg can read.")
        raise UnreadableMedia(f"ffmpeg could not decode a frame of this video: {_last_line(proc.stderr, path)}.")
    return proc.stdout


def _last_line(stderr: bytes, path: Path) -> str:
    """ffmpeg's last complaint, without the file's path (on a server that is an internal blob path)."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    text = lines[-1] if lines else "no error message"
    for name in (f"file:{path.absolute()}", str(path.absolute()), str(path)):
        text = text.replace(f"{name}: ", "").replace(name, "the file")
    return text.rstrip(".")[:300]
