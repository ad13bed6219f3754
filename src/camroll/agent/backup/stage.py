"""One step of the backup pipeline: work waiting for a pool of worker threads, handed over a few at a
time so at most ``limit`` items are in the pool at once (memory stays bounded with 100,000 files, and
later stages start while earlier ones go on).

The contract, for every stage (hashing, checking, uploading, and any added later):

- ``work(item)`` runs on a worker thread, touches neither the state DB nor the coordinator's data, and
  returns a *handler*: what the coordinator does with the outcome.
- Handlers, ``admit``, ``on_cancel`` and ``on_crash`` run on the coordinator thread only (it takes them
  from the shared ``results`` queue), so they may write the state DB and move the item to the next stage.
- Every submitted item is answered exactly once: ``admit`` refused it, its handler ran, it was
  cancelled when the pool shut down (``on_cancel``) or its ``work`` raised (``on_crash``).
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
Handler = Callable[[], None]


class BoundedStage(Generic[T]):
    def __init__(self, name: str, *, workers: int, limit: int, results: queue.Queue[Handler],
                 work: Callable[[T], Handler], admit: Callable[[T], bool],
                 on_cancel: Callable[[T], None], on_crash: Callable[[T, BaseException], None]) -> None:
        """``admit(item)``, called as the item is about to go to a worker: False if it must not go (the
        pass is stopping); it has then answered the item itself."""
        self.name = name
        self.limit = limit
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"camroll-{name}")
        self._results = results
        self._work = work
        self._admit = admit
        self._on_cancel = on_cancel
        self._on_crash = on_crash
        self._waiting: deque[T] = deque()
        self.in_flight = 0

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing in the pool."""
        return self.in_flight == 0 and not self._waiting

    @property
    def load(self) -> int:
        """Items in the pool or waiting for it."""
        return self.in_flight + len(self._waiting)

    def submit(self, item: T) -> None:
        self._waiting.append(item)
        self.pump()

    def pump(self) -> None:
        while self._waiting and self.in_flight < self.limit:
            item = self._waiting.popleft()
            if not self._admit(item):
                continue
            self.in_flight += 1
            fut = self._pool.submit(self._run, item)
            fut.add_done_callback(self._watch(item))

    def shutdown(self) -> None:
        """Wait for running work and cancel the rest (each cancelled item reaches ``on_cancel``)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- worker thread ------------------------------------------------------------------------------
    def _run(self, item: T) -> None:
        handler = self._work(item)
        self._results.put(lambda: self._answered(handler))

    def _watch(self, item: T) -> Callable[[Future[None]], None]:
        def cb(fut: Future[None]) -> None:
            if fut.cancelled():
                self._results.put(lambda: self._answered(lambda: self._on_cancel(item)))
            elif (exc := fut.exception()) is not None:
                err = exc
                self._results.put(lambda: self._answered(lambda: self._on_crash(item, err)))
        return cb

    # --- coordinator thread -------------------------------------------------------------------------
    def _answered(self, handler: Handler) -> None:
        self.in_flight -= 1
        handler()
        self.pump()
