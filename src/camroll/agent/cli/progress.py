"""Render engine events as a Rich progress bar on stderr, and the end-of-pass summary as text."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from camroll.agent.events import (
    BytesSent,
    Event,
    FileFinished,
    PassFinished,
    ScanFinished,
    UploadStarted,
)
from camroll.agent.events import summary_text as _summary_text
from camroll.units import plural


class ProgressRenderer:
    """An ``EventCallback`` drawing files done/total, bytes, speed and ETA.  Thread-safe: Rich's
    Progress has its own lock and our counters have ours."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None
        self.lock = threading.Lock()
        self.files_total = 0
        self.files_done = 0

    def __enter__(self) -> ProgressRenderer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()

    def _describe(self) -> str:
        return f"Backing up {self.files_done:,}/{plural(self.files_total, 'file')}"

    def __call__(self, event: Event) -> None:
        if isinstance(event, ScanFinished):
            if event.work_files == 0:
                return
            self.files_total = event.work_files
            self.progress.start()
            self.task = self.progress.add_task(self._describe(), total=event.work_bytes)
        elif self.task is None:
            return
        elif isinstance(event, BytesSent):
            self.progress.advance(self.task, event.n)
        elif isinstance(event, FileFinished):
            with self.lock:
                self.files_done += 1
                desc = self._describe()
            self.progress.update(self.task, advance=event.unreported_bytes, description=desc)
        elif isinstance(event, UploadStarted):
            pass
        elif isinstance(event, PassFinished):
            self.progress.stop()


# Kept here too for callers that render progress and the summary together.
summary_text = _summary_text
