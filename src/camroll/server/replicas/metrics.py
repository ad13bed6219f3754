"""Replica gauges for ``/metrics``, read at scrape time and cached like the library's (server/metrics.py):
the backlog per replica (files, bytes, age of the oldest), copies by state, and whether a replica is failing."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from camroll.server.models import utcnow

if TYPE_CHECKING:
    from camroll.server.context import Context
    from camroll.server.replicas.status import ReplicaStatus

log = logging.getLogger("camroll.server.metrics")
_SAME = " Read at scrape time, the same on every replica: aggregate with max, not sum."


class ReplicaCollector(Collector):
    def __init__(self, ctx: Context, *, cache_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ctx = ctx
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._rows: list[ReplicaStatus] = []
        self._read_at: float | None = None

    def describe(self) -> Iterable[Any]:
        return []

    def _read(self) -> list[ReplicaStatus]:
        from camroll.server.replicas import status

        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._cache_seconds:
                try:
                    with self._ctx.db() as db:
                        self._rows = status.read(db)
                except Exception as exc:
                    log.warning("metrics: reading the replicas failed: %s", exc)
                self._read_at = now
            return self._rows

    def collect(self) -> Iterator[Any]:
        rows = self._read()
        now = utcnow()
        files = GaugeMetricFamily("camroll_replica_backlog_files", "Originals not yet copied to the replica "
                                  "(pending, failed or not queued yet)." + _SAME, labels=["replica"])
        size = GaugeMetricFamily("camroll_replica_backlog_bytes", "Bytes of those originals." + _SAME,
                                 labels=["replica"])
        age = GaugeMetricFamily("camroll_replica_backlog_oldest_seconds", "How long the oldest original not yet "
                                "copied has been waiting (0: none)." + _SAME, labels=["replica"])
        failing = GaugeMetricFamily("camroll_replica_failing", "1 if the replica's last copy failed (see 'camroll "
                                    "admin replica status'), else 0." + _SAME, labels=["replica"])
        paused = GaugeMetricFamily("camroll_replica_paused", "1 if the replica is paused." + _SAME,
                                   labels=["replica"])
        copies = GaugeMetricFamily("camroll_replica_copies", "Copies on the replica by state (pending, copied, "
                                   "verified, failed)." + _SAME, labels=["replica", "state"])
        for r in rows:
            files.add_metric([r.name], r.backlog_files)
            size.add_metric([r.name], r.backlog_bytes)
            age.add_metric([r.name], max(0.0, (now - r.oldest_pending).total_seconds()) if r.oldest_pending else 0.0)
            failing.add_metric([r.name], 1.0 if r.failing_since else 0.0)
            paused.add_metric([r.name], 1.0 if r.paused else 0.0)
            for state in ("pending", "copied", "verified", "failed"):
                copies.add_metric([r.name, state], r.copies.get(state, 0))
        yield from (files, size, age, failing, paused, copies)
