"""How often replicas are copied to and scrubbed, and when their state becomes an incident; from the
environment (``CAMROLL_REPLICA_*``, ``CAMROLL_SCRUB_*``), tests build it directly."""

from __future__ import annotations

from dataclasses import dataclass

from camroll.server.envnumbers import env_number


@dataclass(frozen=True)
class ReplicaSettings:
    # Seconds between rounds of the copy loop when a round found nothing to do.
    interval_seconds: float = 30.0
    # A round copies at most this long before it lets the other replicas (and a pause) in.
    round_seconds: float = 60.0
    # A replica failing this long is an incident (a blip that heals itself within it is not).
    failing_seconds: float = 600.0
    # The oldest blob not yet copied waiting this long is an incident.
    backlog_seconds: float = 24 * 3600.0
    # Back-off of a failing replica: doubles from ``retry_min`` up to ``retry_max``.
    retry_min_seconds: float = 30.0
    retry_max_seconds: float = 900.0
    # The rolling scrub: the whole library re-read once in this period, at most this fast.
    scrub_period_seconds: float = 30 * 86400.0
    scrub_rate_bytes: float = 20 * 2**20
    # Seconds between scrub ticks (each reads its share of the period's bytes); 0 turns the schedule off.
    scrub_tick_seconds: float = 600.0
    # The share of replica copies without a provider checksum that scrub reads back (1.0: every one).
    remote_sample: float = 0.1

    @classmethod
    def from_env(cls) -> ReplicaSettings:
        d = cls()
        return cls(
            interval_seconds=env_number("CAMROLL_REPLICA_INTERVAL", d.interval_seconds),
            failing_seconds=env_number("CAMROLL_REPLICA_FAILING_MINUTES", d.failing_seconds / 60) * 60,
            backlog_seconds=env_number("CAMROLL_REPLICA_BACKLOG_HOURS", d.backlog_seconds / 3600) * 3600,
            scrub_period_seconds=env_number("CAMROLL_SCRUB_PERIOD_DAYS", d.scrub_period_seconds / 86400) * 86400,
            scrub_rate_bytes=env_number("CAMROLL_SCRUB_RATE_MB", d.scrub_rate_bytes / 2**20) * 2**20,
            scrub_tick_seconds=env_number("CAMROLL_SCRUB_TICK_SECONDS", d.scrub_tick_seconds),
            remote_sample=min(1.0, env_number("CAMROLL_SCRUB_SAMPLE", d.remote_sample)),
        )
