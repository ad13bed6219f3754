"""How many files are in which situation, from the state DB: the one count that ``status`` (headline and
rows), the pass summary, ``problems`` and the heartbeat (so the server's device card and Problems page) all
show, so they cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass

from camroll.agent.state.db import StateDB
from camroll.units import plural

__all__ = ["Tally", "plural", "tally"]


@dataclass(frozen=True)
class Tally:
    backed_up: int = 0
    # New or changed files a pass has not finished yet (pending, hashing, uploading).
    in_progress: int = 0
    # Held for a reason that clears by itself (still being written, quota full).
    waiting: int = 0
    failed: int = 0
    # Skipped for a reason about the file: empty, not a photo or video, too large.
    skipped: int = 0
    # Left out by choice (hidden, Android's trash, include/exclude settings): counted, never a problem.
    left_out: int = 0
    # Seen by the scan but not even stat-able (a folder without permission, a symlink loop).
    unreadable: int = 0

    @property
    def problems(self) -> int:
        """Files not backed up for a reason a person should look at ('camroll problems' lists them)."""
        return self.failed + self.waiting + self.skipped + self.unreadable


def tally(db: StateDB) -> Tally:
    from camroll.agent.state.lastpass import scan_unreadable

    files = db.counts().files
    left_out = db.left_out_count()
    return Tally(
        backed_up=files.get("backed_up", 0),
        in_progress=sum(files.get(s, 0) for s in ("pending", "hashing", "uploading")),
        waiting=files.get("waiting", 0), failed=files.get("failed", 0),
        skipped=files.get("skipped", 0) - left_out, left_out=left_out, unreadable=len(scan_unreadable(db)),
    )
