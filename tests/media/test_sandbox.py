"""The media sandbox: real child processes, real files, real limits (wall time, CPU, memory), and a
real crash; each failure comes back typed, with its sentence, and the next file gets a fresh child."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from PIL import Image
from support.env import require

from camroll.media import thumbs
from camroll.media.metadata import extract
from camroll.media.sandbox import FailureKind, Limits, Sandbox, SandboxFailure, classify_os_error

from . import files, hostile


@pytest.fixture
def bomb(tmp_path: Path) -> Path:
    """The defect's decompression bomb: 12000 x 12000 RGBA (under the pixel limit) in a few hundred KiB."""
    path = tmp_path / "bomb.png"
    path.write_bytes(hostile.png_bomb(12000, 12000))
    return path


def _child_pid(box: Sandbox) -> int:
    box.ping()
    return box._idle[-1].proc.pid


def test_results_match_the_in_process_ones_and_thumbnails_land_where_asked(tmp_path: Path) -> None:
    photo = files.jpeg(tmp_path / "IMG_20240101_101010.jpg", (1600, 1200), ex=files.exif(gps=(48.85, 2.35, 35.0)))
    with_xmp = tmp_path / "x.jpg"
    with_xmp.write_bytes(hostile.jpeg_with_xmp(hostile.xmp_quadratic(64000)))
    box = Sandbox(Limits(timeout_seconds=30))
    try:
        for path in (photo, with_xmp):
            assert box.extract(path, mime="image/jpeg", mtime=1.0) == extract(path, mime="image/jpeg", mtime=1.0)
        grid, preview = tmp_path / "t" / "g.webp", tmp_path / "t" / "p.webp"
        results = box.thumbnails(photo, [(thumbs.PREVIEW, preview), (thumbs.GRID, grid)])
        assert [(r.width, r.height) for r in results] == [(1440, 1080), (250, 188)]
        assert grid.stat().st_size == results[1].bytes_written and preview.is_file()
        assert box.started == 1  # one warm child served every request
    finally:
        box.close()


def test_a_file_over_the_time_limit_is_stopped_and_the_child_replaced(tmp_path: Path, bomb: Path) -> None:
    box = Sandbox(Limits(timeout_seconds=0.5))
    try:
        pid = _child_pid(box)
        start = time.monotonic()
        with pytest.raises(SandboxFailure) as err:
            box.thumbnails(bomb, [(thumbs.GRID, tmp_path / "g.webp")])
        assert time.monotonic() - start < 5
        assert err.value.failure.kind is FailureKind.TIMEOUT and not err.value.transient
        assert "took over 0.5 s" in str(err.value) and "CAMROLL_JOB_TIMEOUT" in str(err.value)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        box.ping()
        assert box.started == 2
    finally:
        box.close()


def test_a_file_over_the_cpu_limit_is_stopped_by_the_kernel(tmp_path: Path) -> None:
    # Memory out of the way (the 1 GiB default ran out before 1 s of CPU on a fast machine), and a bomb
    # just under the pixel limit: ~1.5 s of CPU to decode and shrink on a fast machine, more on a slow one.
    big = tmp_path / "big-bomb.png"
    big.write_bytes(hostile.png_bomb(14000, 14000))
    box = Sandbox(Limits(timeout_seconds=60, cpu_seconds=1, memory_bytes=4 << 30))
    try:
        with pytest.raises(SandboxFailure) as err:
            box.thumbnails(big, [(thumbs.GRID, tmp_path / "g.webp")])
        assert err.value.failure.kind is FailureKind.TIMEOUT
        assert "s of CPU time" in str(err.value)
    finally:
        box.close()


def test_a_file_over_the_memory_limit_fails_in_the_child_not_here(tmp_path: Path, bomb: Path) -> None:
    box = Sandbox(Limits(timeout_seconds=60, memory_bytes=400 << 20))
    rss = psutil.Process().memory_info().rss
    try:
        with pytest.raises(SandboxFailure) as err:
            box.thumbnails(bomb, [(thumbs.GRID, tmp_path / "g.webp")])
        assert err.value.failure.kind is FailureKind.OUT_OF_MEMORY
        assert "400 MiB memory limit (CAMROLL_JOB_MEMORY)" in str(err.value)
        assert psutil.Process().memory_info().rss - rss < 50 << 20
        # The metadata of the same file needs no decode and is read fine.
        assert box.extract(bomb).width == 12000
    finally:
        box.close()


def test_a_crashed_decoder_is_reported_and_replaced(tmp_path: Path, bomb: Path) -> None:
    # A death by signal after the child used half its memory limit counts as out of memory: with the
    # 1 GiB default a fast machine's decode of the bomb gets there within the 0.3 s before the SIGSEGV,
    # so the limit is lifted for this test, which is about the crash.
    box = Sandbox(Limits(timeout_seconds=60, memory_bytes=8 << 30))
    try:
        pid = _child_pid(box)
        threading.Timer(0.3, os.kill, (pid, signal.SIGSEGV)).start()
        with pytest.raises(SandboxFailure) as err:
            box.thumbnails(bomb, [(thumbs.GRID, tmp_path / "g.webp")])
        assert err.value.failure.kind is FailureKind.CRASHED and "SIGSEGV" in str(err.value)
        box.ping()
        assert box.started == 2
    finally:
        box.close()


def test_a_full_disk_is_transient_and_a_bad_file_is_not() -> None:
    full = classify_os_error(OSError(errno.ENOSPC, "No space left on device"))
    assert full.transient and full.kind is FailureKind.TRANSIENT and full.errno == errno.ENOSPC
    assert "No space left on device" in full.reason
    bad = classify_os_error(OSError(errno.EIO, "Input/output error"))
    assert not bad.transient and bad.kind is FailureKind.UNREADABLE


def test_a_closed_sandbox_leaves_no_child() -> None:
    box = Sandbox(Limits())
    pid = _child_pid(box)
    box.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(SandboxFailure) as err:
        box.ping()
    assert err.value.transient


def test_the_child_inherits_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("CAMROLL_DATABASE_URL", "postgresql://u:pw@db/camroll")
    box = Sandbox(Limits())
    try:
        env = Path(f"/proc/{_child_pid(box)}/environ").read_bytes()
    finally:
        box.close()
    assert b"s3cr3t" not in env and b"u:pw" not in env and b"PATH=" in env


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A one-page tmpfs: a 1440 px preview of noise does not fit."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(mnt)], capture_output=True)
    ok = mount.returncode == 0
    require(ok, "mounting a small tmpfs needs root (CAP_SYS_ADMIN)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_full_disk_comes_back_transient_and_keeps_the_child(tmp_path: Path, full_disk: Path) -> None:
    photo = tmp_path / "noise.jpg"
    Image.merge("RGB", [Image.effect_noise((2000, 1500), 80)] * 3).save(photo, quality=90)
    box = Sandbox(Limits())
    try:
        with pytest.raises(SandboxFailure) as err:
            box.thumbnails(photo, [(thumbs.PREVIEW, full_disk / "p.webp")])
        assert err.value.transient and err.value.failure.errno == errno.ENOSPC
        assert "No space left on device" in str(err.value)
        box.ping()
        assert box.started == 1
    finally:
        box.close()
