"""Where the server reads the time: one ``Clock`` per Context (``ctx.clock``), so expiry, leases,
stall and silence checks, throttles and notifications can be run on a clock a test moves by hand.

Two readings, as the agent's injectable clocks have (``Callable[[], float]`` for intervals):
``now()`` is UTC wall time, what is stored in and compared with the database (upload expiry, leases,
heartbeats); ``monotonic()`` is seconds for intervals inside this process (rate limits, periodic
tasks).  The system clock is the default; nothing in the server reads ``time`` or ``datetime``
directly for these decisions."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current UTC time, timezone-aware."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never go back (for intervals in this process)."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK: Clock = SystemClock()
