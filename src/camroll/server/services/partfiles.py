"""Partial tus uploads on disk: ``<data>/uploads/<id>.part``.  Upload ids are server-made, so no
client-supplied name ever becomes a path."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
READ_BLOCK = 4 * 2**20


class PartFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, upload_id: str) -> Path:
        if not _ID.match(upload_id):
            raise ValueError(f"not an upload id: {upload_id!r}")
        return self.root / f"{upload_id}.part"

    def create(self, upload_id: str) -> None:
        path = self.path(upload_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)

    def size(self, upload_id: str) -> int | None:
        try:
            return self.path(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    def truncate(self, upload_id: str, size: int) -> None:
        with open(self.path(upload_id), "r+b") as f:
            f.truncate(size)
            os.fsync(f.fileno())

    def remove(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(upload_id).unlink()

    def sha256(self, upload_id: str) -> str:
        h = hashlib.sha256()
        with open(self.path(upload_id), "rb") as f:
            while block := f.read(READ_BLOCK):
                h.update(block)
        return h.hexdigest()

    def head(self, upload_id: str, n: int) -> bytes:
        with open(self.path(upload_id), "rb") as f:
            return f.read(n)
