"""Numbers the server reads from its environment (job, trash, replica and scrub settings), so every
``camroll serve``, ``camroll worker`` and ``camroll admin`` of one deployment agrees without a config
file.  A value that is not a number, or is negative, stops the start with a sentence naming the variable
and the fix, never a traceback deep in a thread."""

from __future__ import annotations

import os


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
    if value < 0 or value != value:
        raise ValueError(f"{name}={raw!r} is negative or not a number; set it to zero or more, or unset it for "
                         f"the default {default:g}.")
    return value
