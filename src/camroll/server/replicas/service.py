"""The replicas' background work inside ``camroll serve``: one thread that, round after round, takes each
replica's copy lease it can get (``replica-copy:ID``) and copies what is due, deletes what nothing needs,
and runs the rolling scrub's tick under the ``scrub`` lease.  Leases (server/leases.py) keep each replica's
copies and the scrub to one process across server replicas; a dead holder's work moves on after the TTL."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from camroll.server.context import Context
from camroll.server.leases import Leases, period_ttl
from camroll.server.models import Replica, utcnow
from camroll.server.replicas import copies
from camroll.server.replicas.scrub import SCRUB_LEASE, scheduled_tick
from camroll.server.replicas.settings import ReplicaSettings
from camroll.server.replicas.urls import open_target
from camroll.server.storage.base import StorageFailure

log = logging.getLogger("camroll.server.replicas")

COPY_LEASE_TTL = 120.0


def run_replica(ctx: Context, replica_id: int, leases: Leases, settings: ReplicaSettings,
                clock: Callable[[], datetime] = utcnow, deadline: float | None = None) -> copies.RoundResult | None:
    """One round for one replica if this process gets its lease; None if another process has it."""
    name = copies.copy_lease(replica_id)
    if not leases.acquire(name, COPY_LEASE_TTL):
        return None
    try:
        with ctx.db() as db:
            r = db.get(Replica, replica_id)
            if r is None:
                return None
            url, options = r.url, dict(r.options or {})
        try:
            target = open_target(url, options)
        except ValueError as exc:
            copies.record_failure(ctx, replica_id, StorageFailure(str(exc), "Fix the replica's options "
                                  "(remove it and add it again)."), clock(), settings)
            return None
        try:
            copies.discover(ctx, replica_id)
            result = copies.copy_round(ctx, replica_id, target, settings=settings, clock=clock,
                                       renew=lambda: leases.renew(name, COPY_LEASE_TTL), deadline=deadline)
            if result.failure is None and result.skipped is None:
                try:
                    copies.forget_unneeded(ctx, replica_id, target)
                except StorageFailure as exc:
                    log.warning("replica %d: deleting copies nothing needs failed: %s", replica_id, exc)
            return result
        finally:
            target.close()
    finally:
        leases.release(name)


def run_all_once(ctx: Context, leases: Leases, settings: ReplicaSettings,
                 clock: Callable[[], datetime] = utcnow) -> dict[int, copies.RoundResult | None]:
    with ctx.db() as db:
        ids = list(db.scalars(select(Replica.id).where(Replica.paused_at.is_(None)).order_by(Replica.id)))
    out: dict[int, copies.RoundResult | None] = {}
    for rid in ids:
        try:
            out[rid] = run_replica(ctx, rid, leases, settings, clock,
                                   deadline=time.monotonic() + settings.round_seconds)
        except Exception:
            log.exception("replica %d: the copy round failed; tried again next round", rid)
            out[rid] = None
    return out


class Replicator:
    """The thread; ``start`` and ``stop`` from the app's lifespan."""

    def __init__(self, ctx: Context, leases: Leases, settings: ReplicaSettings | None = None) -> None:
        self.ctx = ctx
        self.leases = leases
        self.settings = settings or ReplicaSettings.from_env()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_scrub = time.monotonic() + min(60.0, self.settings.scrub_tick_seconds)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="camroll-replicas", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                for result in run_all_once(self.ctx, self.leases, self.settings).values():
                    busy = busy or bool(result and result.copied)
            except Exception:
                log.exception("the replica copy loop failed; tried again shortly")
            if self.settings.scrub_tick_seconds and time.monotonic() >= self._next_scrub:
                self._next_scrub = time.monotonic() + self.settings.scrub_tick_seconds
                try:
                    if self.leases.acquire(SCRUB_LEASE, period_ttl(self.settings.scrub_tick_seconds)):
                        scheduled_tick(self.ctx, self.settings)
                except Exception:
                    log.exception("the scheduled scrub failed; tried again at the next tick")
            self._wake.wait(1.0 if busy else self.settings.interval_seconds)
            self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
