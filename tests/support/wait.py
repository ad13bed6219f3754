"""One polling helper for everything a test waits on in another process or thread.

Waiting on a clock the test holds (``support.clock.FakeClock``) needs no polling; this is for what
really happens elsewhere: a server becoming ready, a message arriving, a job finishing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 15.0
# Short enough that a test waits little past the moment, long enough not to busy a loaded 2-core machine.
DEFAULT_INTERVAL_S = 0.05


def wait_until(predicate: Callable[[], T], timeout: float = DEFAULT_TIMEOUT_S, *, what: str,
               interval: float = DEFAULT_INTERVAL_S, describe: Callable[[], object] | None = None) -> T:
    """Call ``predicate`` until it returns something truthy and return that; after ``timeout`` seconds
    fail the test with ``what`` (a phrase: "the upload is swept") and, if given, ``describe()`` (the state
    seen last, so the failure says more than "timed out").  An exception from ``predicate`` is not
    swallowed: a wait for a condition is no place to hide errors."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() >= deadline:
            seen = f"; last seen: {describe()}" if describe is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting until {what}{seen}")
        time.sleep(interval)
