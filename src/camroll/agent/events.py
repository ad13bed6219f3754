"""What the backup engine reports while it runs, and its end-of-pass summary.  The CLI renders these
as a progress bar; ``camroll up`` can render them however it likes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from camroll.agent.state.tally import Tally, plural
from camroll.agent.stops import Stop

Outcome = Literal["uploaded", "already_on_server", "skipped", "failed", "waiting"]


@dataclass(frozen=True)
class ScanFinished:
    files_seen: int
    new: int
    changed: int
    vanished: int
    work_files: int
    work_bytes: int


@dataclass(frozen=True)
class UploadStarted:
    path: str
    size: int
    resumed_at: int


@dataclass(frozen=True)
class BytesSent:
    path: str
    n: int


@dataclass(frozen=True)
class FileFinished:
    path: str
    size: int
    outcome: Outcome
    reason: str
    # Bytes of this file not yet reported through BytesSent, so a progress bar can jump to done.
    unreported_bytes: int = 0


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str

    def __post_init__(self) -> None:
        from camroll.agent.fsnames import shown

        # Summaries are printed and sent as JSON: a path that is not UTF-8 is kept in its readable form.
        object.__setattr__(self, "path", shown(self.path))


@dataclass
class Summary:
    files_scanned: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_vanished: int = 0
    files_uploaded: int = 0
    files_already_on_server: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    files_waiting: int = 0
    files_parked: int = 0
    # Left out by choice this pass (hidden, Android's trash, include/exclude settings); not in files_skipped.
    files_left_out: int = 0
    bytes_sent: int = 0
    bytes_uploaded: int = 0
    duration_s: float = 0.0
    headline: str = ""
    # What stopped the pass, None when it ran to the end (``stops.Stop``; stored in the last-pass record).
    stop: Stop | None = None
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    # Every file's situation after the pass (the counts 'camroll status' shows), not only this pass's work.
    totals: Tally = field(default_factory=Tally)

    @property
    def mb_per_s(self) -> float:
        return self.bytes_sent / 1e6 / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def stopped_reason(self) -> str | None:
        return None if self.stop is None else self.stop.sentence

    @property
    def paused_by_policy(self) -> str | None:
        """The policy's code (e.g. "battery_low", "metered_cap") when the policy paused the pass; the
        sentence is then the headline as it is."""
        return self.stop.shown_code if self.stop is not None and self.stop.paused else None

    @property
    def stopped_code(self) -> str | None:
        """What stopped a pass the policy did not pause: "quota", "server_full", "unreachable", ..."""
        return self.stop.code.value if self.stop is not None and not self.stop.paused else None

    @property
    def ok(self) -> bool:
        return self.stop is None and self.files_failed == 0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = None if self.stop is None else self.stop.to_json()
        d["stopped_reason"] = self.stopped_reason
        d["paused_by_policy"] = self.paused_by_policy
        d["stopped_code"] = self.stopped_code
        d["mb_per_s"] = round(self.mb_per_s, 2)
        d["duration_s"] = round(self.duration_s, 3)
        d["ok"] = self.ok
        return d


@dataclass(frozen=True)
class PassFinished:
    summary: Summary


Event = ScanFinished | UploadStarted | BytesSent | FileFinished | PassFinished
EventCallback = Callable[[Event], None]


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def summary_text(s: Summary) -> str:
    """The end-of-pass report as plain text (no Rich import: the no-change path stays fast)."""
    lines = [s.headline]
    left_out = f", {s.files_left_out:,} left out (hidden, trashed or excluded)" if s.files_left_out else ""
    lines.append(
        f"Scanned {plural(s.files_scanned, 'file')} ({s.files_new:,} new, {s.files_changed:,} changed, "
        f"{s.files_vanished:,} vanished): {s.files_uploaded:,} uploaded, "
        f"{s.files_already_on_server:,} already on the server, {s.files_skipped:,} skipped, "
        f"{s.files_failed:,} failed, {s.files_waiting:,} waiting{left_out}."
    )
    t = s.totals
    if t.problems or t.left_out:
        parts = [f"{n:,} {word}" for n, word in ((t.failed, "failed"), (t.unreadable, "could not be read"),
                                                  (t.waiting, "waiting"), (t.skipped, "skipped")) if n]
        line = f"In all: {t.backed_up:,} backed up"
        if parts:
            line += f"; not backed up: {', '.join(parts)} ('camroll problems' lists them)"
        if t.left_out:
            line += f"; {t.left_out:,} left out by choice ('camroll problems --all')"
        lines.append(line + ".")
    lines.append(f"Sent {_mb(s.bytes_sent)} in {s.duration_s:.1f} s ({s.mb_per_s:.1f} MB/s).")
    if s.files_parked:
        one = s.files_parked == 1
        lines.append(f"{plural(s.files_parked, 'failed file')} {'waits for its' if one else 'wait for their'} "
                     f"retry time ('camroll backup --retry-failed' tries {'it' if one else 'them'} now).")
    shown = s.problems[:10]
    for p in shown:
        lines.append(f"  {p.path}: {p.reason}")
    for p in s.skipped[:5]:
        lines.append(f"  skipped {p.path}: {p.reason}")
    if len(s.skipped) > 5:
        lines.append(f"  ... and {len(s.skipped) - 5:,} more skipped.")
    if len(s.problems) > len(shown):
        lines.append(f"  ... and {len(s.problems) - len(shown):,} more (camroll status lists them).")
    return "\n".join(lines)
