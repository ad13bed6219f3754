from __future__ import annotations

import random

import httpx
import pytest

from camroll.agent.api import with_retries
from camroll.agent.backup.retry import ACROSS_PASSES_CAP, Backoff, next_retry_delay
from camroll.agent.errors import ProblemError, ServerUnreachable


def test_full_jitter_bounds() -> None:
    b = Backoff(base=0.5, cap=8.0, attempts=5)
    rng = random.Random(1)
    for retry in range(10):
        upper = min(8.0, 0.5 * 2**retry)
        samples = [b.delay(retry, rng) for _ in range(200)]
        assert all(0 <= s <= upper for s in samples)
        assert max(samples) > upper * 0.8  # really uses the whole range


def test_across_passes_grows_and_caps() -> None:
    rng = random.Random(2)
    assert 30 <= next_retry_delay(1, rng) <= 60
    assert 120 <= next_retry_delay(3, rng) <= 240
    assert next_retry_delay(50, rng) <= ACROSS_PASSES_CAP


def test_with_retries_transient_then_ok() -> None:
    sleeps: list[float] = []
    calls = iter([ProblemError(503, "internal", "busy"), httpx.ConnectError("refused"), "ok"])

    def fn() -> str:
        v = next(calls)
        if isinstance(v, Exception):
            raise v
        return v

    assert with_retries(fn, base_url="http://x", sleep=sleeps.append) == "ok"
    assert len(sleeps) == 2


def test_with_retries_gives_up() -> None:
    sleeps: list[float] = []

    def down() -> None:
        raise httpx.ConnectError("refused")

    with pytest.raises(ServerUnreachable, match="Cannot reach the camroll server: Cannot connect to x"):
        with_retries(down, base_url="http://x", sleep=sleeps.append, backoff=Backoff(attempts=3))
    assert len(sleeps) == 2


def test_with_retries_not_transient() -> None:
    def quota() -> None:
        raise ProblemError(413, "quota_exceeded", "full", "free space")

    with pytest.raises(ProblemError, match=r"full\. Fix: free space\."):
        with_retries(quota, base_url="http://x", sleep=lambda s: None)
