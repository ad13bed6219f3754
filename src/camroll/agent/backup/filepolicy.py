"""Per-file rules: which files a pass backs up, and for the others the reason code, the sentence and the
fix.  Pure functions of a file's stat (or sniffed type), the [policy] keys and the server's limits, so
each rule is tested without a server or a pass.

Codes (stored in the state DB's ``code`` column):

- skipped: ``empty``, ``unsupported_type``, ``too_large``; and left out by choice (counted, listed by
  ``problems --all``, never problems): ``excluded`` (include/exclude settings), ``hidden`` (a name starting
  with "."), ``trashed`` (Android's ``.trashed-*``: deleted on the phone, awaiting removal)
- waiting: ``still_being_written`` (picked up by a later pass once it stops changing)
- failed:  ``unreadable`` and the upload errors set by the engine

``excluded`` files are recorded (not left out of the state DB) so ``camroll why`` can explain them.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Literal

from camroll.agent.settings.config import PolicyConfig
from camroll.units import format_size

# Skips that only a change of policy (or server) can undo: they are looked at again when it changes.
POLICY_CODES = ("too_large", "excluded", "unsupported_type")
# Files left out by choice (the user's or camroll's design), not because anything is wrong with them.
LEFT_OUT_CODES = ("excluded", "hidden", "trashed")
# Android moves a deleted photo to ".trashed-<expiry>-<name>" and removes it after 30 days.
TRASHED_PREFIX = ".trashed-"
# A file modified this recently may still be being written.  0 by default: a one-off ``camroll backup``
# right after copying photos should back them up, and a change during the read or since the scan is
# caught anyway (see ``changed_since_scan``); a watching agent passes a few seconds.
DEFAULT_SETTLE_SECONDS = 0.0


@dataclass(frozen=True)
class Decision:
    state: Literal["skipped", "waiting"]
    code: str
    reason: str
    fix: str


@dataclass(frozen=True)
class ServerLimits:
    """What the server accepts, from ``GET /api/v1/server``; None = not known (then only the user's limit
    and the local type table apply, and the server has the last word at upload time)."""

    max_file_size: int | None = None
    mimes: frozenset[str] | None = None

    def to_json(self) -> str:
        return json.dumps({"max_file_size": self.max_file_size,
                           "mimes": None if self.mimes is None else sorted(self.mimes)})

    @classmethod
    def from_json(cls, text: str | None) -> ServerLimits:
        if not text:
            return cls()
        try:
            d = json.loads(text)
            mimes = d.get("mimes")
            return cls(d.get("max_file_size"), None if mimes is None else frozenset(mimes))
        except (ValueError, AttributeError, TypeError):
            return cls()


def suggest_size(size: int) -> str:
    """A round limit above ``size`` for the fix sentence ("3GB" for 2.1 GB)."""
    for unit, name in ((10**9, "GB"), (10**6, "MB"), (10**3, "kB")):
        if size >= unit:
            return f"{math.floor(size / unit) + 1}{name}"
    return f"{size + 1}B"


def _matches(globs: list[str], path: str, folder: str) -> str | None:
    """The first glob matching the file; case-blind, because *.jpg is meant to match IMG_0001.JPG.  A glob
    starting with "/" is matched against the full path; others against the path inside its backed-up folder
    (also with a leading "/", so */.trash/* matches a .trash folder at any depth) and against the name, so
    the folder's own location never matches by accident."""
    rel = (os.path.relpath(path, folder) if folder else path).lower()
    cands = (rel, "/" + rel, os.path.basename(path).lower())
    full = path.lower()
    for g in globs:
        gl = g.lower()
        if gl.startswith("/"):
            if fnmatch.fnmatchcase(full, gl):
                return g
        elif any(fnmatch.fnmatchcase(c, gl) for c in cands):
            return g
    return None


def check_stat(path: str, folder: str, size: int, mtime_ns: int, policy: PolicyConfig,
               limits: ServerLimits, now: float | None = None,
               settle_seconds: float = DEFAULT_SETTLE_SECONDS) -> Decision | None:
    """The rule a file breaks judging by its path and stat alone, or None if it should be hashed."""
    name = os.path.basename(path)
    if name.startswith(TRASHED_PREFIX):
        return Decision("skipped", "trashed", "in Android's trash (deleted on the phone; Android removes it "
                        "after 30 days)", "Nothing to do; to back it up, restore it in the phone's Gallery app.")
    if name.startswith("."):
        return Decision("skipped", "hidden", "hidden file (its name starts with '.'): camroll leaves those out",
                        "Nothing to do; to back it up, rename it without the leading dot.")
    if policy.exclude and (g := _matches(policy.exclude, path, folder)) is not None:
        return Decision("skipped", "excluded", f"excluded by your exclude pattern {g!r}",
                        f"Remove {g!r} from exclude (camroll settings set exclude ...), then camroll retry.")
    if policy.include and _matches(policy.include, path, folder) is None:
        pats = ", ".join(repr(g) for g in policy.include)
        return Decision("skipped", "excluded", f"matches none of your include patterns ({pats})",
                        "Add a pattern that matches it to include (camroll settings set include ...), "
                        "then camroll retry.")
    if size == 0:
        return Decision("skipped", "empty", "empty file (0 bytes)",
                        "Nothing to back up; camroll looks at it again when it changes.")
    mine = policy.max_file_size_bytes
    if mine is not None and size > mine:
        return Decision("skipped", "too_large",
                        f"{format_size(size)} is over your {format_size(mine)} max_file_size",
                        f"camroll settings set max_file_size {suggest_size(size)}")
    if limits.max_file_size is not None and size > limits.max_file_size:
        return Decision("skipped", "too_large",
                        f"{format_size(size)} is over the server's {format_size(limits.max_file_size)} upload limit",
                        "Ask the server's admin to raise it (camroll serve --max-file-size); backup then "
                        "retries it by itself.")
    if settle_seconds > 0:
        age = (now if now is not None else time.time()) - mtime_ns / 1e9
        if age < settle_seconds:
            return still_being_written(f"modified {max(0.0, age):.1f} s ago")
    return None


def still_being_written(detail: str) -> Decision:
    return Decision("waiting", "still_being_written", f"still being written ({detail})",
                    "Nothing to do: it is backed up once it stops changing.")


def check_type(mime: str, limits: ServerLimits) -> Decision | None:
    """A sniffed type the server does not accept (the local table already refused everything else)."""
    if limits.mimes is not None and mime not in limits.mimes:
        return Decision("skipped", "unsupported_type", f"the server does not accept {mime} files",
                        "Upgrade the server to one that accepts this type; backup then retries it by itself.")
    return None


def not_media(reason: str) -> Decision:
    if reason.startswith("empty"):
        return Decision("skipped", "empty", reason, "Nothing to back up; camroll looks at it again when it changes.")
    return Decision("skipped", "unsupported_type", reason,
                    "camroll backs up photos and videos only; nothing to do unless this is one "
                    "(then report its type).")


def fingerprint(policy: PolicyConfig, limits: ServerLimits) -> str:
    """Changes whenever a rule behind a POLICY_CODES skip changes, so those files are looked at again."""
    data = json.dumps([policy.max_file_size_bytes, policy.include, policy.exclude, limits.to_json()])
    return hashlib.sha256(data.encode()).hexdigest()[:16]


UNREADABLE_FIX = "Make it readable by this user (for example chmod u+r FILE), then camroll retry FILE."
