"""Numbers the server reads from its environment (job, trash, replica and scrub settings), so every
``camroll serve``, ``camroll worker`` and ``camroll admin`` of one deployment agrees without a config
file.  A value that is not a number, or is negative, stops the start with a sentence naming the variable
and the fix, never a traceback deep in a thread."""

from __future__ import annotations

import math
import os

# Larger than any sensible setting (seconds, days, MB/s), small enough for timedelta and int().
MAX_VALUE = 1e9


def env_number(name: str, default: float) -> float:
    """``$name`` as a number of zero or more; ``default`` when it is unset or blank."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number; set it to a number or unset it for the default "
                         f"{default:g}.") from None
    if not math.isfinite(value) or value < 0 or value > MAX_VALUE:
        raise ValueError(f"{name}={raw!r} is not a number from 0 to {MAX_VALUE:g}; set it to one, or unset it "
                         f"for the default {default:g}.")
    return value
