"""The blob store interface: where verified originals live, addressed by their SHA-256.

Every implementation must pass ``tests/server/test_storage_conformance.py``.  Callers never build storage
paths from client-supplied names: the only key is a lowercase hex SHA-256 that the server itself
computed from the bytes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
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


class StorageFailure(StorageError):
    """The store cannot do what was asked: ``problem`` says what happened in a sentence a person can
    read (naming the provider, bucket and operation), ``fix`` what to do about it.  ``transient`` is
    True when trying again later may work (timeouts, a server that is down), False when only a change of
    configuration helps (wrong keys, no such bucket, no permission)."""

    transient = False

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem} {fix}")
        self.problem = problem
        self.fix = fix


class StorageUnreachable(StorageFailure):
    """No connection to the store (wrong endpoint, server down, DNS, TLS)."""

    transient = True


class StorageTimeout(StorageFailure):
    """The store accepted the connection but did not answer in time."""

    transient = True


class StorageUnavailable(StorageFailure):
    """The store answered with a server error or throttling, after the client's own retries."""

    transient = True


class StorageAccessDenied(StorageFailure):
    """The store refused the credentials or their permissions (HTTP 403, unknown key, bad secret)."""


class StorageBucketMissing(StorageFailure):
    """The configured bucket does not exist (or is in another region or account)."""


class StorageMisconfigured(StorageFailure):
    """The configuration cannot work as given (no credentials, wrong region, bad endpoint)."""


class CopyTooLarge(StorageFailure):
    """``local_file`` refused a temporary copy larger than the configured limit."""


class CopySpaceShort(StorageFailure):
    """``local_file`` refused a temporary copy that would leave the temp directory's disk too full.  Raised
    from an ``OSError(ENOSPC)`` so callers that wait for disk space (the job queue) treat it so."""

    transient = True


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


@dataclass(frozen=True)
class Span:
    """One blob inside a larger local file (a batch's staged bytes): ``size`` bytes from ``offset``."""

    sha256: str
    offset: int
    size: int


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

    def put_batch(self, source: Path, spans: Sequence[Span]) -> set[str]:
        """Store each span of the local file ``source`` as the blob its ``sha256`` names (a batch of small
        uploads, staged one after another in one file); returns the keys that were already stored
        (re-used, ``modified`` refreshed) rather than written.  A key named twice is stored once, from
        its first span.

        Every blob is durable when this returns, as after ``put_file`` of each, but a store may make
        them durable together (local: one pack file, one fsync, one index transaction), so the cost of
        a round of fsyncs is shared.  On an error some of the blobs may be stored and others not, never
        one half-written; the caller puts them again or leaves them to the orphan sweep.  Ownership of
        ``source`` is as in ``put_file``: the store may take it over, append to it or remove it.
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

    def local_file(self, sha256: str) -> AbstractContextManager[Path]:
        """A local, seekable file holding the blob's bytes while the context is open, for decoders that
        need a path (ffprobe, Pillow): on a store with local files the blob itself, which the caller must
        only read (never write, rename or remove); elsewhere a temporary copy (``TempCopies``), removed
        when the context exits, also on error.

        Raises ``BlobNotFound`` if absent.  Bounded: a copy larger than the store's ``TempCopies.max_bytes``
        raises ``CopyTooLarge``, one that would leave less than ``reserve_bytes`` free in the temp
        directory raises ``CopySpaceShort``, both before a byte is copied."""
        ...


@runtime_checkable
class Housekeeping(Protocol):
    """A store that keeps files of its own beside the blobs (the local store's packs) and can be asked to
    remove the ones no blob lives in any more."""

    def sweep_leftovers(self, cutoff: float) -> int:
        """Remove the store's own files that hold no live blob and were last written before ``cutoff``
        (Unix time), so a crash in the middle of a write leaves nothing for ever; returns how many."""
        ...


def read_span(source: Path, span: Span) -> bytes:
    """The bytes of ``span`` in ``source``; raises ``StorageError`` if the file is shorter."""
    with open(source, "rb") as f:
        f.seek(span.offset)
        data = f.read(span.size)
    if len(data) != span.size:
        raise StorageError(f"{source} ends before the {span.size} bytes of blob {span.sha256}")
    return data


@dataclass(frozen=True)
class TempCopies:
    """Where and how large the temporary copies behind ``BlobStore.local_file`` may be."""

    directory: Path | None = None  # None: the system's temp directory
    max_bytes: int = 100 * 10**9
    reserve_bytes: int = 256 * 2**20  # left free on the directory's disk after the copy

    @contextlib.contextmanager
    def copy(self, store: BlobStore, sha256: str) -> Iterator[Path]:
        """A read-only temporary copy of blob ``sha256`` of ``store``; see ``BlobStore.local_file``."""
        from camroll.units import format_size

        size = store.stat(sha256).size
        if size > self.max_bytes:
            raise CopyTooLarge(
                f"Blob {sha256} ({format_size(size)}) is larger than the {format_size(self.max_bytes)} a "
                f"temporary local copy may take.",
                "Raise CAMROLL_LOCAL_COPY_MAX (and make room in the temp directory) to process files this large.")
        directory = self.directory or Path(tempfile.gettempdir())
        directory.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(directory).free
        if free - size < self.reserve_bytes:
            raise CopySpaceShort(
                f"A temporary copy of blob {sha256} ({format_size(size)}) does not fit in {directory}: "
                f"{format_size(free)} free, {format_size(self.reserve_bytes)} must stay free.",
                f"Free space on the disk holding {directory}, or point the data directory at a larger disk.",
            ) from OSError(errno.ENOSPC, f"no room for a {size}-byte copy in {directory}")
        fd, name = tempfile.mkstemp(dir=directory, prefix=f"blob-{sha256[:16]}-")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as dst, contextlib.closing(store.open(sha256)) as src:
                copied = 0
                while block := src.read(_COPY_BLOCK):
                    copied += len(block)
                    if copied > size:
                        raise StorageError(f"blob {sha256} grew while it was copied ({copied} > {size} bytes)")
                    dst.write(block)
            if copied != size:
                raise StorageError(f"blob {sha256} copy ended at {copied} of {size} bytes")
            path.chmod(0o400)
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


_COPY_BLOCK = 1 << 20


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
