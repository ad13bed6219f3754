"""A server clock (camroll.server.clock.Clock) that moves only when a test says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 21, 14, 2, tzinfo=UTC)


class FakeClock:
    """Hand it to a Context (``Context(..., clock=FakeClock())``); ``advance`` moves wall time and
    monotonic time together, so expiry, leases, stall checks and throttles all see the same jump."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "a clock does not go back"
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
