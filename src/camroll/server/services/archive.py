"""Several originals as one zip, streamed as it is written: stored, not deflated (photos and videos
are already compressed), ZIP64 where sizes need it, names made safe and unique within the archive
(names come from devices: anything may be in them)."""

from __future__ import annotations

import io
import unicodedata
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from camroll.media.types import SUPPORTED
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


# Characters no file name in the zip may hold: separators (a name must not climb out of the folder it is
# unpacked in), characters Windows refuses, and direction overrides that disguise an extension.
_FORBIDDEN = frozenset('/\\<>:"|?*') | frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
MAX_NAME = 200


def safe_name(raw: str) -> str:
    """``raw`` as one harmless file name: the last path part, no control characters, no separators, no
    '.' or '..', at most ``MAX_NAME`` characters (keeping the extension); '' if nothing is left."""
    name = unicodedata.normalize("NFC", raw.replace("\\", "/").rsplit("/", 1)[-1])
    kept = []
    for ch in name:
        category = unicodedata.category(ch)
        if category == "Cs":  # a lone surrogate (a name that was not UTF-8) cannot go into a zip
            kept.append("\ufffd")
        elif category == "Cc":  # NUL, newlines, escapes: dropped
            continue
        elif ch in _FORBIDDEN:
            kept.append("_")
        else:
            kept.append(ch)
    name = "".join(kept).strip().rstrip(". ")
    if not name.strip("."):
        return ""
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        ext = f".{ext}" if dot and stem and len(ext) <= 10 else ""
        name = name[:MAX_NAME - len(ext)].rstrip(". ") + ext
    return name


def _fallback(asset_id: int, raw: str, mime: str | None) -> str:
    """``<id>.<ext>`` for an asset whose name is unusable: the extension it had, else its type's."""
    dot = raw.rfind(".")
    ext = safe_name(raw[dot:]) if dot >= 0 else ""
    if not (ext.startswith(".") and 1 < len(ext) <= 10 and ext[1:].isalnum()):
        ext = next((m.extensions[0] for m in SUPPORTED if m.mime == mime), "")
    return f"{asset_id}{ext.lower()}"


def unique_names(names: Sequence[str], fallbacks: Sequence[str] | None = None) -> list[str]:
    """``IMG_1.jpg``, ``IMG_1 (1).jpg``, ...: the same order, each made safe (:func:`safe_name`, or its
    fallback when nothing is left), no name twice, ignoring case and Unicode normal form."""
    seen: set[str] = set()
    out: list[str] = []
    for i, raw in enumerate(names):
        name = safe_name(raw) or (fallbacks[i] if fallbacks else "") or "file"
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext = name, ""
        candidate, n = name, 0
        while candidate.casefold() in seen:
            n += 1
            candidate = f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})"
        seen.add(candidate.casefold())
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
        names = unique_names([a.filename for a in found], [_fallback(a.id, a.filename, a.mime) for a in found])
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
