"""Where the bytes of a tus upload in progress live: the ``PartStore`` interface and its local
implementation, ``<data>/uploads/<id>.part``.  (The S3 implementation is ``storage/s3parts.py``.)

Upload ids are server-made, so no client-supplied name ever becomes a path or an object key.

The database row of an upload is the truth of what is acknowledged: its ``offset``, and for a store
whose state is not self-describing (S3) the ``Recorded`` state beside it (multipart UploadId, parts,
tail object).  A store writes bytes durably *before* the caller commits the new offset, and never
changes what a committed ``Recorded`` points at, so an acknowledged offset is never lost and a request
that fails midway leaves the previous state whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from camroll.server.storage.base import BlobStore

_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
READ_BLOCK = 4 * 2**20


def check_id(upload_id: str) -> str:
    if not _ID.match(upload_id):
        raise ValueError(f"not an upload id: {upload_id!r}")
    return upload_id


@dataclass(frozen=True)
class Part:
    """One acknowledged part of a multipart upload."""

    number: int
    size: int
    etag: str


@dataclass(frozen=True)
class Recorded:
    """What the database says a store holds for one upload: nothing for local part files (the file is
    its own record); for S3 the multipart UploadId, the acknowledged parts in order and the tail object
    (the bytes after the last part).  ``size`` always equals the row's offset."""

    multipart_id: str | None = None
    parts: tuple[Part, ...] = ()
    tail_key: str | None = None
    tail_size: int = 0

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts) + self.tail_size


NOTHING = Recorded()


class PartsGone(Exception):
    """The store no longer holds what the upload's record points to (removed by hand, or by a sweep
    that died before it marked the upload expired): the upload cannot go on."""


class PartsExhausted(Exception):
    """The upload cannot finish within the store's part numbers (S3: 10,000), which failed requests
    used up: it is ended, and its client starts again."""


class PartsAssembled(Exception):
    """The store's parts were joined into the complete object already (a completion that failed after
    the assembly): nothing more can be written, and the bytes are whole; the upload is completed, never
    given up."""


class PartWriter(Protocol):
    """One request appending to one upload, from the recorded offset on.

    ``write`` is called from one worker thread at a time, in order; ``finish`` stores what was written
    durably and returns the state the caller commits with the new offset; after the commit the caller
    calls ``settle`` (which only removes what the new state no longer needs), or after a failure
    ``abandon`` (which removes what this writer stored and leaves the recorded state as it was)."""

    def write(self, data: bytes) -> None: ...

    def finish(self, final: bool) -> Recorded: ...

    def settle(self) -> None: ...

    def abandon(self) -> None: ...


@dataclass(frozen=True)
class Stray:
    """Something a store holds that no recorded state points to (a crash between writing and the
    commit, or a clean-up that failed); ``upload_id`` may be unknown to the database."""

    upload_id: str
    what: str
    modified: datetime | None


@runtime_checkable
class PartStore(Protocol):
    """Bytes of uploads in progress.  Contracts every implementation keeps:

    * ``shared``: every replica reaches the same bytes.  Then a second writer must be kept out across
      replicas (the writer lease on the upload row), not only within one process.
    * Nothing a committed ``Recorded`` points to is changed or removed, except by ``remove``.
    * ``remove`` is idempotent and removes everything the store holds for the upload.
    """

    shared: bool

    def local_path(self, upload_id: str) -> Path | None:
        """The upload's bytes as one local file, when the store keeps them so (the fast path of
        receive.py writes to it directly); None otherwise."""
        ...

    def local_root(self) -> Path | None:
        """The directory whose disk the parts fill, when they are local (disk room checks)."""
        ...

    def create(self, upload_id: str) -> None:
        """Make room for a new upload (local: the empty part file).  May store nothing."""
        ...

    def size(self, upload_id: str, recorded: Recorded) -> int | None:
        """Bytes held (local: the part file's size, written or not); None when the upload's bytes are gone."""
        ...

    def writer(self, upload_id: str, start: int, length: int, recorded: Recorded,
               guard: Callable[[], None] | None = None) -> PartWriter:
        """A writer appending at ``start`` (== ``recorded.size`` for a store with a record).  ``guard``
        is called before each part is stored (a shared store: renews the caller's writer lease, and
        raises once another request took the upload over, so two writers never store the same part)."""
        ...

    def assemble(self, upload_id: str, recorded: Recorded) -> None:
        """Join the complete upload's bytes into one readable object.  Idempotent."""
        ...

    def sha256(self, upload_id: str, recorded: Recorded) -> str:
        """SHA-256 of the assembled bytes (read back in full)."""
        ...

    def head(self, upload_id: str, recorded: Recorded, n: int) -> bytes:
        """The first ``n`` bytes of the assembled upload (type sniffing)."""
        ...

    def publish(self, upload_id: str, recorded: Recorded, sha256: str, blobs: BlobStore) -> None:
        """Make the verified, assembled bytes the blob ``sha256`` (an existing blob is left as it is).
        The upload's bytes may be gone afterwards."""
        ...

    def truncate(self, upload_id: str, size: int) -> None:
        """Cut bytes written past the recorded offset (only a store with ``local_path`` has any)."""
        ...

    def remove(self, upload_id: str, recorded: Recorded) -> None:
        """Delete everything held for the upload.  Idempotent."""
        ...

    def strays(self, keep: Iterable[tuple[str, Recorded]]) -> list[Stray]:
        """What the store holds beyond ``keep`` (every active upload and its recorded state)."""
        ...

    def drop_stray(self, stray: Stray) -> None:
        ...


@runtime_checkable
class ObjectBlobs(Protocol):
    """A blob store capability: blobs are S3 objects (``storage/s3.py``).  Uploads in progress then live
    in the same bucket and client (``<prefix>/uploads/``), and a verified upload becomes its blob by a
    server-side copy, with no byte through this process."""

    client: Any
    bucket: str

    def key(self, *parts: str) -> str:
        """An object key under the store's prefix."""
        ...

    def key_for(self, sha256: str) -> str:
        """The object key of blob ``sha256``."""
        ...


class _LocalWriter:
    """Appends to a part file (the generic path; receive.py writes part files directly)."""

    def __init__(self, path: Path, start: int) -> None:
        self._start = start
        self._fd = os.open(path, os.O_WRONLY)
        os.lseek(self._fd, start, os.SEEK_SET)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def finish(self, final: bool) -> Recorded:
        os.fsync(self._fd)
        return NOTHING

    def settle(self) -> None:
        self._close()

    def abandon(self) -> None:
        try:
            os.ftruncate(self._fd, self._start)
            os.fsync(self._fd)
        finally:
            self._close()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class PartFiles:
    """Local part files: the embedded default, and the fastest (one file, written in place)."""

    shared = False

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, upload_id: str) -> Path:
        return self.root / f"{check_id(upload_id)}.part"

    def local_path(self, upload_id: str) -> Path | None:
        return self.path(upload_id)

    def local_root(self) -> Path | None:
        return self.root

    def create(self, upload_id: str) -> None:
        path = self.path(upload_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)

    def size(self, upload_id: str, recorded: Recorded = NOTHING) -> int | None:
        try:
            return self.path(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    def writer(self, upload_id: str, start: int, length: int, recorded: Recorded,
               guard: Callable[[], None] | None = None) -> PartWriter:
        return _LocalWriter(self.path(upload_id), start)

    def assemble(self, upload_id: str, recorded: Recorded = NOTHING) -> None:
        pass  # one file already

    def truncate(self, upload_id: str, size: int) -> None:
        with open(self.path(upload_id), "r+b") as f:
            f.truncate(size)
            os.fsync(f.fileno())

    def remove(self, upload_id: str, recorded: Recorded = NOTHING) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(upload_id).unlink()

    def sha256(self, upload_id: str, recorded: Recorded = NOTHING) -> str:
        h = hashlib.sha256()
        with open(self.path(upload_id), "rb") as f:
            while block := f.read(READ_BLOCK):
                h.update(block)
        return h.hexdigest()

    def head(self, upload_id: str, recorded: Recorded = NOTHING, n: int = 0) -> bytes:
        with open(self.path(upload_id), "rb") as f:
            return f.read(n)

    def publish(self, upload_id: str, recorded: Recorded, sha256: str, blobs: BlobStore) -> None:
        blobs.put_file(sha256, self.path(upload_id))

    def strays(self, keep: Iterable[tuple[str, Recorded]]) -> list[Stray]:
        known = {upload_id for upload_id, _ in keep}
        return [Stray(p.stem, p.name, None) for p in self.root.glob("*.part") if p.stem not in known]

    def drop_stray(self, stray: Stray) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / stray.what).unlink()
