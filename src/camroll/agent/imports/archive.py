"""The parts of an export, read where they are: zip and tar(.gz) archives and plain folders.

Contract of a :class:`Source`:
- ``members()`` lists regular files only, each once, with a *safe* name (see :func:`safe_name`); links,
  devices and names that cannot be made safe are reported in ``refused`` and never opened or followed.
- ``open(member)`` returns a fresh binary stream over the member's bytes (as many times as asked: a resumed
  upload reopens it and skips what the server has).  The stream never yields more than ``member.size``
  bytes, so a member whose header lies (a zip bomb) cannot make a reader run away.
- Nothing is written to disk and the archive is never modified.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, BinaryIO, Protocol, cast

# Bounds on what an archive may make us hold in memory: names and the index of members.
MAX_NAME = 4096
MAX_COMPONENT_BYTES = 255
MAX_MEMBERS = 2_000_000


class RefusedReason(Enum):
    UNSAFE_NAME = "unsafe_name"
    LINK = "link"
    SPECIAL = "special_file"
    TOO_MANY = "too_many_members"
    DUPLICATE = "duplicate_name"

    @property
    def sentence(self) -> str:
        return _REFUSED[self]


_REFUSED = {
    RefusedReason.UNSAFE_NAME: "its name cannot be made safe (empty, only '..' or control characters)",
    RefusedReason.LINK: "it is a link; links inside an export are never followed",
    RefusedReason.SPECIAL: "it is not a regular file (device, fifo or socket)",
    RefusedReason.TOO_MANY: f"the part has more than {MAX_MEMBERS:,} members; the rest were not read",
    RefusedReason.DUPLICATE: "another member of the same part has the same name",
}


def safe_name(raw: str) -> str | None:
    """``raw`` as a relative POSIX path with no '.', '..', empty, absolute or drive parts and no control
    characters (NUL included), each part at most 255 UTF-8 bytes and the whole at most 4096 characters;
    None when nothing is left.  Pure: the name is only ever used as a key and a label, never opened."""
    text = raw.replace("\\", "/")
    parts: list[str] = []
    for part in text.split("/"):
        part = "".join(c for c in part if c.isprintable() or c == " ").strip()
        if len(part) == 2 and part[1] == ":" and not parts:
            continue  # a Windows drive letter
        if part in ("", ".", ".."):
            continue
        encoded = part.encode("utf-8", "surrogateescape")
        if len(encoded) > MAX_COMPONENT_BYTES:
            part = encoded[:MAX_COMPONENT_BYTES].decode("utf-8", "ignore")
        parts.append(part)
    if not parts:
        return None
    name = "/".join(parts)
    return name[:MAX_NAME] if len(name) > MAX_NAME else name


@dataclass(frozen=True)
class Member:
    """One regular file in one part.  ``name`` is safe; ``key`` is what the part opens it by."""

    part: str
    name: str
    size: int
    key: str

    @property
    def dir(self) -> str:
        return posixpath.dirname(self.name)

    @property
    def base(self) -> str:
        return posixpath.basename(self.name)

    @property
    def label(self) -> str:
        return f"{os.path.basename(self.part)}:{self.name}"


@dataclass(frozen=True)
class Refused:
    part: str
    raw_name: str
    reason: RefusedReason


class Source(Protocol):
    path: str
    refused: list[Refused]

    def members(self) -> Iterator[Member]: ...

    def open(self, member: Member) -> BinaryIO: ...

    def close(self) -> None: ...


class _Bounded(io.RawIOBase):
    """At most ``limit`` bytes of ``inner``, then end of stream, whatever ``inner`` still has."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self.inner = inner
        self.left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            return 0
        view = memoryview(buf)[: min(len(buf), self.left)]
        data = self.inner.read(len(view))
        view[: len(data)] = data
        self.left -= len(data)
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def bounded(inner: IO[bytes], limit: int) -> BinaryIO:
    return cast(BinaryIO, io.BufferedReader(_Bounded(inner, limit), 1024 * 1024))


@dataclass
class _Index:
    path: str
    refused: list[Refused] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    count: int = 0

    def admit(self, raw: str, size: int, key: str) -> Member | None:
        if self.count >= MAX_MEMBERS:
            if self.count == MAX_MEMBERS:
                self.refused.append(Refused(self.path, raw, RefusedReason.TOO_MANY))
                self.count += 1
            return None
        name = safe_name(raw)
        if name is None:
            self.refused.append(Refused(self.path, raw, RefusedReason.UNSAFE_NAME))
            return None
        if name in self.seen:
            self.refused.append(Refused(self.path, raw, RefusedReason.DUPLICATE))
            return None
        self.seen.add(name)
        self.count += 1
        return Member(self.path, name, size, key)


class ZipSource:
    def __init__(self, path: str) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path)
        self.refused: list[Refused] = []

    def members(self) -> Iterator[Member]:
        index = _Index(self.path, self.refused)
        for info in self._zip.infolist():
            if info.is_dir():
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                self.refused.append(Refused(self.path, info.filename, RefusedReason.LINK))
                continue
            # Many zip writers set permission bits only (no file type): those are regular files.
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                self.refused.append(Refused(self.path, info.filename, RefusedReason.SPECIAL))
                continue
            m = index.admit(info.filename, info.file_size, info.filename)
            if m is not None:
                yield m

    def open(self, member: Member) -> BinaryIO:
        return bounded(self._zip.open(member.key), member.size)

    def close(self) -> None:
        self._zip.close()


class TarSource:
    """A tar, tar.gz, tgz (or bz2/xz) part.  Compressed tars have no index, so reopening a member reads
    the part from its start up to it: fine for resuming one upload, which is rare."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._tar = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by close())
        self.refused: list[Refused] = []
        self._infos: dict[str, tarfile.TarInfo] = {}

    def members(self) -> Iterator[Member]:
        index = _Index(self.path, self.refused)
        for info in self._tar:
            if info.isdir():
                continue
            if info.issym() or info.islnk():
                self.refused.append(Refused(self.path, info.name, RefusedReason.LINK))
                continue
            if not info.isreg():
                self.refused.append(Refused(self.path, info.name, RefusedReason.SPECIAL))
                continue
            m = index.admit(info.name, info.size, info.name)
            if m is not None:
                self._infos[m.name] = info
                yield m

    def open(self, member: Member) -> BinaryIO:
        f = self._tar.extractfile(self._infos[member.name])
        assert f is not None  # regular files only
        return bounded(f, member.size)

    def close(self) -> None:
        self._tar.close()


class DirSource:
    """An extracted export: walked without following links; members keyed by their path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.refused: list[Refused] = []

    def members(self) -> Iterator[Member]:
        index = _Index(self.path, self.refused)
        for root, dirs, files in os.walk(self.path, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                rel = os.path.relpath(full, self.path)
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    self.refused.append(Refused(self.path, rel, RefusedReason.LINK))
                    continue
                if not stat.S_ISREG(st.st_mode):
                    self.refused.append(Refused(self.path, rel, RefusedReason.SPECIAL))
                    continue
                m = index.admit(rel, st.st_size, full)
                if m is not None:
                    yield m

    def open(self, member: Member) -> BinaryIO:
        fd = os.open(member.key, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        return bounded(os.fdopen(fd, "rb"), member.size)

    def close(self) -> None:
        pass


class NotAnExport(Exception):
    """A path given on the command line is neither a folder nor a zip/tar part; ``str`` says why."""


def open_source(path: str | Path) -> Source:
    p = str(path)
    if os.path.isdir(p):
        return DirSource(p)
    if not os.path.exists(p):
        raise NotAnExport(f"{p} does not exist")
    try:
        if zipfile.is_zipfile(p):
            return ZipSource(p)
        if tarfile.is_tarfile(p):
            return TarSource(p)
    except OSError as exc:
        raise NotAnExport(f"{p} cannot be read: {exc.strerror or exc}") from exc
    except (zipfile.BadZipFile, tarfile.TarError) as exc:
        raise NotAnExport(f"{p} is a damaged archive: {exc}") from exc
    raise NotAnExport(f"{p} is neither a folder, a .zip nor a .tgz/.tar part of an export")


def read_bounded(source: Source, member: Member, limit: int) -> bytes | None:
    """The whole member if it is at most ``limit`` bytes, else None (a huge JSON is not loaded)."""
    if member.size > limit:
        return None
    with source.open(member) as f:
        data = f.read(limit + 1)
    return data if len(data) <= limit else None
