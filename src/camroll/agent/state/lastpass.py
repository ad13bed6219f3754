"""The record of the last backup pass, kept in the state DB as one JSON value: when it ran, when a pass
last found everything backed up, and what stopped it (a ``stops.Stop``, or none when it ran to the end).

Written once per pass by the pass (``backup.run``); read by status, problems, doctor and the heartbeat,
which never import the pass itself.  ``parse`` takes the stored text so the doctor can read it from a
read-only connection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from camroll.agent.stops import Stop, StopCode

if TYPE_CHECKING:
    from camroll.agent.state.db import StateDB

META_KEY = "last_pass"
# Written by agents before the record existed; read once so an upgraded agent still knows its last
# successful backup and what stopped it, and never written again.
_OLD_SUCCESS = "last_successful_backup_at"
_OLD_AT = "last_pass_at"
_OLD_STOP = "last_pass_stopped_reason"
_OLD_STOP_CODE = "last_pass_stopped_code"
_OLD_POLICY_CODE = "last_policy_code"


@dataclass(frozen=True, slots=True)
class LastPass:
    at: float | None = None
    succeeded_at: float | None = None  # the last pass that found everything backed up
    stop: Stop | None = None

    def to_text(self) -> str:
        return json.dumps({"at": self.at, "succeeded_at": self.succeeded_at,
                           "stop": None if self.stop is None else self.stop.to_json()})

    def finished(self, at: float, stop: Stop | None, *, all_backed_up: bool) -> LastPass:
        """The record after a pass that ended at ``at``."""
        return replace(self, at=at, stop=stop, succeeded_at=at if all_backed_up and stop is None
                       else self.succeeded_at)


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def parse(text: str | None) -> LastPass:
    """The record from its stored text; an empty record for none or a damaged one."""
    if not text:
        return LastPass()
    try:
        d = json.loads(text)
    except ValueError:
        return LastPass()
    if not isinstance(d, dict):
        return LastPass()
    return LastPass(_num(d.get("at")), _num(d.get("succeeded_at")), Stop.from_json(d.get("stop")))


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _from_old_keys(get: dict[str, str | None]) -> LastPass:
    reason = get.get(_OLD_STOP) or ""
    stop = None
    if reason:
        code = get.get(_OLD_STOP_CODE) or "stopped"
        try:
            stop = Stop(StopCode(code), reason)
        except ValueError:
            # Before the record, a policy pause was stored under the policy's own code.
            policy = get.get(_OLD_POLICY_CODE) or code
            stop = Stop(StopCode.PAUSED, reason, policy=policy)
    return LastPass(_float(get.get(_OLD_AT)), _float(get.get(_OLD_SUCCESS)), stop)


def read(db: StateDB) -> LastPass:
    text = db.get_meta(META_KEY)
    if text is not None:
        return parse(text)
    keys = (_OLD_SUCCESS, _OLD_AT, _OLD_STOP, _OLD_STOP_CODE, _OLD_POLICY_CODE)
    return _from_old_keys({k: db.get_meta(k) for k in keys})


def read_text(text: str | None, old: dict[str, str | None]) -> LastPass:
    """``read`` for a caller holding the raw META values (the doctor's read-only connection)."""
    return parse(text) if text is not None else _from_old_keys(old)


OLD_KEYS = (_OLD_SUCCESS, _OLD_AT, _OLD_STOP, _OLD_STOP_CODE, _OLD_POLICY_CODE)


def write(db: StateDB, record: LastPass) -> None:
    db.set_meta(META_KEY, record.to_text())


# Paths the last scan could not read or record, as JSON [[path, reason], ...] (for problems and why).
SCAN_UNREADABLE_KEY = "scan_unreadable"
MAX_SCAN_UNREADABLE = 1000


def record_scan_unreadable(db: StateDB, unreadable: list[tuple[str, str]]) -> None:
    """Only written when it changed, so a no-change pass writes nothing here."""
    value = json.dumps(unreadable[:MAX_SCAN_UNREADABLE]) if unreadable else ""
    if (db.get_meta(SCAN_UNREADABLE_KEY) or "") != value:
        db.set_meta(SCAN_UNREADABLE_KEY, value)


def scan_unreadable(db: StateDB) -> list[tuple[str, str]]:
    raw = db.get_meta(SCAN_UNREADABLE_KEY)
    if not raw:
        return []
    try:
        return [(str(p), str(r)) for p, r in json.loads(raw)]
    except (ValueError, TypeError):
        return []
