"""A token bucket for ``bandwidth_limit``: one per pass, shared by every upload worker, so the limit is
on the device's total upload speed rather than per file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Bodies are sent in pieces of at most this size while throttled, so a slow limit paces the connection
# smoothly instead of in 1 MiB bursts.
THROTTLED_PIECE = 64 * 1024


class TokenBucket:
    """``take(n)`` blocks until ``n`` bytes may be sent at ``rate`` bytes per second.  The bucket holds at
    most a tenth of a second of data, so short idle spells do not turn into long bursts."""

    def __init__(self, rate: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be above zero")
        self.rate = rate
        self.capacity = max(THROTTLED_PIECE, rate / 10)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._last = clock()

    def take(self, n: int) -> None:
        # Reserve under the lock, sleep outside it: workers queue up in order, each for its own share,
        # and the total never exceeds the rate.
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
