"""A replica in a local or mounted folder (``file:///mnt/usb-disk/camroll``): the local blob store's layout
(``ab/cd/<sha256>``), written by temp file, fsync, rename.

The folder must exist: a USB disk that is not mounted leaves an empty mount point, and creating the
folder there would fill the system disk with a "replica" nobody can carry away.  ``add`` creates it once
(``create=True``); afterwards a missing folder is a failure that says to mount the disk."""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from camroll.server.replicas.target import PROBE_SHA256, Kind
from camroll.server.storage.base import (
    BlobStat,
    ReadStream,
    StorageAccessDenied,
    StorageError,
    StorageFailure,
    StorageUnreachable,
    check_key,
)
from camroll.server.storage.local import LocalBlobStore

_BLOCK = 4 * 2**20


class NoSpace(StorageFailure):
    """The replica's disk is full."""

    transient = True


class FolderTarget:
    kind = Kind.FOLDER

    def __init__(self, root: Path, *, create: bool = False) -> None:
        self.root = root
        self.where = str(root)
        if create:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise self._failure("create the folder", exc) from exc

    def _store(self) -> LocalBlobStore:
        if not self.root.is_dir():
            raise StorageUnreachable(
                f"The replica folder {self.root} is not there.",
                "Mount the disk that holds it (or create the folder again), then the copies resume by themselves.")
        try:
            return LocalBlobStore(self.root)
        except OSError as exc:
            raise self._failure("open the folder", exc) from exc

    def _path(self, sha256: str) -> Path:
        check_key(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def _failure(self, what: str, exc: OSError) -> StorageFailure:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return NoSpace(f"The disk of replica folder {self.root} is full ({what}).",
                           "Free space on it or use a larger disk; the copies resume by themselves.")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return StorageAccessDenied(f"camroll may not {what} in replica folder {self.root}: {exc.strerror}.",
                                       f"Give the user camroll runs as write access to {self.root} "
                                       f"(chown -R or chmod u+w).")
        if exc.errno == errno.EROFS:
            return StorageAccessDenied(f"The replica folder {self.root} is on a read-only file system ({what}).",
                                       "Mount the disk read-write (a disk with errors may have been remounted "
                                       "read-only: check it with fsck first).")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENODEV, errno.EIO, errno.ENXIO):
            return StorageUnreachable(f"Could not {what} in replica folder {self.root}: {exc.strerror}.",
                                      "Check that the disk is mounted and healthy; the copies resume by themselves.")
        return StorageFailure(f"Could not {what} in replica folder {self.root}: {exc.strerror or exc}.",
                              "Check the folder and its disk.")

    def put(self, sha256: str, source: Path) -> None:
        dest = self._path(sha256)
        store = self._store()
        tmp = store.root / ".tmp" / f"{sha256}.{uuid.uuid4().hex}"
        try:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                while block := src.read(_BLOCK):
                    dst.write(block)
                dst.flush()
                os.fsync(dst.fileno())
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
            for d in (dest.parent, dest.parent.parent, self.root):
                _fsync_dir(d)
        except OSError as exc:
            if exc.filename is not None and Path(exc.filename) == source:
                raise  # the source, not the replica
            raise self._failure(f"store {sha256}", exc) from exc
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def open(self, sha256: str) -> ReadStream:
        store = self._store()
        try:
            return store.open(sha256)
        except StorageError:
            raise
        except OSError as exc:
            raise self._failure(f"read {sha256}", exc) from exc

    def stat(self, sha256: str) -> BlobStat:
        store = self._store()
        try:
            return store.stat(sha256)
        except StorageError:
            raise
        except OSError as exc:
            raise self._failure(f"look up {sha256}", exc) from exc

    def checksum(self, sha256: str) -> str | None:
        self.stat(sha256)  # BlobNotFound if absent
        return None  # a plain file system keeps no checksum: read it back

    def delete(self, sha256: str) -> None:
        store = self._store()
        try:
            store.delete(sha256)
        except OSError as exc:
            raise self._failure(f"delete {sha256}", exc) from exc

    def list(self) -> Iterator[BlobStat]:
        store = self._store()
        try:
            yield from store.list()
        except OSError as exc:
            raise self._failure("list the copies", exc) from exc

    def check(self) -> None:
        probe = self._store().root / ".tmp" / f"probe-{uuid.uuid4().hex}"
        try:
            probe.write_bytes(b"camroll replica probe")
            if probe.read_bytes() != b"camroll replica probe":
                raise StorageFailure(f"The replica folder {self.root} gave back other bytes than were written.",
                                     "Check the disk (fsck, SMART) before trusting it with copies.")
            check_key(PROBE_SHA256)
        except OSError as exc:
            raise self._failure("write a probe file", exc) from exc
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()

    def close(self) -> None:
        pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
