"""The replica-target interface: where a replica keeps its copies of the originals.

Every implementation (``s3.py``, ``folder.py``, ``rclone.py``) passes
``tests/server/test_replica_target_conformance.py``.  Contracts every implementation keeps:

* **Keys** are lowercase hex SHA-256 strings (``InvalidKey`` before any I/O); the layout on the target is
  the blob store's (``[PREFIX/]blobs/ab/cd/<sha256>`` on S3, ``ab/cd/<sha256>`` in a folder or remote path),
  so a replica can itself serve as a primary store (``CAMROLL_STORAGE_URL``) after a disaster.
* ``put`` is **atomic** (a reader sees no copy, the old copy or the whole new one, never a part: an upload
  cut midway leaves nothing under the key) and **replaces** what is there: a copy found bad is put again.
  It trusts the caller's key; the caller hashed ``source`` first.
* ``open``/``stat`` raise ``BlobNotFound`` for an absent key; ``delete`` of an absent key is not an error.
* ``checksum`` returns the SHA-256 of the stored bytes only when the provider computed it from them and
  the target trusts it; None means "read it back to know" (the caller may sample).
* Every other failure is a ``StorageFailure`` (``storage/base.py``) with a sentence naming the provider,
  the place and the operation, a fix, and ``transient`` telling whether waiting may help.  A target never
  prints or raises a secret.
* ``check`` proves the target usable for replication: it writes, reads back and deletes a small probe
  object, so a key without write rights is found when the replica is added, not at the first copy.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from camroll.server.storage.base import BlobStat, ReadStream

PROBE_SHA256 = "0" * 63 + "1"  # a key no real file has (the SHA-256 of nothing known)


class Kind(enum.StrEnum):
    S3 = "s3"
    FOLDER = "file"
    RCLONE = "rclone"


@runtime_checkable
class ReplicaTarget(Protocol):
    kind: Kind
    # Where, for people: "s3://bucket/prefix at Backblaze B2", "/mnt/usb/camroll", "rclone dropbox:camroll".
    where: str

    def put(self, sha256: str, source: Path) -> None:
        """Store the bytes of local file ``source`` (never moved or changed) under ``sha256``, atomically,
        replacing any copy already there."""
        ...

    def open(self, sha256: str) -> ReadStream:
        """The stored bytes, as a stream the caller closes."""
        ...

    def stat(self, sha256: str) -> BlobStat:
        """The stored copy's size."""
        ...

    def checksum(self, sha256: str) -> str | None:
        """The provider's own SHA-256 of the stored bytes, or None (see the module docstring)."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove the copy; idempotent."""
        ...

    def list(self) -> Iterator[BlobStat]:
        """Every copy stored, in no order (``modified`` may be None)."""
        ...

    def check(self) -> None:
        """Write, read and delete a probe; raise ``StorageFailure`` with the fix if any of it fails."""
        ...

    def close(self) -> None:
        """Let go of connections or processes."""
        ...
