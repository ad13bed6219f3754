"""A small filesystem the test makes (a size-limited tmpfs), for disk-full tests: writes past its size
fail with ENOSPC exactly as on a full disk.  Mounting needs root (CI runs as root); elsewhere the test is
skipped with the reason, and in CI it fails instead (see ``conftest.require``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from support.env import require
from support.server import ServerProcess


@contextlib.contextmanager
def small_filesystem(where: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MB mounted at ``where`` for the duration; always unmounted afterwards."""
    require(os.geteuid() == 0, "disk-full tests mount a small tmpfs, which needs root")
    require(shutil.which("mount") is not None, "disk-full tests need mount(8)")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(where)],
                          capture_output=True, text=True)
    require(done.returncode == 0, f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            # Something still holds a file open (a server that would not stop): detach it anyway.
            subprocess.run(["umount", "-l", str(where)], capture_output=True)



@contextlib.contextmanager
def server_on_small_filesystem(data: Path, size_mb: int) -> Iterator[ServerProcess]:
    """A real ``camroll serve`` whose data dir is a ``size_mb`` MB tmpfs (its log stays outside)."""
    with small_filesystem(data, size_mb):
        srv = ServerProcess(data=data)
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()


def fill(path: Path, *, leave: int = 0, size: int | None = None) -> int:
    """Write ``path`` until the filesystem has only ``leave`` bytes free (or is full), or ``size`` bytes
    when given; returns how many were written."""
    free = shutil.disk_usage(path.parent).free
    want = max(0, free - leave) if size is None else size
    block = b"\0" * 2**20
    written = 0
    with open(path, "wb", buffering=0) as f:
        try:
            while written < want:
                written += f.write(block[:min(len(block), want - written)])
                f.flush()
        except OSError:
            pass
    return written
