"""Background jobs yield to receiving uploads.

Thumbnails and metadata are CPU work the server can do later; receiving is what a person waits for
(a phone on the train, a first backup of 100,000 files).  While bytes arrive, at most
``busy_workers`` job threads run (by default one of two), and only for ``busy_share`` of the time (a job
that took 0.4 s is followed by a 1.2 s rest at the default 0.25): nice alone does not keep a decoder off
a core that receiving would have used on a 2-core machine, since hashing and the agent keep both busy.
Job threads and the decoder processes they start run at a lower CPU priority (nice 10) all the time;
once nothing was received for ``quiet_seconds`` every worker runs again, without rests, and the queue
catches up.  (The camera roll bench: 4.2 GB received at 180 MB/s with one job at a time against 321 MB/s
with no jobs at all; bench/README.md has the figures with this share.)

Only this process's receiving counts: a ``camroll worker`` in a process (or on a machine) of its own
does not compete with the API's cores, so it never waits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

log = logging.getLogger("camroll.server.jobs")

QUIET_SECONDS = 2.0
BUSY_WORKERS = 1
BUSY_SHARE = 0.25
JOB_NICE = 10
# How often a waiting job looks at the clock again (the clock may be a test's, so a wait is bounded).
_RECHECK_SECONDS = 0.25


class ReceiveActivity:
    """When this process last received upload bytes, and the turns job threads take meanwhile.

    Thread-safe.  ``clock`` is monotonic seconds (tests pass their own)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, quiet_seconds: float = QUIET_SECONDS,
                 busy_workers: int = BUSY_WORKERS, busy_share: float = BUSY_SHARE) -> None:
        self._clock = clock
        self.quiet_seconds = quiet_seconds
        self.busy_workers = max(1, busy_workers)
        self.busy_share = min(1.0, max(0.01, busy_share))
        self._last: float | None = None
        self._running = 0
        self._rest_until = 0.0  # while receiving, no job starts before this (its share of the time)
        self._cond = threading.Condition()

    def receiving(self) -> None:
        """Upload bytes arrived just now (called by the receive paths; cheap)."""
        self._last = self._clock()

    def busy(self) -> bool:
        """Whether uploads arrived within the last ``quiet_seconds``."""
        last = self._last
        return last is not None and self._clock() - last < self.quiet_seconds

    @property
    def running(self) -> int:
        with self._cond:
            return self._running

    def may_start(self) -> bool:
        with self._cond:
            return self._may_start()

    def _may_start(self) -> bool:
        if not self.busy():
            return True
        return self._running < self.busy_workers and self._clock() >= self._rest_until

    @contextlib.contextmanager
    def turn(self, stop: threading.Event | None = None) -> Iterator[None]:
        """Hold one job's turn: while uploads arrive, waits for a free one of ``busy_workers`` and for the
        rest that keeps jobs to ``busy_share`` of the time."""
        with self._cond:
            while not self._may_start() and not (stop and stop.is_set()):
                self._cond.wait(_RECHECK_SECONDS)
            self._running += 1
        started = self._clock()
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                if self.busy():
                    ended = self._clock()
                    rest = (ended - started) * (1 - self.busy_share) / self.busy_share
                    self._rest_until = max(self._rest_until, ended + rest)
                self._cond.notify_all()


_lowered = threading.local()


def lower_this_thread() -> None:
    """Nice this job thread (once): Linux keeps a nice value per thread, and the sandbox children it
    forks inherit it, so decoding yields the cores to request threads whenever both want them."""
    if getattr(_lowered, "done", False):
        return
    _lowered.done = True
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), JOB_NICE))
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: jobs still take turns
        log.debug("could not lower the job thread's priority: %s", exc)
