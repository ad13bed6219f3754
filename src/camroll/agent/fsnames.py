"""File names as the disk holds them, which need not be UTF-8.

On POSIX a name is bytes.  Python hands them over as ``str`` with each byte that is not UTF-8 turned into
a lone surrogate (``os.fsdecode(b'caf\\xe9') == 'caf\\udce9'``): that string opens the file, but it cannot
be encoded for JSON, HTTP, a terminal or SQLite ``TEXT``.  The agent keeps such strings in memory and
converts them only where they leave it:

- the state DB holds a path as ``TEXT`` when it is UTF-8 and as a ``BLOB`` of its exact bytes otherwise
  (:func:`to_db` / :func:`from_db`), so the file is found again byte for byte;
- the API gets the readable form (:func:`shown`, the same text as ``wire.display_name``) plus the exact
  bytes in base64 (:func:`raw_for_wire`), which the server keeps for a restore;
- people (status, why, problems, summaries, logs) see :func:`shown`: ``IMG_caf\\xe9.jpg``.
"""

from __future__ import annotations

import os
import re

from camroll import wire

_ESCAPE = re.compile(rb"\\x([0-9a-f]{2})")


def is_text(path: str) -> bool:
    """True when ``path`` is valid UTF-8 text (no bytes smuggled in as surrogates)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(path: str) -> str:
    """``path`` for people and for the API's ``path`` fields: undecodable bytes as ``\\xNN``."""
    return path if is_text(path) else wire.display_name(os.fsencode(path))


def unshown(text: str) -> str | None:
    """The path :func:`shown` printed as ``text`` (copied from 'camroll problems' into 'camroll why'), or
    None when ``text`` has no ``\\xNN`` to undo."""
    if "\\x" not in text:
        return None
    raw = _ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), os.fsencode(text))
    return os.fsdecode(raw) if raw != os.fsencode(text) else None


def raw_for_wire(path: str) -> str | None:
    """Base64 of ``path``'s exact bytes when it is not UTF-8, else None (nothing extra to send)."""
    return None if is_text(path) else wire.raw_name_to_wire(os.fsencode(path))


def to_db(path: str) -> str | bytes:
    """The value the state DB stores for ``path``."""
    return path if is_text(path) else os.fsencode(path)


def from_db(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _names(path: str) -> tuple[str, str, str | None]:
    """(path, filename, path_raw) for the API.  The readable form of a name that is not UTF-8 can be four
    times longer than its bytes; it is clipped to the API's bounds, since the server rebuilds it from
    ``path_raw`` anyway."""
    raw = raw_for_wire(path)
    if raw is None:
        return path, os.path.basename(path), None
    return shown(path)[:wire.MAX_PATH], shown(os.path.basename(path))[:wire.MAX_FILENAME], raw


def upload_metadata(path: str) -> dict[str, str]:
    """The tus ``Upload-Metadata`` entries naming the file."""
    shown_path, filename, raw = _names(path)
    meta = {wire.META_FILENAME: filename, wire.META_PATH: shown_path}
    if raw is not None:
        meta[wire.META_PATH_RAW] = raw
    return meta


def check_item(sha256: str, path: str, mtime_ns: int) -> wire.CheckItem:
    """The batch-check entry for one hashed file (the server records the path for an asset it has)."""
    shown_path, filename, raw = _names(path)
    return wire.CheckItem(sha256=sha256, path=shown_path, filename=filename, mtime_ns=mtime_ns, path_raw=raw)
