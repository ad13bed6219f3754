"""Errors of camroll.media: each message is one sentence a person can act on."""

from __future__ import annotations

import errno

# A disk that ran out of space (or a user's disk quota): a condition of where the output goes, which
# clears when space is freed, never a verdict on the file being read.  Such OSErrors pass through as
# they are instead of becoming ``UnreadableMedia``.
OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class MediaError(Exception):
    """A file could not be understood or thumbnailed; ``str(error)`` is the reason to show."""


class ToolMissing(MediaError):
    """A program camroll runs for video (ffprobe, ffmpeg) is not installed; retrying will not help
    until an admin installs it."""


class UnreadableMedia(MediaError):
    """The file is corrupt, truncated or of a kind camroll cannot decode; retrying will not help."""


# Pillow has no JPEG XL decoder; such files are backed up but cannot be described or previewed.
JXL_UNSUPPORTED = (
    "camroll cannot decode JPEG XL images yet, so this one has no details or thumbnail; the original is kept."
)
