"""Back-off policies: within a pass (seconds, a few attempts) and across passes (minutes to hours)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with full jitter (AWS architecture blog): the delay before retry ``n``
    (0-based) is uniform in [0, min(cap, base * 2**n)], which spreads retries of many clients."""

    base: float = 0.5
    cap: float = 8.0
    attempts: int = 5

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        upper = min(self.cap, self.base * (2 ** min(retry, 30)))
        return (rng or random).uniform(0, upper)


# Within one pass: a chunk or request is tried ``attempts`` times in all.
IN_PASS = Backoff(base=0.5, cap=8.0, attempts=5)

# Across passes: a failed file waits this long before the next pass retries it.
ACROSS_PASSES_BASE = 60.0
ACROSS_PASSES_CAP = 6 * 3600.0


def next_retry_delay(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds a file that has failed ``attempts`` times (>= 1) waits before it is tried again: doubling
    from one minute, capped at six hours, with jitter in the upper half so it never retries at once."""
    upper = min(ACROSS_PASSES_CAP, ACROSS_PASSES_BASE * (2 ** min(max(attempts - 1, 0), 30)))
    return (rng or random).uniform(upper / 2, upper)
