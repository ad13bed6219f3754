"""Parsing and bounding a WebDAV path.  Every path a client sends (the request path, Destination)
passes through :func:`parse` before anything looks it up: NUL and control characters, ``.`` and
``..`` segments, over-long paths and deep trees are refused with a sentence naming the fix."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from camroll import wire

PREFIX = "/dav"
# Deep enough for any camera roll layout; a deeper tree is a hostile or broken client.
MAX_DEPTH = 64
MAX_SEGMENT = 255
MAX_PATH_BYTES = wire.MAX_PATH


class DavPathError(ValueError):
    """A path the door refuses; the message says why and what to send instead."""


class Area(enum.Enum):
    ROOT = "root"  # /dav/
    FILES_ROOT = "files_root"  # /dav/files/
    FILES = "files"  # /dav/files/USER/<rel>
    UPLOADS_ROOT = "uploads_root"  # /dav/uploads/
    UPLOADS = "uploads"  # /dav/uploads/USER/<folder>/<chunk>


@dataclass(frozen=True)
class DavPath:
    area: Area
    user: str = ""
    # The path inside the user's files (no leading or trailing slash; "" is the user's root), or for
    # uploads the folder name and the chunk name.
    rel: str = ""

    @property
    def segments(self) -> list[str]:
        return self.rel.split("/") if self.rel else []


def check_segment(seg: str) -> None:
    if seg in (".", ".."):
        raise DavPathError(f"The path has a '{seg}' segment; send paths without '.' or '..'.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in seg):
        raise DavPathError("The path has a NUL or control character; rename the file without it.")
    if "\\" in seg:
        raise DavPathError("The path has a backslash; use '/' between folders.")
    if len(seg.encode("utf-8", "surrogatepass")) > MAX_SEGMENT:
        raise DavPathError(f"A path segment is longer than {MAX_SEGMENT} bytes; shorten that name.")


def parse(path: str) -> DavPath:
    """``path`` is the decoded request path starting with ``/dav``."""
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise DavPathError(f"The path is longer than {MAX_PATH_BYTES} bytes; use shorter folder and file names.")
    if path != PREFIX and not path.startswith(PREFIX + "/"):
        raise DavPathError(f"WebDAV lives under {PREFIX}/; use https://HOST{PREFIX}/files/USER/.")
    rest = path[len(PREFIX):].strip("/")
    segs = [s for s in rest.split("/") if s != ""] if rest else []
    if "//" in rest:
        raise DavPathError("The path has an empty segment ('//'); send each folder name once.")
    if len(segs) > MAX_DEPTH:
        raise DavPathError(f"The path is more than {MAX_DEPTH} folders deep; use a flatter tree.")
    for seg in segs:
        check_segment(seg)
    if not segs:
        return DavPath(Area.ROOT)
    head, tail = segs[0], segs[1:]
    if head == "files":
        if not tail:
            return DavPath(Area.FILES_ROOT)
        return DavPath(Area.FILES, tail[0], "/".join(tail[1:]))
    if head == "uploads":
        if not tail:
            return DavPath(Area.UPLOADS_ROOT)
        if len(tail) > 3:
            raise DavPathError("An upload folder holds chunks only: /dav/uploads/USER/FOLDER/CHUNK.")
        return DavPath(Area.UPLOADS, tail[0], "/".join(tail[1:]))
    raise DavPathError(f"There is nothing at {path}; your files are at {PREFIX}/files/USER/.")


def destination(header: str) -> DavPath:
    """The Destination header (an absolute URL or a path), decoded and checked like a request path."""
    if len(header) > 3 * MAX_PATH_BYTES:
        raise DavPathError(f"The Destination header is longer than {3 * MAX_PATH_BYTES} characters.")
    raw = urlsplit(header).path if "://" in header else header
    return parse(unquote(raw, errors="strict"))
