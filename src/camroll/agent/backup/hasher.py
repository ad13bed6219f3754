"""SHA-256 of a file, sniffing its media type from the first bytes in the same read."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from camroll.agent.state.db import StatKey
from camroll.media.types import SNIFF_BYTES, MediaType, sniff

READ_SIZE = 1024 * 1024


class FileChanged(Exception):
    """The file's stat changed while it was read, so the hash may not match any version of it."""


class NotMedia(Exception):
    """The file is not a photo or video camroll backs up; ``str`` is the reason shown to the user."""


@dataclass(frozen=True)
class HashResult:
    sha256: str
    media_type: MediaType
    stat_key: StatKey
    # SHA-256 of each ``chunk_size`` piece of the file (the tus chunk checksums), computed in the same
    # read; empty when not asked for or when the file fits in one chunk (its digest is ``sha256``).
    chunk_digests: tuple[bytes, ...] = ()
    chunk_size: int = 0
    # Set when the bytes look damaged (a JPEG without its end marker): still backed up, but flagged.
    warning: str = ""


def stat_key(path: str) -> StatKey:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino)


# Common non-media signatures, so a skip reason tells the user what the file looks like instead.
_KNOWN = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "a Linux program"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg audio/video file"),
    (b"fLaC", "a FLAC audio file"),
)


def describe_head(head: bytes) -> str:
    """A short human description of what ``head`` looks like."""
    for magic, what in _KNOWN:
        if head.startswith(magic):
            return what
    sample = head[:64]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(c.isprintable() or c in "\r\n\t" for c in text):
        return "text: " + repr(text[:24].replace("\n", " "))
    return "bytes " + " ".join(f"{b:02x}" for b in head[:8])


def not_media_reason(head: bytes) -> str:
    return f"not a photo or video camroll recognises (first bytes look like {describe_head(head)})"


# What ends a complete file of these types, allowing zero padding after it.
_TRAILERS = {"image/jpeg": b"\xff\xd9", "image/png": b"IEND\xaeB`\x82"}
# Phones append a video to "motion photos" after the JPEG; its boxes near the end mean the JPEG part
# is followed by more data on purpose.
_APPENDED = (b"MotionPhoto_Data", b"moov", b"mdat")
TAIL_BYTES = 64 * 1024


def damage_warning(tail: bytes, mime: str) -> str:
    """A warning if a photo's last bytes (``tail``, up to 64 KiB, kept from the hashing read) show it is
    truncated."""
    trailer = _TRAILERS.get(mime)
    if trailer is None or len(tail) < len(trailer):
        return ""
    if tail.rstrip(b"\x00").endswith(trailer) or any(m in tail for m in _APPENDED):
        return ""
    kind = mime.split("/")[1].upper()
    return (f"this {kind} ends without its end marker, so it is probably truncated or damaged; it was backed "
            "up as it is")


def hash_file(path: str, chunk_size: int = 0) -> HashResult:
    """Hash ``path`` in 1 MiB reads (hashlib releases the GIL, so threads hash in parallel).

    With ``chunk_size``, a file larger than one chunk also gets the SHA-256 of each chunk (reads are
    split at chunk boundaries), so the upload can send its tus checksums without reading the file
    again just to compute them.

    Raises ``NotMedia`` for empty or unrecognised files (after reading only their first bytes),
    ``FileChanged`` if the file's stat differs before and after reading, and ``OSError`` for I/O errors.
    """
    with open(path, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        before: StatKey = (st.st_size, st.st_mtime_ns, st.st_ino)
        if st.st_size == 0:
            raise NotMedia("empty file (0 bytes)")
        per_chunk = 0 < chunk_size < st.st_size
        step = min(READ_SIZE, chunk_size) if per_chunk else READ_SIZE
        # A small file gets a buffer its size (+1 so the read that meets the end needs no second
        # round): zeroing a 1 MiB buffer for each 10 KB photo cost more than reading it.
        buf = bytearray(step if per_chunk else min(step, st.st_size + 1))
        view = memoryview(buf)
        n = f.readinto(buf)
        last, last_view = n, view
        head = bytes(view[: min(n, SNIFF_BYTES)])
        mt = sniff(head)
        if mt is None:
            raise NotMedia(not_media_reason(head))
        h = hashlib.sha256()
        total = 0
        digests: list[bytes] = []
        if per_chunk:
            c = hashlib.sha256()
            left = chunk_size  # bytes still to read in the current chunk
            while n:
                piece = view[:n]
                h.update(piece)
                c.update(piece)
                total += n
                left -= n
                if left == 0:
                    digests.append(c.digest())
                    c = hashlib.sha256()
                    left = chunk_size
                last = n
                n = f.readinto(view[: min(step, left)])
            if left != chunk_size:
                digests.append(c.digest())
        else:
            while n:
                h.update(view[:n])
                total += n
                last, last_view = n, view
                if n == len(buf) < step:
                    # It grew since it was opened: read the rest in full-size steps.
                    buf = bytearray(step)
                    view = memoryview(buf)
                n = f.readinto(buf)
        after_st = os.fstat(f.fileno())
        # The last read is still in the buffer (the final, empty read wrote nothing).
        tail = bytes(last_view[max(0, last - TAIL_BYTES):last])
        warning = damage_warning(tail, mt.mime) if mt.mime in _TRAILERS else ""
    after: StatKey = (after_st.st_size, after_st.st_mtime_ns, after_st.st_ino)
    if after != before or total != before[0]:
        raise FileChanged(f"changed while reading ({before[0]} -> {after[0]} bytes)")
    # A rename-replace during the read leaves our fd on the old inode; the path must still be it.
    try:
        if stat_key(path) != before:
            raise FileChanged("replaced while reading")
    except FileNotFoundError as exc:
        raise FileChanged("removed while reading") from exc
    return HashResult(h.hexdigest(), mt, before, tuple(digests), chunk_size if per_chunk else 0, warning)
