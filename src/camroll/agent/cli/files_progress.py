"""Progress of a command that works through many files (import, restore): a Rich bar on a terminal, a
line a second at most in a pipe or log.  Thread-safe: a restore finishes files on several threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import typer


class FileLines:
    """``N/M outcome: name`` on stderr, at most once a second and for the last file."""

    def __init__(self, header: Callable[[int, int], str], name_of: Callable[[Any], str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.header, self.name_of, self.clock = header, name_of, clock
        self.lock = threading.Lock()
        self.files = self.done = 0
        self.last = -10.0

    def planned(self, files: int, total_bytes: int) -> None:
        self.files = files
        typer.echo(self.header(files, total_bytes), err=True)

    def advance(self, n: int) -> None:
        pass

    def finished(self, result: Any) -> None:
        with self.lock:
            self.done += 1
            now = self.clock()
            if now - self.last >= 1.0 or self.done == self.files:
                self.last = now
                typer.echo(f"{self.done}/{self.files} {result.outcome.value}: {self.name_of(result)}", err=True)

    def stop(self) -> None:
        pass


class FileBar:
    """A Rich bar of bytes with ``N/M`` files; ``size_on_finish`` is what a finished file adds (the
    bytes ``advance`` did not count already)."""

    def __init__(self, description: str, size_on_finish: Callable[[Any], int], *, speed: bool = False) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), DownloadColumn()]
        if speed:
            columns.append(TransferSpeedColumn())
        self.progress = Progress(*columns, console=Console(stderr=True), transient=True)
        self.task = self.progress.add_task(description, total=None)
        self.size_on_finish = size_on_finish
        self.lock = threading.Lock()
        self.files = self.done = 0

    def planned(self, files: int, total_bytes: int) -> None:
        self.files = files
        self.progress.update(self.task, total=total_bytes)
        self.progress.start()

    def advance(self, n: int) -> None:
        self.progress.update(self.task, advance=n)

    def finished(self, result: Any) -> None:
        with self.lock:
            self.done += 1
            self.progress.update(self.task, advance=self.size_on_finish(result),
                                 description=f"{self.done}/{self.files}")

    def stop(self) -> None:
        self.progress.stop()
