"""Blob store on a local filesystem.

Two places a blob may live, both read through the same calls:

* its own file, ``<root>/ab/cd/<sha256>`` (``put_file``: a tus upload, a replica copy), written by
  temp file, fsync, rename;
* a member of a pack, ``<root>/packs/<token>.pack``, found through the pack index (``put_batch``: a
  batch of small files as one file, ``storage/packs.py``).

A lookup tries the blob's own file first, then the index.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from camroll.server.storage.base import (
    BlobNotFound,
    BlobStat,
    RangeReader,
    ReadStream,
    Span,
    TempCopies,
    check_key,
)
from camroll.server.storage.packs import (
    SUFFIX,
    Member,
    PackIndex,
    fsync_dir,
    new_pack_name,
    write_trailer,
)

_TMP_DIR = ".tmp"
PACKS_DIR = "packs"
_COPY_BLOCK = 1 << 20
# A pack is rewritten without its dead members once they are more than half of it (restic's prune
# uses the same kind of bound): the space comes back and no pack is copied for every delete.
_REPACK_BELOW = 0.5


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_range(src: Path | int, dst: int, offset: int, size: int) -> None:
    """``size`` bytes of ``src`` from ``offset`` to the end of the open file ``dst``."""
    fd = os.open(src, os.O_RDONLY) if isinstance(src, Path) else src
    try:
        left = size
        while left > 0:
            block = os.pread(fd, min(_COPY_BLOCK, left), offset + size - left)
            if not block:
                raise OSError(errno.EIO, f"pack ended before the {size} bytes at {offset}")
            os.write(dst, block)
            left -= len(block)
    finally:
        if isinstance(src, Path):
            os.close(fd)


class LocalBlobStore:
    def __init__(self, root: Path, copies: TempCopies | None = None) -> None:
        self.root = root
        self.copies = copies or TempCopies()
        self._tmp = root / _TMP_DIR
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._packs = root / PACKS_DIR
        self.index = PackIndex(self._packs)
        self._repacking = threading.Lock()

    def check(self) -> None:
        """Raise ``StorageFailure`` if the pack index is there but cannot be read."""
        self.index.lookup("0" * 64)

    def _path(self, sha256: str) -> Path:
        check_key(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put_file(self, sha256: str, source: Path) -> BlobStat:
        dest = self._path(sha256)
        try:
            # Re-used by a new upload: it counts as just written, so the orphan sweep's grace age spares
            # it until the asset row pointing at it is committed.
            os.utime(dest)
        except FileNotFoundError:
            if self.index.touch([sha256], time.time()):
                with contextlib.suppress(FileNotFoundError):
                    source.unlink()
                return self.stat(sha256)
            # not stored yet (or swept just now): store it below
        else:
            with contextlib.suppress(FileNotFoundError):
                source.unlink()
            return BlobStat(sha256, dest.stat().st_size)
        _fsync_file(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # Different filesystem: copy into our own temp dir first so the final rename stays atomic.
            tmp = self._tmp / f"{sha256}.{uuid.uuid4().hex}"
            try:
                with open(source, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 4 * 2**20)
                    dst.flush()
                    os.fsync(dst.fileno())
                os.replace(tmp, dest)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            with contextlib.suppress(FileNotFoundError):
                source.unlink()
        fsync_dir(dest.parent)
        # A new shard directory must itself be durable in its parent.
        fsync_dir(dest.parent.parent)
        fsync_dir(self.root)
        return BlobStat(sha256, dest.stat().st_size)

    def put_batch(self, source: Path, spans: Sequence[Span]) -> set[str]:
        """One pack for the new blobs: the staged file itself when most of it is new (a trailer appended,
        fsync, rename, fsync of the folder), else a copy of just the new spans; then one index
        transaction.  The pack is durable before its rows exist, so a crash leaves at most a pack with no
        rows, which ``sweep_leftovers`` removes."""
        first: dict[str, Span] = {}
        for span in spans:
            first.setdefault(check_key(span.sha256), span)
        reused: set[str] = set()
        for sha in first:
            with contextlib.suppress(FileNotFoundError):
                os.utime(self._path(sha))  # re-used: the orphan sweep's grace starts again
                reused.add(sha)
        reused |= self.index.touch([sha for sha in first if sha not in reused], time.time())
        new = [span for sha, span in first.items() if sha not in reused]
        if new:
            self._write_pack(source, new)
        with contextlib.suppress(FileNotFoundError):
            source.unlink()
        return reused

    def _write_pack(self, source: Path, new: list[Span]) -> None:
        if not self._packs.is_dir():
            self._packs.mkdir(exist_ok=True)
            fsync_dir(self.root)
        name = new_pack_name()
        dest = self._packs / name
        if sum(s.size for s in new) * 2 >= source.stat().st_size:
            with open(source, "ab") as f:
                write_trailer(f, new)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.replace(source, dest)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                # Another filesystem: a copy in our own temp folder keeps the final rename atomic.
                self._install(dest, source, [Span(s.sha256, s.offset, s.size) for s in new], whole=True)
        else:
            new = self._install(dest, source, new, whole=False)
        fsync_dir(self._packs)
        self.index.add(name, new, time.time())

    def _install(self, dest: Path, source: Path, spans: list[Span], *, whole: bool) -> list[Span]:
        """Write a pack at ``dest`` from ``source`` by way of a temp file: the whole file as it is, or only
        ``spans`` packed together with a trailer; returns the spans as they are in the new pack."""
        tmp = self._tmp / f"{dest.name}.{uuid.uuid4().hex}"
        placed: list[Span] = []
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                if whole:
                    _copy_range(source, fd, 0, source.stat().st_size)
                    placed = spans
                else:
                    src = os.open(source, os.O_RDONLY)
                    try:
                        for s in spans:
                            placed.append(Span(s.sha256, os.lseek(fd, 0, os.SEEK_CUR), s.size))
                            _copy_range(src, fd, s.offset, s.size)
                    finally:
                        os.close(src)
                    with os.fdopen(os.dup(fd), "ab") as f:
                        write_trailer(f, placed)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return placed

    def _member(self, sha256: str) -> Member | None:
        return self.index.lookup(check_key(sha256))

    def where(self, sha256: str) -> tuple[Path, int, int]:
        """The file and byte range (offset, size) that hold a blob now: for repair tools and for tests
        that damage a blob on purpose.  Raises ``BlobNotFound``."""
        path = self._path(sha256)
        with contextlib.suppress(FileNotFoundError):
            return path, 0, path.stat().st_size
        member = self._member(sha256)
        if member is None:
            raise BlobNotFound(sha256)
        return self._packs / member.pack, member.offset, member.size

    def open(self, sha256: str, offset: int = 0, length: int | None = None) -> ReadStream:
        path = self._path(sha256)
        try:
            raw = open(path, "rb")  # noqa: SIM115 - ownership passes to the caller
        except FileNotFoundError:
            pass
        else:
            if offset:
                raw.seek(offset)
            return RangeReader(raw, length)
        # A repack may move the member between the lookup and the open: look again then.
        for _ in range(3):
            member = self._member(sha256)
            if member is None:
                break
            try:
                raw = open(self._packs / member.pack, "rb")  # noqa: SIM115 - ownership passes to the caller
            except FileNotFoundError:
                continue
            start = min(max(offset, 0), member.size)
            left = member.size - start if length is None else max(0, min(length, member.size - start))
            raw.seek(member.offset + start)
            return RangeReader(raw, left)
        raise BlobNotFound(sha256)

    def stat(self, sha256: str) -> BlobStat:
        try:
            return BlobStat(sha256, self._path(sha256).stat().st_size)
        except FileNotFoundError:
            pass
        member = self._member(sha256)
        if member is None:
            raise BlobNotFound(sha256)
        return BlobStat(sha256, member.size, member.modified)

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file() or self._member(sha256) is not None

    def delete(self, sha256: str) -> None:
        path = self._path(sha256)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            fsync_dir(path.parent)
        pack = self.index.remove(sha256)
        if pack is not None:
            self._tidy(pack)

    def _tidy(self, pack: str) -> None:
        """After a member of ``pack`` was deleted: remove the pack once no member is left, rewrite it
        without its dead members once they are most of it."""
        with self._repacking:
            members = self.index.in_pack(pack)
            path = self._packs / pack
            if not members:
                self._drop_packs([pack])
                return
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                return  # rows without their pack: the scrub reports those blobs as missing
            if sum(m.size for m in members) >= size * _REPACK_BELOW:
                return
            name = new_pack_name()
            placed = self._install(self._packs / name, path,
                                   [Span(m.sha256, m.offset, m.size) for m in members], whole=False)
            fsync_dir(self._packs)
            # Only rows still in the old pack move; one deleted meanwhile stays deleted.
            self.index.move(pack, name, placed)
            self._drop_packs([p for p in (pack, name) if not self.index.in_pack(p)])

    def _drop_packs(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self._packs / name).unlink()
        if names:
            fsync_dir(self._packs)

    def sweep_leftovers(self, cutoff: float) -> int:
        """Packs no row points at (a crash between a pack's rename and its index commit, or a repack
        cut short) and temp files, last written before ``cutoff``."""
        if not self._packs.is_dir():
            return 0
        candidates = [p for p in self._packs.glob(f"*{SUFFIX}") if _older(p, cutoff)]
        temps = [p for p in self._tmp.iterdir() if _older(p, cutoff)] if self._tmp.is_dir() else []
        # The index is read after the folder: a pack listed above that got its rows since is kept.
        live = self.index.packs()
        gone = [p.name for p in candidates if p.name not in live]
        self._drop_packs(gone)
        for p in temps:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        return len(gone) + len(temps)

    @contextlib.contextmanager
    def local_file(self, sha256: str) -> Iterator[Path]:
        # Its own file: the blob itself, no copy, whatever its size (readers only, the contract says,
        # so sharing it is safe).  A packed blob is small; decoders get a bounded temporary copy.
        path = self._path(sha256)
        if path.is_file():
            yield path
            return
        with self.copies.copy(self, sha256) as copy:
            yield copy

    def list(self) -> Iterator[BlobStat]:
        for first in sorted(self.root.iterdir()):
            if len(first.name) != 2 or not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                if not second.is_dir():
                    continue
                for blob in second.iterdir():
                    if len(blob.name) == 64 and blob.name.startswith(first.name + second.name):
                        try:
                            st = blob.stat()
                        except FileNotFoundError:
                            continue
                        yield BlobStat(blob.name, st.st_size, st.st_mtime)
        for m in self.index.members():
            # A key with its own file too (two puts that raced) was listed above: once is enough.
            if not self._path(m.sha256).exists():
                yield BlobStat(m.sha256, m.size, m.modified)


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False
