"""The blob store interface: where verified originals live, addressed by their SHA-256.

Every implementation must pass ``tests/server/test_storage_conformance.py``.  Callers never build storage
paths from client-supplied names: the only key is a lowercase hex SHA-256 that the server itself
computed from the bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class StorageError(Exception):
    """Base class of blob store errors."""


class BlobNotFound(StorageError):
    """The blob does not exist (it was never put, or it was deleted)."""


class InvalidKey(StorageError, ValueError):
    """The key is not a lowercase hex SHA-256."""


def check_key(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise InvalidKey(f"blob key must be 64 lowercase hex characters (a SHA-256), got {sha256!r}")
    return sha256


class ReadStream(Protocol):
    """What ``BlobStore.open`` returns: a readable, closable byte stream."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class BlobStat:
    sha256: str
    size: int
    # When the blob's bytes were last written (Unix time), where the store knows; only ``list`` must
    # fill it in.  The orphan sweep leaves blobs younger than its grace age alone.
    modified: float | None = None


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed storage for originals.

    Contracts every implementation keeps:

    * Keys are lowercase hex SHA-256 strings; any other key raises ``InvalidKey`` before any I/O.
    * The store trusts the caller's key: verifying that the bytes hash to the key is the caller's job
      (the upload service does it before calling ``put_file``).  The scrubber re-checks later.
    """

    def put_file(self, sha256: str, source: Path) -> BlobStat:
        """Store the bytes of the local file ``source`` under ``sha256``, durably and atomically.

        Atomic: a concurrent ``open``/``stat`` sees either no blob or the whole blob, never a part.
        Durable: when this returns, the blob survives a crash or power loss (local: fsync of the file,
        rename, fsync of the directory; S3: the completed PUT).
        Idempotent: putting a key that already exists succeeds and leaves the existing blob's bytes as
        they are, but refreshes its ``modified`` time to now: the blob was just re-used by a new upload
        whose asset row is not committed yet, and the orphan sweep must not take it meanwhile.
        Ownership: the store may move ``source`` instead of copying it; afterwards the caller must not
        use ``source`` again (it may or may not still exist).
        """
        ...

    def open(self, sha256: str, offset: int = 0, length: int | None = None) -> ReadStream:
        """Open the blob for reading from ``offset``; reads stop after ``length`` bytes if given.

        Raises ``BlobNotFound`` if absent.  The caller closes the returned file object.
        """
        ...

    def stat(self, sha256: str) -> BlobStat:
        """Size of the blob; raises ``BlobNotFound`` if absent."""
        ...

    def exists(self, sha256: str) -> bool:
        """True if the blob is fully stored."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove the blob.  Idempotent: deleting an absent blob is not an error."""
        ...

    def list(self) -> Iterator[BlobStat]:
        """Every stored blob, in no particular order, with ``modified`` set.  Never yields a partially
        written blob."""
        ...


class RangeReader:
    """A read-only file object that stops after ``length`` bytes of an underlying stream."""

    def __init__(self, raw: BinaryIO, length: int | None) -> None:
        self._raw = raw
        self._left = length

    def read(self, size: int = -1, /) -> bytes:
        if self._left is None:
            return self._raw.read(size)
        if self._left <= 0:
            return b""
        want = self._left if size < 0 else min(size, self._left)
        data = self._raw.read(want)
        self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
