"""Job and trash settings, read from the environment so ``camroll serve``, ``camroll admin`` and a
separate worker agree without sharing a config file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from camroll.media.sandbox import DEFAULT_MEMORY, DEFAULT_TIMEOUT, Limits
from camroll.server.envnumbers import env_number
from camroll.units import parse_size

REDIS_URL_ENV = "CAMROLL_REDIS_URL"
WORKERS_ENV = "CAMROLL_JOB_WORKERS"
RETRY_DELAY_ENV = "CAMROLL_JOB_RETRY_DELAY"
TRASH_DAYS_ENV = "CAMROLL_TRASH_DAYS"
PURGE_INTERVAL_ENV = "CAMROLL_PURGE_INTERVAL"
# One file's limits in the media sandbox (camroll.media.sandbox): wall time (and CPU time), memory.
TIMEOUT_ENV = "CAMROLL_JOB_TIMEOUT"
MEMORY_ENV = "CAMROLL_JOB_MEMORY"

DEFAULT_TRASH_DAYS = 30.0
DEFAULT_RETRIES = 3
DEFAULT_RETRY_DELAY = 30.0
DEFAULT_PURGE_INTERVAL = 3600.0


def sandbox_limits() -> Limits:
    """The media sandbox's limits from ``$CAMROLL_JOB_TIMEOUT`` (seconds) and ``$CAMROLL_JOB_MEMORY``
    (a size such as "1GiB" or "800MB"); 60 s and 1 GiB by default."""
    timeout = env_number(TIMEOUT_ENV, DEFAULT_TIMEOUT)
    raw = os.environ.get(MEMORY_ENV, "").strip()
    try:
        memory = parse_size(raw) if raw else DEFAULT_MEMORY
    except ValueError:
        raise ValueError(f"{MEMORY_ENV}={raw!r} is not a size; set it to one such as 1GiB or unset it.") from None
    if timeout <= 0 or memory < 64 << 20:
        raise ValueError(f"{TIMEOUT_ENV} must be above 0 and {MEMORY_ENV} at least 64MiB; raise them or unset them.")
    return Limits(timeout_seconds=timeout, memory_bytes=memory)


@dataclass(frozen=True)
class JobSettings:
    redis_url: str | None
    workers: int
    retries: int
    retry_delay_seconds: float
    trash_days: float
    purge_interval_seconds: float

    @classmethod
    def from_env(cls) -> JobSettings:
        # Thumbnails are CPU-bound: more workers than cores only queue on the GIL and the decoder.
        workers = int(env_number(WORKERS_ENV, float(min(2, os.cpu_count() or 1))))
        return cls(
            redis_url=os.environ.get(REDIS_URL_ENV) or None,
            # 0: this process only enqueues; a 'camroll worker' process does the work.
            workers=max(0, workers),
            retries=DEFAULT_RETRIES,
            retry_delay_seconds=env_number(RETRY_DELAY_ENV, DEFAULT_RETRY_DELAY),
            trash_days=env_number(TRASH_DAYS_ENV, DEFAULT_TRASH_DAYS),
            purge_interval_seconds=max(0.2, env_number(PURGE_INTERVAL_ENV, DEFAULT_PURGE_INTERVAL)),
        )


def queue_file(data_dir: Path) -> Path:
    """Where the embedded queue lives: beside the database, never inside it (huey locks its file)."""
    return data_dir / "jobs.db"


def thumbs_dir(data_dir: Path) -> Path:
    return data_dir / "thumbs"
