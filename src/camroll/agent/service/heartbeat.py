"""The agent's heartbeat: what this device's backup is doing, sent to the server so that a device that
stops backing up is noticed there even when nobody looks at the device.

Sending never fails a backup: errors are logged, and a server without the endpoint (older than the
agent) is tolerated with one debug line.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from camroll import __version__, wire
from camroll.agent.log import logger
from camroll.agent.paths import AgentPaths
from camroll.agent.settings.config import AgentConfig

if TYPE_CHECKING:
    import httpx

    from camroll.agent.report.status import Status

META_CLOCK_SKEW = "server_clock_skew_s"
DEFAULT_INTERVAL = 300.0
# A server asking for a heartbeat every second would turn the agent into load; one asking for one a
# day would make it look silent.
MIN_INTERVAL, MAX_INTERVAL = 10.0, 3600.0
SEND_TIMEOUT = 10.0
# After a one-off pass (cron, `camroll up`): the command waits for it, so it is kept short.
PASS_SEND_TIMEOUT = 5.0

# Per-file states that are not "still to do".
_DONE_STATES = frozenset({"backed_up", "skipped", "failed", "vanished", "ignored"})


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def _clip(text: str | None, limit: int = wire.MAX_TEXT) -> str | None:
    # The server refuses longer fields; a clipped sentence still tells the user what is wrong.
    return text if text is None or len(text) <= limit else text[:limit - 1] + "…"


def from_status(st: Status, *, running: bool = False, error: str | None = None) -> wire.Heartbeat:
    """The heartbeat for ``camroll status``'s view of the device: the one place that maps local state onto
    the wire.  Problems are those status lists (failed, unreadable, waiting, skipped; never files left out
    by choice), paths in their readable form."""
    pending_files = sum(n for s, n in st.files.items() if s not in _DONE_STATES)
    pending_bytes = sum(n for s, n in st.bytes.items() if s not in _DONE_STATES)
    blocker_code = blocker = None
    state: wire.AgentState
    if error:
        state, blocker_code, blocker = "error", "agent_error", error
    elif st.paused_by_policy:
        state, blocker_code, blocker = "paused", st.paused_by_policy, st.stopped_reason
    elif st.stopped_reason:
        state, blocker_code, blocker = "stopped", st.stopped_code or "stopped", st.stopped_reason
    elif running:
        state = "backing_up"
    else:
        state = "idle"
    groups = (("failed", st.failed), ("unreadable", st.unreadable), ("waiting", st.waiting),
              ("skipped", st.skipped))
    problems = [
        wire.DeviceProblem(path=_clip(p.path, wire.MAX_PATH) or "", state=kind, reason=_clip(p.reason) or "",
                           fix=_clip(getattr(p, "fix", "") or None),
                           attempts=p.attempts, next_retry_at=_ts(p.next_retry_at))
        for kind, rows in groups for p in rows
    ][:wire.MAX_HEARTBEAT_PROBLEMS]
    return wire.Heartbeat(
        agent_version=__version__, state=state, headline=_clip(error or st.headline) or "",
        blocker_code=_clip(blocker_code, wire.MAX_CODE), blocker=_clip(blocker),
        pending_files=pending_files, pending_bytes=pending_bytes,
        # The same counts as 'camroll status' (agent/tally.py): files the scan could not read are failures,
        # files left out by choice are not skipped ones.
        failed_files=st.tally.failed + st.tally.unreadable, skipped_files=st.tally.skipped,
        left_out_files=st.tally.left_out, backed_up_files=st.files.get("backed_up", 0),
        last_success_at=_ts(st.last_successful_backup_at), problems=problems,
    )


OFF_SENTENCE = "Off: backup is switched off (enabled = false). Run camroll settings set enabled true."


def switched_off(cfg: AgentConfig) -> str | None:
    """The sentence for backup switched off in the config, which the engine only reports once a pass
    has work; with nothing to do the device must still not look idle and fine."""
    return None if cfg.policy.enabled else OFF_SENTENCE


def build_heartbeat(paths: AgentPaths, cfg: AgentConfig, *, running: bool = False,
                    error: str | None = None) -> wire.Heartbeat:
    from camroll.agent.report.status import get_status

    hb = from_status(get_status(paths, cfg), running=running, error=error)
    off = switched_off(cfg)
    if off is not None and hb.state in ("idle", "backing_up"):
        hb = hb.model_copy(update={"state": "paused", "headline": off, "blocker_code": "disabled", "blocker": off})
    return hb


class HeartbeatSender:
    """Sends heartbeats and remembers what the server asked for: the interval, and whether it has the
    endpoint at all."""

    def __init__(self, paths: AgentPaths, default_interval: float = DEFAULT_INTERVAL,
                 transport: httpx.BaseTransport | None = None, timeout: float = SEND_TIMEOUT) -> None:
        self.paths = paths
        self.timeout = timeout
        self.interval = default_interval
        self.transport = transport
        self.unsupported = False
        self._last_error: str | None = None

    def send(self, cfg: AgentConfig, body: wire.Heartbeat) -> wire.HeartbeatAck | None:
        """Send ``body``; the server's answer, or None when it could not be sent (logged, never raised)."""
        import httpx

        from camroll.agent.api import Api, make_client
        from camroll.agent.errors import AgentError, ProblemError

        if cfg.server is None:
            return None
        client = make_client(cfg.server.url, cfg.server.token, max_connections=1, transport=self.transport)
        client.timeout = httpx.Timeout(self.timeout)
        try:
            sent_at = time.time()
            ack = Api(client).heartbeat(body)
        except ProblemError as exc:
            if exc.status in (404, 405):
                if not self.unsupported:
                    logger.debug("the server has no heartbeat endpoint (%s); heartbeats are not sent", exc.status)
                self.unsupported = True
                return None
            self._failed(f"the server refused the heartbeat: {exc}")
            return None
        except AgentError as exc:
            self._failed(str(exc))
            return None
        finally:
            client.close()
        self.unsupported = False
        if self._last_error is not None:
            logger.info("heartbeats reach the server again")
            self._last_error = None
        self.interval = min(MAX_INTERVAL, max(MIN_INTERVAL, float(ack.interval_seconds)))
        self._record_skew(ack, sent_at)
        return ack

    def _failed(self, why: str) -> None:
        # One line per kind of failure, not one every few minutes for as long as the server is down.
        if why != self._last_error:
            logger.info("heartbeat not sent: %s", why)
        self._last_error = why

    def _record_skew(self, ack: wire.HeartbeatAck, sent_at: float) -> None:
        """Server clock minus ours, for ``camroll doctor`` (measured against the middle of the request)."""
        from camroll.agent.state.db import StateDB

        server = ack.server_time if ack.server_time.tzinfo else ack.server_time.replace(tzinfo=UTC)
        skew = server.timestamp() - (sent_at + time.time()) / 2
        try:
            with StateDB(self.paths.state_db) as db:
                db.set_meta(META_CLOCK_SKEW, f"{skew:.3f}")
        except Exception as exc:  # a busy or damaged state DB must not stop the daemon
            logger.debug("could not record the server clock skew: %s", exc)
