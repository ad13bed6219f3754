"""Where thumbnails live: beside the originals, so a replica that stores originals in S3 needs no shared disk.

Keyed by the blob's SHA-256, the size and the recipe's version (``camroll.media.thumbs.VERSION``): a
thumbnail made by an older recipe is simply not found, so the thumbnail endpoint queues it again.  They
can always be made again from the original, so losing one is harmless.

* ``LocalThumbStore``: ``<data>/thumbs/<sha[:2]>/<sha>-<size>-v<N>.webp`` (the layout since 0.1).
* ``S3ThumbStore``: ``PREFIX/thumbs/<sha[:2]>/<sha>-<size>-v<N>.webp`` in the originals' bucket.

Every implementation passes ``tests/server/test_thumb_store_conformance.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from camroll.server.storage.base import BlobNotFound, ReadStream, check_key

if TYPE_CHECKING:
    from camroll.server.storage.s3 import S3BlobStore

# The same literal as wire.ThumbSize; storage does not import the wire protocol.
ThumbSize = Literal["grid", "preview"]
SIZES: tuple[ThumbSize, ...] = ("grid", "preview")
THUMB_MIME = "image/webp"


def thumb_name(sha256: str, size: ThumbSize) -> str:
    from camroll.media.thumbs import VERSION

    check_key(sha256)
    return f"{sha256[:2]}/{sha256}-{size}-v{VERSION}.webp"


@runtime_checkable
class ThumbStore(Protocol):
    """Thumbnails by (blob SHA-256, size).  Keys are checked like blob keys (``InvalidKey``)."""

    def has_all(self, sha256: str) -> bool:
        """True if every size in ``SIZES`` is stored."""
        ...

    def making(self, sha256: str, sizes: Sequence[ThumbSize] = SIZES) -> AbstractContextManager[dict[ThumbSize, Path]]:
        """Local paths to write each size's file to (a decoder in a child process writes them).

        When the context exits normally, every file written becomes the stored thumbnail of its size,
        atomically (a reader sees the old one, none, or the whole new one); a size whose file was not
        written is left as it was.  On an exception nothing more is stored and temporary files are
        removed.  The writer must write each file atomically itself (temp file and rename), since on the
        local store the path may be the final place."""
        ...

    def open(self, sha256: str, size: ThumbSize) -> tuple[ReadStream, int]:
        """The thumbnail's bytes as a stream and its length; ``BlobNotFound`` if absent.  The caller closes it."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove every size.  Idempotent."""
        ...


class LocalThumbStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str, size: ThumbSize) -> Path:
        return self.root / thumb_name(sha256, size)

    def has_all(self, sha256: str) -> bool:
        return all(self.path(sha256, s).is_file() for s in SIZES)

    @contextlib.contextmanager
    def making(self, sha256: str, sizes: Sequence[ThumbSize] = SIZES) -> Iterator[dict[ThumbSize, Path]]:
        # The final paths: the writer renames into place itself, so there is nothing to do afterwards.
        yield {s: self.path(sha256, s) for s in sizes}

    def open(self, sha256: str, size: ThumbSize) -> tuple[ReadStream, int]:
        try:
            f = open(self.path(sha256, size), "rb")  # noqa: SIM115 - ownership passes to the caller
        except FileNotFoundError:
            raise BlobNotFound(f"{sha256} {size}") from None
        return f, os.fstat(f.fileno()).st_size

    def delete(self, sha256: str) -> None:
        for s in SIZES:
            self.path(sha256, s).unlink(missing_ok=True)


class S3ThumbStore:
    """Thumbnails as objects in the originals' bucket, through the blob store's client and error messages."""

    def __init__(self, blobs: S3BlobStore, tmp_dir: Path | None = None) -> None:
        self.blobs = blobs
        self.tmp_dir = tmp_dir

    def key(self, sha256: str, size: ThumbSize) -> str:
        return self.blobs.key("thumbs", thumb_name(sha256, size))

    def _exists(self, key: str, sha256: str) -> bool:
        from camroll.server.storage.s3 import _is_missing

        try:
            self.blobs.client.head_object(Bucket=self.blobs.bucket, Key=key)
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise self.blobs.failure(f"look up the thumbnails of {sha256}", exc) from exc
        return True

    def has_all(self, sha256: str) -> bool:
        return all(self._exists(self.key(sha256, s), sha256) for s in SIZES)

    @contextlib.contextmanager
    def making(self, sha256: str, sizes: Sequence[ThumbSize] = SIZES) -> Iterator[dict[ThumbSize, Path]]:
        keys = {s: self.key(sha256, s) for s in sizes}  # checks the key before anything is made
        if self.tmp_dir is not None:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"thumbs-{sha256[:16]}-", dir=self.tmp_dir))
        try:
            paths = {s: work / f"{s}.webp" for s in sizes}
            yield paths
            for s, path in paths.items():
                if path.is_file():
                    # One PUT: a thumbnail is small, and an S3 object appears whole or not at all.
                    with open(path, "rb") as body:
                        self.blobs.call(f"store the {s} thumbnail of {sha256}", self.blobs.client.put_object,
                                        Bucket=self.blobs.bucket, Key=keys[s], Body=body, ContentType=THUMB_MIME)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def open(self, sha256: str, size: ThumbSize) -> tuple[ReadStream, int]:
        from camroll.server.storage.s3 import _Body, _is_missing

        what = f"read the {size} thumbnail of {sha256}"
        key = self.key(sha256, size)
        try:
            resp = self.blobs.client.get_object(Bucket=self.blobs.bucket, Key=key)
        except Exception as exc:
            if _is_missing(exc):
                raise BlobNotFound(f"{sha256} {size}") from None
            raise self.blobs.failure(what, exc) from exc
        return _Body(self.blobs, resp["Body"], what), int(resp["ContentLength"])

    def delete(self, sha256: str) -> None:
        for s in SIZES:
            self.blobs.call(f"delete the thumbnails of {sha256}", self.blobs.client.delete_object,
                            Bucket=self.blobs.bucket, Key=self.key(sha256, s))
