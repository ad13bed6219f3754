"""How services ask for background work without knowing the job queue.

``ctx.work`` is a ``WorkQueue``: the running server's job queue (server/jobs/queue.py) while it runs,
``NoWork`` in admin commands and before start, ``RecordedWork`` in tests that want to see what was
asked.  Asking never fails the caller and never runs the work inline: the asset rows, not the queue,
say what is left to do (metadata_at, thumbs_at, job_error), so work asked for while no queue listens
is queued at the next start.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol


class WorkQueue(Protocol):
    def asset_added(self, asset_id: int) -> None:
        """An asset row has just been committed: make its metadata and thumbnails, ahead of any backlog.
        Never raises."""

    def assets_added(self, asset_ids: Sequence[int]) -> None:
        """Rows committed together (a batch): the same as ``asset_added`` for each, in fewer queue
        writes.  Never raises."""

    def redo(self, asset_id: int) -> None:
        """The asset's row says its work is done but a result is missing (a thumbnail file deleted, or
        made by an older recipe): do whatever is missing again.  Never raises."""


class NoWork:
    """Nothing listens: the next server start queues what the asset rows say is missing."""

    def asset_added(self, asset_id: int) -> None:
        pass

    def assets_added(self, asset_ids: Sequence[int]) -> None:
        pass

    def redo(self, asset_id: int) -> None:
        pass


class RecordedWork:
    """Keeps what was asked, in order (tests; an in-process caller that drains it itself)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.added: list[int] = []
        self.redone: list[int] = []

    def asset_added(self, asset_id: int) -> None:
        with self._lock:
            self.added.append(asset_id)

    def assets_added(self, asset_ids: Sequence[int]) -> None:
        with self._lock:
            self.added.extend(asset_ids)

    def redo(self, asset_id: int) -> None:
        with self._lock:
            self.redone.append(asset_id)
