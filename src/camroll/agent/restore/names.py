"""Where a restore writes each file: ``DEST/<device name>/<the path the device recorded>``, made safe.

A path comes from the server, so it is untrusted text: absolute (``/home/ann/...``, ``C:\\Users\\...``),
with ``..`` components, NUL bytes or names longer than a file system allows.  Each becomes a relative
path of plain components that stays under DEST: the leading ``/`` and a drive letter's colon go, ``.``
and empty components go, ``..`` becomes ``__``, NUL becomes ``_``, a component over 255 bytes is cut
(keeping its extension and a digest of the whole name), and a path too long for PATH_MAX keeps only its
file name under ``long-paths/<digest>/``.  Names that are not UTF-8 are restored from their exact bytes
(the server keeps them as ``path_raw``).  Everything here is pure: bytes in, bytes out.
"""

from __future__ import annotations

import hashlib
import re

from camroll import wire

MAX_COMPONENT = 255  # bytes: ext4, XFS, btrfs, ZFS and APFS all stop there
# PATH_MAX is 4096 bytes with DEST itself in front.
MAX_RELATIVE = 3000
NO_DEVICE = b"uploaded-without-a-device"
# Where the restore keeps its own files, directly under DEST.
WORK_DIR = ".camroll-restore"
_DRIVE = re.compile(rb"^[A-Za-z]:$")


def _clip(component: bytes) -> bytes:
    if len(component) <= MAX_COMPONENT:
        return component
    digest = b"~" + hashlib.sha256(component).hexdigest()[:8].encode()
    dot = component.rfind(b".")
    ext = component[dot:] if dot > 0 and len(component) - dot <= 16 else b""
    return _whole_chars(component[:MAX_COMPONENT - len(digest) - len(ext)]) + digest + ext


def _whole_chars(cut: bytes) -> bytes:
    """``cut`` without a UTF-8 character it split in half at its end."""
    while cut and (cut[-1] & 0xC0) == 0x80:
        cut = cut[:-1]
    if cut and cut[-1] >= 0xC0:
        cut = cut[:-1]
    return cut


def component(name: bytes) -> bytes:
    """One name, safe as a single path component (no separator, NUL, ``.`` or ``..``, not too long)."""
    name = name.replace(b"\0", b"_").replace(b"/", b"_")
    if name in (b"", b".", b".."):
        return b"_" if name == b"" else b"_" * len(name)
    return _clip(name)


def components(path: bytes) -> list[bytes]:
    """``path`` as the safe components of a relative path (none left for a path of only separators)."""
    windows = b"\\" in path and b"/" not in path
    parts = path.split(b"\\" if windows else b"/")
    out: list[bytes] = []
    for i, part in enumerate(parts):
        part = part.replace(b"\0", b"_")
        if part in (b"", b"."):
            continue
        if part == b"..":
            part = b"__"
        elif i == 0 and _DRIVE.match(part):
            part = part[:1]
        out.append(_clip(part))
    return out


def device_path(info: wire.AssetFileInfo) -> bytes:
    """The exact bytes of the path a device recorded (from ``path_raw`` when it was not UTF-8)."""
    if info.path_raw is not None:
        try:
            return wire.raw_name_from_wire(info.path_raw)
        except ValueError:
            pass
    return info.path.encode("utf-8", "surrogateescape")


def relative(device: str | None, path: bytes, filename: str) -> bytes:
    """Where under DEST a file recorded at ``path`` by ``device`` (None: uploaded without one) is written."""
    top = component(device.encode("utf-8", "surrogateescape")) if device else NO_DEVICE
    if top.lower() == WORK_DIR.encode():  # case-insensitive disks (APFS, exFAT) too
        top = b"_" + top
    parts = components(path) or [component(filename.encode("utf-8", "surrogateescape"))]
    rel = b"/".join([top, *parts])
    if len(rel) > MAX_RELATIVE:
        rel = b"/".join([top, b"long-paths", hashlib.sha256(path).hexdigest()[:16].encode(), parts[-1]])
    return rel


def numbered(rel: bytes, n: int, word: bytes = b"") -> bytes:
    """``a/IMG.jpg`` as ``a/IMG (2).jpg`` (``word`` first when given: ``a/IMG (restored 2).jpg``)."""
    head, sep, name = rel.rpartition(b"/")
    dot = name.rfind(b".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 and len(name) - dot <= 16 else (name, b"")
    label = b" ".join(x for x in (word, str(n).encode() if n > 1 or not word else b"") if x)
    stem = _whole_chars(stem[:MAX_COMPONENT - len(ext) - len(label) - 3])
    return head + sep + stem + b" (" + label + b")" + ext
