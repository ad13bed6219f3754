"""Reach a server's stored blobs on its disk, wherever the local store keeps them (a file of its own or
a member of a pack): for tests that check what is stored or damage a blob on purpose."""

from __future__ import annotations

from pathlib import Path

from camroll.server.storage.base import BlobNotFound
from camroll.server.storage.local import LocalBlobStore


def store(data_dir: Path) -> LocalBlobStore:
    return LocalBlobStore(data_dir / "blobs")


def stored(data_dir: Path, sha256: str) -> bytes | None:
    """The blob's bytes, or None when the store does not hold it."""
    s = store(data_dir)
    try:
        with s.open(sha256) as f:  # type: ignore[attr-defined]
            return bytes(f.read())
    except BlobNotFound:
        return None
    finally:
        s.index.close()


def stored_keys(data_dir: Path) -> set[str]:
    s = store(data_dir)
    try:
        return {b.sha256 for b in s.list()}
    finally:
        s.index.close()


def damage(data_dir: Path, sha256: str, at: int = 100) -> None:
    """Flip one bit of the stored blob, in place, ``at`` bytes into it."""
    s = store(data_dir)
    try:
        path, offset, size = s.where(sha256)
    finally:
        s.index.close()
    assert at < size, f"blob {sha256} has only {size} bytes"
    with open(path, "r+b") as f:
        f.seek(offset + at)
        byte = f.read(1)
        f.seek(offset + at)
        f.write(bytes([byte[0] ^ 0x01]))
