"""Background jobs yield to receiving uploads.

Thumbnails and metadata are CPU work the server can do later; receiving is what a person waits for
(a phone on the train, a first backup of 100,000 files).  While bytes arrive, at most
``busy_workers`` job threads run (by default one of two), and job threads and the decoder processes
they start run at a lower CPU priority (nice 10) all the time; once nothing was received for
``quiet_seconds`` every worker runs again and the queue catches up.

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
JOB_NICE = 10
# How often a waiting job looks at the clock again (the clock may be a test's, so a wait is bounded).
_RECHECK_SECONDS = 0.25


class ReceiveActivity:
    """When this process last received upload bytes, and the turns job threads take meanwhile.

    Thread-safe.  ``clock`` is monotonic seconds (tests pass their own)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, quiet_seconds: float = QUIET_SECONDS,
                 busy_workers: int = BUSY_WORKERS) -> None:
        self._clock = clock
        self.quiet_seconds = quiet_seconds
        self.busy_workers = max(1, busy_workers)
        self._last: float | None = None
        self._running = 0
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
            return self._running < self.busy_workers or not self.busy()

    @contextlib.contextmanager
    def turn(self, stop: threading.Event | None = None) -> Iterator[None]:
        """Hold one job's turn: waits while uploads arrive and ``busy_workers`` jobs already run."""
        with self._cond:
            while self._running >= self.busy_workers and self.busy() and not (stop and stop.is_set()):
                self._cond.wait(_RECHECK_SECONDS)
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
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
