"""Numbers the server reads from its environment (database pool, job, trash, replica and scrub settings), so every
``camroll serve``, ``camroll worker`` and ``camroll admin`` of one deployment agrees without a config
file.  A value that is not a number, or is negative, stops the start with a sentence naming the variable
and the fix, never a traceback deep in a thread."""

from __future__ import annotations

import math
import os

# Larger than any sensible setting (seconds, days, MB/s), small enough for timedelta and int().
MAX_VALUE = 1e9


def env_number(name: str, default: float, *, minimum: float = 0.0) -> float:
    """``$name`` as a finite number from ``minimum`` to ``MAX_VALUE``; ``default`` when it is unset or blank."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number; set it to a number or unset it for the default "
                         f"{default:g}.") from None
    if not math.isfinite(value) or value < minimum or value > MAX_VALUE:
        raise ValueError(f"{name}={raw!r} is not a number from {minimum:g} to {MAX_VALUE:g}; set it to one, or "
                         f"unset it for the default {default:g}.")
    return value
