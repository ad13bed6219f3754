"""The rate limits one server process keeps (see ratelimit.py), made once per Context with one clock.

Login: five wrong passwords for an account are free, then each further one doubles the wait (1 s, 2 s,
4 s ... 15 min); twenty per client address, since a household or office shares one.  While a key
waits, logins are refused with 429 before any password is hashed.  At most ``security.ARGON2_AT_ONCE``
passwords are verified at once (each costs 19 MiB and a core); logins waiting their turn wait in the
event loop, holding no thread, and beyond ``MAX_LOGINS_WAITING`` they are told to come back (503).

Alert tests: one ``POST /me/notifications/test`` per user every ``NOTIFY_TEST_INTERVAL`` seconds."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio

from camroll.server.ratelimit import Backoff, Clock, Interval
from camroll.server.security import ARGON2_AT_ONCE

ACCOUNT_FREE_FAILURES = 5
ADDRESS_FREE_FAILURES = 20
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 15 * 60.0
FORGET_FAILURES_AFTER = 60 * 60.0
MAX_LOGINS_WAITING = 32
NOTIFY_TEST_INTERVAL = 10.0


def _backoff(free: int, clock: Clock) -> Backoff:
    return Backoff(free=free, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_CAP_SECONDS, forget=FORGET_FAILURES_AFTER,
                   clock=clock)


@dataclass
class Throttles:
    clock: Clock = time.monotonic
    login_accounts: Backoff = field(init=False)
    login_addresses: Backoff = field(init=False)
    notify_tests: Interval = field(init=False)
    # Created lazily: a limiter belongs to the event loop that first uses it.
    _argon2: anyio.CapacityLimiter | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.login_accounts = _backoff(ACCOUNT_FREE_FAILURES, self.clock)
        self.login_addresses = _backoff(ADDRESS_FREE_FAILURES, self.clock)
        self.notify_tests = Interval(NOTIFY_TEST_INTERVAL, clock=self.clock)

    def argon2(self) -> anyio.CapacityLimiter:
        if self._argon2 is None:
            self._argon2 = anyio.CapacityLimiter(ARGON2_AT_ONCE)
        return self._argon2
