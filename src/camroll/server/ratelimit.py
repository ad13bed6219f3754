"""In-memory rate limits keyed by account, address or user: exponential back-off after failures, and a
minimum interval between goes.  Both keep a bounded number of keys (the least recently touched go
first), so a flood of new names cannot grow the server's memory, and both read time from an
injectable clock, so tests never sleep.

State lives in the process: a restart forgets it, and replicas each keep their own.  That is enough
to turn thousands of password guesses a minute into a handful; an admin who needs more puts a
reverse proxy's limits in front.  With N replicas behind a load balancer an attacker gets at most N
times one replica's budget (N x 5 free failures per account, then each replica's wait doubles on its
own), still a handful an hour after the first minutes; the load balancer's per-address limits (see
docs/DEPLOY.md) are the shared layer.  Sharing these tables through Redis would add a network round
trip to every login and a Redis outage to the login path, for a bound that is already exponential."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

Clock = Callable[[], float]


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


@dataclass
class _Failures:
    count: int
    last: float
    until: float


class Backoff:
    """``free`` failures cost nothing; each one after that doubles the wait (``base``, 2*base, ... up to
    ``cap`` seconds).  A success resets the key; a key with no failure for ``forget`` seconds is dropped."""

    def __init__(self, *, free: int, base: float, cap: float, forget: float, max_keys: int = 10_000,
                 clock: Clock = time.monotonic) -> None:
        self.free, self.base, self.cap, self.forget, self.max_keys = free, base, cap, forget, max_keys
        self._clock = clock
        self._keys: OrderedDict[Hashable, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, key: Hashable) -> float:
        """Seconds before ``key`` may try again; 0 if it may now."""
        now = self._clock()
        with self._lock:
            entry = self._keys.get(key)
            if entry is None:
                return 0.0
            if now - entry.last >= self.forget:
                del self._keys[key]
                return 0.0
            return max(0.0, entry.until - now)

    def failed(self, key: Hashable) -> float:
        """Record a failure; returns the wait it earned (0 while failures are still free)."""
        now = self._clock()
        with self._lock:
            entry = self._keys.pop(key, None)
            if entry is None or now - entry.last >= self.forget:
                entry = _Failures(0, now, now)
            entry.count += 1
            entry.last = now
            over = entry.count - self.free
            delay = 0.0 if over <= 0 else min(self.cap, self.base * 2.0 ** min(over - 1, 60))
            entry.until = max(entry.until, now + delay)
            self._keys[key] = entry
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
            return delay

    def succeeded(self, key: Hashable) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)


class Interval:
    """At most one go per ``seconds`` for each key."""

    def __init__(self, seconds: float, *, max_keys: int = 10_000, clock: Clock = time.monotonic) -> None:
        self.seconds, self.max_keys = seconds, max_keys
        self._clock = clock
        self._last: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: Hashable) -> float:
        """0 if ``key`` may go now (and the go is recorded), else the seconds it must wait."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.seconds:
                return self.seconds - (now - last)
            self._last.pop(key, None)
            self._last[key] = now
            while len(self._last) > self.max_keys:
                self._last.popitem(last=False)
            return 0.0

    def __len__(self) -> int:
        return len(self._last)
