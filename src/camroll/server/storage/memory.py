"""Blob store in a dict: for tests and for trying things out; nothing survives the process."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from camroll.server.storage.base import (
    BlobNotFound,
    BlobStat,
    RangeReader,
    ReadStream,
    Span,
    TempCopies,
    check_key,
    read_span,
)


class MemoryBlobStore:
    def __init__(self, copies: TempCopies | None = None) -> None:
        self.copies = copies or TempCopies()
        self._blobs: dict[str, bytes] = {}
        self._put_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def put_file(self, sha256: str, source: Path) -> BlobStat:
        check_key(sha256)
        with self._lock:
            existing = self._blobs.get(sha256)
            if existing is not None:
                # As in the local store: a re-used blob counts as just written (the orphan sweep's grace).
                self._put_at[sha256] = time.time()
                return BlobStat(sha256, len(existing))
        data = source.read_bytes()
        with self._lock:
            data = self._blobs.setdefault(sha256, data)
            self._put_at[sha256] = time.time()
        return BlobStat(sha256, len(data))

    def _get(self, sha256: str) -> bytes:
        check_key(sha256)
        with self._lock:
            data = self._blobs.get(sha256)
        if data is None:
            raise BlobNotFound(sha256)
        return data

    def put_batch(self, source: Path, spans: Sequence[Span]) -> set[str]:
        reused: set[str] = set()
        for span in {check_key(s.sha256): s for s in reversed(spans)}.values():
            with self._lock:
                if span.sha256 in self._blobs:
                    reused.add(span.sha256)
                    self._put_at[span.sha256] = time.time()
                    continue
            data = read_span(source, span)
            with self._lock:
                self._blobs.setdefault(span.sha256, data)
                self._put_at[span.sha256] = time.time()
        source.unlink(missing_ok=True)
        return reused

    def open(self, sha256: str, offset: int = 0, length: int | None = None) -> ReadStream:
        raw = io.BytesIO(self._get(sha256))
        raw.seek(offset)
        return RangeReader(raw, length)

    def stat(self, sha256: str) -> BlobStat:
        return BlobStat(sha256, len(self._get(sha256)))

    def exists(self, sha256: str) -> bool:
        check_key(sha256)
        with self._lock:
            return sha256 in self._blobs

    def delete(self, sha256: str) -> None:
        check_key(sha256)
        with self._lock:
            self._blobs.pop(sha256, None)
            self._put_at.pop(sha256, None)

    def local_file(self, sha256: str) -> AbstractContextManager[Path]:
        return self.copies.copy(self, sha256)

    def list(self) -> Iterator[BlobStat]:
        with self._lock:
            items = [(key, data, self._put_at.get(key)) for key, data in self._blobs.items()]
        for key, data, put_at in items:
            yield BlobStat(key, len(data), put_at)
