"""The shape every scenario follows: induce a cause, check that ``status``, ``why`` and ``doctor`` name it
and its fix, clear it, and check that a running ``camroll agent`` finishes the backup by itself."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from support.wait import wait_until

from .conftest import ScenarioAgent

# Short daemon intervals keep the suite fast; the behaviour is the same as with the defaults.  Waits are
# generous because a loaded 2-core CI machine is slow; the "within 10 s" promise is timed in e2e/test_watch.py.
DAEMON_ARGS = ("agent", "--condition-interval", "0.5", "--rescan-interval", "3", "--retry-base", "0.5",
               "--debounce", "0.3")


def lower(text: object) -> str:
    return str(text).lower()


def expect_named(agent: ScenarioAgent, photo: Path | None, cause: str, fix: str, *,
                 doctor_fails: bool = False) -> dict[str, Any]:
    """``status``'s headline, ``why PHOTO`` and ``doctor`` all name the cause; status and doctor the fix.
    ``doctor_fails``: the cause is a failure (exit 1), not a warning about a policy doing its job.
    Returns the status JSON."""
    status = agent.json("status")
    headline = lower(status["headline"])
    assert cause in headline and fix in headline, f"status headline: {status['headline']!r}"
    if photo is not None:
        why = agent.run("why", str(photo), check=False)
        assert why.returncode == 0, why.stderr
        assert cause in lower(why.stdout), f"why {photo.name}:\n{why.stdout}"
    doctor = agent.json("doctor")
    flagged = [c for c in doctor["checks"] if c["status"] != "PASS"
               and cause in lower(c["message"]) + " " + lower(c.get("fix") or "")]
    assert flagged, f"doctor does not name {cause!r}: {doctor['checks']}"
    assert doctor["ok"] is (not doctor_fails), doctor["checks"]
    assert any(fix in lower(c["message"]) + " " + lower(c.get("fix") or "") for c in flagged), flagged
    return dict(status)


def start_daemon(agent: ScenarioAgent) -> None:
    agent.popen(*DAEMON_ARGS)


def stays_off_server(agent: ScenarioAgent, data: bytes, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert agent.server_has(data) is None, "uploaded although the cause was still there"
        time.sleep(0.2)


def arrives(agent: ScenarioAgent, data: bytes, timeout: float = 30.0) -> None:
    try:
        wait_until(lambda: agent.server_has(data) is not None, timeout, what="the photo is on the server")
    except AssertionError as exc:
        status = agent.run("status", check=False).stdout
        raise AssertionError(f"{exc}\nstatus:\n{status}\nagent output:\n{agent.outputs()}") from None


def all_clear(agent: ScenarioAgent, timeout: float = 30.0) -> None:
    seen: list[str] = []

    def ok() -> bool:
        seen.append(agent.json("status")["headline"])
        h = lower(seen[-1])
        return "backed up" in h and not any(w in h for w in ("paused", "stopped", "off:", "waiting", "failed"))
    try:
        wait_until(ok, timeout, what="status says everything is backed up")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last headline: {seen[-1] if seen else None!r}") from None
