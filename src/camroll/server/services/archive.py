"""Several originals as one zip, streamed as it is written: stored, not deflated (photos and videos
are already compressed), ZIP64 where sizes need it, names made unique within the archive."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from camroll.server.context import Context
from camroll.server.models import Asset
from camroll.server.problems import ProblemError
from camroll.server.repositories import assets as repo
from camroll.server.services.auth import Principal
from camroll.server.services.media import capture_time

_READ = 1 << 20


@dataclass(frozen=True)
class Entry:
    name: str
    sha256: str
    size: int
    date_time: tuple[int, int, int, int, int, int]


class _Sink(io.RawIOBase):
    """A write-only, unseekable stream whose bytes the generator hands on as they arrive; zipfile
    then writes data descriptors instead of seeking back to patch each local header."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._chunks.append(bytes(b))
        self._pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def unique_names(names: Sequence[str]) -> list[str]:
    """``IMG_1.jpg``, ``IMG_1 (1).jpg``, ...: the same order, no name twice, no directories."""
    seen: set[str] = set()
    out: list[str] = []
    for raw in names:
        name = PurePosixPath(raw.replace("\\", "/")).name.strip() or "file"
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext = name, ""
        candidate, n = name, 0
        while candidate.lower() in seen:
            n += 1
            candidate = f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})"
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def _date_time(a: Asset) -> tuple[int, int, int, int, int, int]:
    t = capture_time(a)
    if t.year < 1980:  # the zip format cannot express earlier times
        return (1980, 1, 1, 0, 0, 0)
    return (t.year, t.month, t.day, t.hour, t.minute, t.second)


def entries(ctx: Context, who: Principal, ids: Sequence[int]) -> list[Entry]:
    with ctx.db() as db:
        found = repo.owned(db, who.user_id, ids)
        missing = sorted(set(ids) - {a.id for a in found})
        if missing:
            shown = ", ".join(str(i) for i in missing[:10])
            raise ProblemError(404, "not_found", f"You have no asset with id {shown}.",
                               "Pick assets from your timeline; ids come from GET /api/v1/timeline.")
        names = unique_names([a.filename or f"{a.id}" for a in found])
        return [Entry(n, a.sha256, a.size, _date_time(a)) for n, a in zip(names, found, strict=True)]


def stream(ctx: Context, items: Sequence[Entry]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for e in items:
            info = zipfile.ZipInfo(e.name, date_time=e.date_time)
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = e.size
            src = ctx.blobs.open(e.sha256)
            try:
                with zf.open(info, "w", force_zip64=e.size >= zipfile.ZIP64_LIMIT) as dst:
                    while block := src.read(_READ):
                        dst.write(block)
                        if data := sink.take():
                            yield data
            finally:
                src.close()
            if data := sink.take():
                yield data
    if data := sink.take():
        yield data
