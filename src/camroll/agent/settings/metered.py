"""``metered_daily_cap_mb``: bytes sent while the network is metered, counted per local day in the state
DB's meta table, so the cap holds across passes and restarts and resets at midnight."""

from __future__ import annotations

import datetime as dt
import threading

from camroll.agent.settings.conditions import Conditions
from camroll.agent.settings.config import PolicyConfig
from camroll.agent.state.db import StateDB

META_PREFIX = "metered_bytes:"
MB = 1_000_000


def is_metered(conditions: Conditions) -> bool:
    """Metered as the policy sees it: known metered, or mobile data with the flag unknown."""
    net = conditions.network
    return net.metered is True or (net.metered is None and net.kind == "cellular")


def cap_reason(cap_mb: int, label: str = "mobile data") -> str:
    return (f"Paused: {cap_mb:,} MB of {label} used today, your daily cap. Connect to Wi-Fi or raise "
            "metered_daily_cap_mb.")


class MeteredMeter:
    """Counts bytes sent today on a metered network against the cap.  ``add`` is called from upload
    workers; ``save`` (coordinator) writes the total back."""

    def __init__(self, db: StateDB, cap_mb: int, today: dt.date | None = None) -> None:
        self.db = db
        self.cap = cap_mb * MB
        self.cap_mb = cap_mb
        self.key = META_PREFIX + (today or dt.date.today()).isoformat()
        self.used = int(db.get_meta(self.key) or 0)
        self._saved = self.used
        self._lock = threading.Lock()

    @classmethod
    def for_pass(cls, db: StateDB, policy: PolicyConfig, conditions: Conditions,
                 today: dt.date | None = None) -> MeteredMeter | None:
        """A meter when the cap applies now (a cap is set and the network is metered), else None."""
        if policy.metered_daily_cap_mb <= 0 or not is_metered(conditions):
            return None
        return cls(db, policy.metered_daily_cap_mb, today)

    @property
    def reached(self) -> bool:
        return self.used >= self.cap

    @property
    def reason(self) -> str:
        return cap_reason(self.cap_mb)

    def add(self, n: int) -> None:
        with self._lock:
            self.used += n

    def save(self) -> None:
        with self._lock:
            used = self.used
        if used != self._saved:
            self.db.set_meta(self.key, str(used))
            self._saved = used


def used_today(db: StateDB, today: dt.date | None = None) -> int:
    return int(db.get_meta(META_PREFIX + (today or dt.date.today()).isoformat()) or 0)
