"""What the backup engine reports while it runs, and its end-of-pass summary.  The CLI renders these
as a progress bar; ``camroll up`` can render them however it likes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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
    bytes_sent: int = 0
    bytes_uploaded: int = 0
    duration_s: float = 0.0
    headline: str = ""
    stopped_reason: str | None = None
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)

    @property
    def mb_per_s(self) -> float:
        return self.bytes_sent / 1e6 / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.stopped_reason is None and self.files_failed == 0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["mb_per_s"] = round(self.mb_per_s, 2)
        d["duration_s"] = round(self.duration_s, 3)
        d["ok"] = self.ok
        return d


@dataclass(frozen=True)
class PassFinished:
    summary: Summary


Event = ScanFinished | UploadStarted | BytesSent | FileFinished | PassFinished
EventCallback = Callable[[Event], None]
