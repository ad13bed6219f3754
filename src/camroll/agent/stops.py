"""Why a backup pass stopped, as a typed value.

A pass that does not run to the end stops for one reason, raised once (``errors.PassAborted`` carries it,
or the pass coordinator decides it) and stored once in the state DB as part of the last-pass record
(``state.lastpass``).  Status, doctor, problems and the heartbeat read that record; nothing compares the
sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class StopCode(StrEnum):
    PAUSED = "paused"  # the backup policy said not now (battery, network, time window, switched off)
    METERED_CAP = "metered_cap"  # today's allowance on a metered network is used up
    QUOTA = "quota"  # the account's storage quota is full
    SERVER_FULL = "server_full"  # the server's disk is full
    UNREACHABLE = "unreachable"  # the server could not be reached at all
    CLIENT_TOO_OLD = "client_too_old"  # the server needs a newer agent (or speaks another API version)
    AUTH = "auth"  # the server no longer accepts this device (revoked token, no permission)
    STOPPED = "stopped"  # asked to stop, or interrupted


# Stops that are a choice of the user's policy rather than a fault: shown as "Paused: ..." / "Off: ...".
PAUSES = frozenset({StopCode.PAUSED, StopCode.METERED_CAP})


@dataclass(frozen=True, slots=True)
class Stop:
    """``sentence`` is what the user reads (a policy pause is already "Paused: ..."; other stops get
    "Stopped: " in front in the headline); ``fix`` is what files held by the stop are told to do, empty
    when the sentence says it; ``policy`` is the policy verdict's code (``settings.policy.VerdictCode``,
    e.g. "battery_low") when ``code`` is PAUSED; ``cause`` is the sentence without its fix, when the
    two were built apart (storage stops), for reports that give their own fix."""

    code: StopCode
    sentence: str
    fix: str = ""
    policy: str | None = None
    cause: str = ""

    @property
    def what(self) -> str:
        """What happened, without the fix."""
        return self.cause or self.sentence

    @property
    def paused(self) -> bool:
        return self.code in PAUSES

    @property
    def shown_code(self) -> str:
        """The code scripts see in ``--json`` and on the devices page: a pause shows the policy's code."""
        return self.policy if self.code is StopCode.PAUSED and self.policy else self.code.value

    @property
    def headline(self) -> str:
        return self.sentence if self.paused else f"Stopped: {self.sentence}"

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code.value, "sentence": self.sentence, "fix": self.fix, "policy": self.policy,
                "cause": self.cause}

    @classmethod
    def from_json(cls, d: object) -> Stop | None:
        """None for anything that is not a stop this agent knows (a damaged or newer record)."""
        if not isinstance(d, dict):
            return None
        try:
            code = StopCode(str(d.get("code")))
        except ValueError:
            return None
        sentence, fix, policy, cause = d.get("sentence"), d.get("fix", ""), d.get("policy"), d.get("cause", "")
        if not (isinstance(sentence, str) and isinstance(fix, str) and isinstance(policy, str | None)
                and isinstance(cause, str)):
            return None
        return cls(code, sentence, fix, policy, cause)


def storage_fix(code: StopCode) -> str:
    """The fix files held back by a storage stop are given."""
    if code is StopCode.SERVER_FULL:
        return "Ask the server's admin to free disk space on the server; backup resumes by itself."
    return "Free space or raise the quota; backup resumes by itself."
