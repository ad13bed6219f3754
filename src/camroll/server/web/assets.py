"""The UI's static files, read once at start and addressed by a content version.

Every URL carries the version (a hash of all the files), so browsers may cache them forever and a new
release is fetched at once: ``/static/<version>/js/app.js``.  Modules import each other with relative
paths, which keeps the version in every URL without a build step.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
INDEX = "index.html"
VERSION_MARK = "{{version}}"

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str


@dataclass(frozen=True)
class Bundle:
    version: str
    files: dict[str, StaticFile]
    index: bytes


def _media_type(path: Path) -> str:
    return _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@lru_cache(maxsize=1)
def bundle() -> Bundle:
    """All static files in memory (a few hundred KB), so a request never touches the filesystem
    and a request path can only ever name one of these files."""
    files: dict[str, StaticFile] = {}
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(STATIC_DIR).as_posix()
        body = path.read_bytes()
        digest.update(rel.encode() + b"\0" + body + b"\0")
        files[rel] = StaticFile(body, _media_type(path))
    version = digest.hexdigest()[:12]
    index = files.pop(INDEX).body.replace(VERSION_MARK.encode(), version.encode())
    return Bundle(version, files, index)
