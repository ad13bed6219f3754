"""A bounded, fair pool of threads for alert sends.

One user's URLs can hang (a service that never answers, a slow SMTP relay), so the pool never lets one
user hold more than one of its threads: each user has a queue, users take turns, and a user's next send
starts only when their previous one ended.  Queues are bounded (per user and in total); a send that
does not fit is refused at once with the reason, never waited for.  Nobody who submits waits on the
pool: a request awaits its futures in the event loop, the stall checks do not wait at all."""

from __future__ import annotations

import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

WORKERS = 8
MAX_QUEUED_PER_USER = 50
MAX_QUEUED = 1000


class QueueFull(Exception):
    """The send was not queued; ``str()`` is the reason in words."""


@dataclass
class _Job(Generic[T]):
    run: Callable[[], T]
    future: concurrent.futures.Future[T]


class FairSender:
    def __init__(self, workers: int = WORKERS, max_per_user: int = MAX_QUEUED_PER_USER,
                 max_total: int = MAX_QUEUED) -> None:
        self.workers, self.max_per_user, self.max_total = workers, max_per_user, max_total
        self._cond = threading.Condition()
        self._queues: dict[int, deque[_Job[object]]] = {}
        self._turns: deque[int] = deque()  # users with queued work and nothing running, in turn order
        self._running: set[int] = set()
        self._queued = 0
        self._threads: list[threading.Thread] = []

    def submit(self, user_id: int, run: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Queue ``run`` behind ``user_id``'s earlier sends; QueueFull if there is no room."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._cond:
            queue = self._queues.setdefault(user_id, deque())
            if len(queue) >= self.max_per_user:
                raise QueueFull(f"not sent: {len(queue)} earlier alerts of this user are still waiting")
            if self._queued >= self.max_total:
                raise QueueFull(f"not sent: the server has {self._queued} alerts waiting")
            queue.append(_Job(run, future))  # type: ignore[arg-type]  # the queue holds jobs of any T
            self._queued += 1
            if user_id not in self._running and user_id not in self._turns:
                self._turns.append(user_id)
            self._start_threads()
            self._cond.notify()
        return future

    def _start_threads(self) -> None:
        while len(self._threads) < self.workers:
            t = threading.Thread(target=self._work, name=f"camroll-notify-{len(self._threads)}", daemon=True)
            self._threads.append(t)
            t.start()

    def _next(self) -> tuple[int, _Job[object]]:
        with self._cond:
            while not self._turns:
                self._cond.wait()
            user_id = self._turns.popleft()
            job = self._queues[user_id].popleft()
            self._queued -= 1
            self._running.add(user_id)
            return user_id, job

    def _done(self, user_id: int) -> None:
        with self._cond:
            self._running.discard(user_id)
            if self._queues.get(user_id):
                self._turns.append(user_id)
                self._cond.notify()
            else:
                self._queues.pop(user_id, None)

    def _work(self) -> None:
        while True:
            user_id, job = self._next()
            try:
                if job.future.set_running_or_notify_cancel():
                    try:
                        job.future.set_result(job.run())
                    except Exception as exc:  # handed to whoever waits; the thread carries on
                        job.future.set_exception(exc)
            finally:
                self._done(user_id)

    def queued(self, user_id: int | None = None) -> int:
        with self._cond:
            return self._queued if user_id is None else len(self._queues.get(user_id, ()))
