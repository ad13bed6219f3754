"""Scrub: prove every blob still holds the bytes its SHA-256 names, on the primary store and on every
replica, and repair what is wrong.

For each blob (``blobs`` rows, in key order, or a chosen few):

1. The primary's copy is read whole and hashed (throttled to ``rate`` bytes a second).  Missing,
   shorter, other bytes, or unreadable: a finding, repaired from the first replica whose copy is read
   back and hashes right (downloaded to a temporary file, then the bad blob is deleted and the good bytes
   put in its place, then read back once more).  Proven intact: ``blob_checks.verified_at`` = now.
2. Each replica holding a copy is asked for it: by the provider's SHA-256 where the target gives one,
   else read back and hashed for a ``sample`` share of the copies (every copy on a folder replica; the
   size alone for the rest).  Missing or wrong: a finding, and the copy is put again from the (good)
   primary at once.  Proven right: the copy is ``verified`` with its ``verified_at``.

A primary store that fails as a whole (unreachable, no permission) ends the scrub with that failure:
nothing is "repaired" from a store that merely did not answer.  A replica that fails is left out of the
rest of the run (its copy loop reports it).  Every finding is a ``scrub_findings`` row and is notified
to the admins, one message per run.

The schedule (``scheduled_tick``) re-reads the library once per ``scrub_period`` in small portions, the
blobs proven longest ago first, under the ``scrub`` lease: once across server replicas.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from camroll.server.context import Context
from camroll.server.models import Blob, BlobCheck, Replica, ReplicaCopy, ScrubFinding, User, utcnow
from camroll.server.replicas.copies import mark_pending
from camroll.server.replicas.settings import ReplicaSettings
from camroll.server.replicas.states import PRIMARY, Action, CopyState, Problem, Reason
from camroll.server.replicas.target import Kind, ReplicaTarget
from camroll.server.replicas.urls import open_target
from camroll.server.storage.base import BlobNotFound, StorageFailure

log = logging.getLogger("camroll.server.scrub")

SCRUB_LEASE = "scrub"
_BLOCK = 1 << 20
_PAGE = 500
Clock = Callable[[], datetime]


class Pace:
    """A token bucket of ``rate`` bytes a second (None: as fast as the disks go)."""

    def __init__(self, rate: float | None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self._sleep = sleep
        self._start = time.monotonic()
        self._done = 0

    def __call__(self, n: int) -> None:
        if not self.rate:
            return
        self._done += n
        ahead = self._done / self.rate - (time.monotonic() - self._start)
        if ahead > 0:
            self._sleep(ahead)


class FindingInfo(BaseModel):
    sha256: str
    location: str
    problem: Problem
    action: Action
    source: str | None
    detail: str


class ScrubReport(BaseModel):
    blobs: int = 0
    bytes: int = 0
    primary_ok: int = 0
    copies_checked: int = 0
    copies_read_back: int = 0
    copies_by_checksum: int = 0
    findings: list[FindingInfo] = []
    repaired: int = 0
    recopied: int = 0
    unrepaired: int = 0
    replicas_skipped: dict[str, str] = {}
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    error: str | None = None


@dataclass
class _Replica:
    id: int
    name: str
    kind: Kind
    target: ReplicaTarget
    sample: float


def _hash_stream(stream: Any, pace: Pace, sink: Any = None) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    try:
        while block := stream.read(_BLOCK):
            h.update(block)
            n += len(block)
            if sink is not None:
                sink.write(block)
            pace(len(block))
    finally:
        stream.close()
    return h.hexdigest(), n


def _problem(size: int, got: int) -> Problem:
    return Problem.TRUNCATED if got < size else Problem.ALTERED


@dataclass
class Scrubber:
    ctx: Context
    settings: ReplicaSettings = field(default_factory=ReplicaSettings)
    rate: float | None = None
    sample: float | None = None  # None: the settings' remote share; folders always read back
    clock: Clock = utcnow
    progress: Callable[[ScrubReport, int], None] | None = None
    rng: random.Random = field(default_factory=random.Random)
    stop: threading.Event = field(default_factory=threading.Event)
    # False: read every sampled copy back even where the provider gives a SHA-256 (``--read-back``).
    trust_checksums: bool = True

    def _replicas(self) -> list[_Replica]:
        out: list[_Replica] = []
        with self.ctx.db() as db:
            rows = [(r.id, r.name, r.kind, r.url, dict(r.options or {}))
                    for r in db.scalars(select(Replica).where(Replica.paused_at.is_(None)).order_by(Replica.id))]
        for rid, name, kind, url, options in rows:
            try:
                target = open_target(url, options)
            except ValueError as exc:
                log.warning("scrub: replica %s cannot be opened: %s", name, exc)
                continue
            k = Kind(kind)
            share = 1.0 if k is Kind.FOLDER else (self.sample if self.sample is not None else
                                                   self.settings.remote_sample)
            if self.sample is not None:
                share = self.sample
            out.append(_Replica(rid, name, k, target, share))
        return out

    def run(self, shas: Iterable[tuple[str, int]] | None = None, total: int | None = None) -> ScrubReport:
        report = ScrubReport()
        started, cpu0 = time.monotonic(), time.process_time()
        pace = Pace(self.rate)
        replicas = self._replicas()
        try:
            for sha256, size in (shas if shas is not None else self._all_blobs()):
                if self.stop.is_set():
                    break
                self._one(sha256, size, replicas, pace, report)
                if self.progress is not None:
                    self.progress(report, total or 0)
        except StorageFailure as exc:
            report.error = f"{exc.problem} {exc.fix}"
            log.error("scrub stopped: the primary store failed: %s", exc)
        finally:
            for r in replicas:
                with contextlib.suppress(Exception):
                    r.target.close()
        report.seconds = time.monotonic() - started
        report.cpu_seconds = time.process_time() - cpu0
        if report.findings:
            _notify(self.ctx, report)
        return report

    def _all_blobs(self) -> Iterable[tuple[str, int]]:
        after = ""
        while True:
            with self.ctx.db() as db:
                rows = db.execute(select(Blob.sha256, Blob.size).where(Blob.sha256 > after)
                                  .order_by(Blob.sha256).limit(_PAGE)).all()
            if not rows:
                return
            for sha256, size in rows:
                yield str(sha256), int(size)
            after = str(rows[-1][0])

    # -- one blob ---------------------------------------------------------------------------------
    def _one(self, sha256: str, size: int, replicas: list[_Replica], pace: Pace, report: ScrubReport) -> None:
        report.blobs += 1
        with self.ctx.db() as db:
            held = {int(rid): str(state) for rid, state in db.execute(
                select(ReplicaCopy.replica_id, ReplicaCopy.state).where(ReplicaCopy.sha256 == sha256))}
        problem, detail = self._check_primary(sha256, size, pace, report)
        primary_ok = problem is None
        if problem is not None:
            primary_ok = self._repair_primary(sha256, size, problem, detail, replicas, held, pace, report)
        if primary_ok:
            report.primary_ok += 1
            self._proven(sha256)
        for r in replicas:
            if r.name in report.replicas_skipped:
                continue
            if held.get(r.id) in (CopyState.COPIED.value, CopyState.VERIFIED.value):
                self._check_copy(r, sha256, size, pace, report, primary_ok)

    def _check_primary(self, sha256: str, size: int, pace: Pace,
                       report: ScrubReport) -> tuple[Problem | None, str]:
        try:
            stream = self.ctx.blobs.open(sha256)
        except BlobNotFound:
            return Problem.MISSING, "The primary store has no such blob."
        try:
            digest, n = _hash_stream(stream, pace)
        except StorageFailure:
            raise
        except OSError as exc:
            return Problem.UNREADABLE, f"Reading it failed: {exc.strerror or exc}."
        report.bytes += n
        if digest == sha256 and n == size:
            return None, ""
        return _problem(size, n), f"{n} of {size} bytes, hashing to {digest}."

    def _repair_primary(self, sha256: str, size: int, problem: Problem, detail: str, replicas: list[_Replica],
                        held: dict[int, str], pace: Pace, report: ScrubReport) -> bool:
        tmpdir = self.ctx.settings.data_dir / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        for r in replicas:
            if held.get(r.id) not in (CopyState.COPIED.value, CopyState.VERIFIED.value) or \
                    r.name in report.replicas_skipped:
                continue
            fd, name = tempfile.mkstemp(dir=tmpdir, prefix=f"repair-{sha256[:16]}-")
            path = Path(name)
            try:
                try:
                    with os.fdopen(fd, "wb") as sink:
                        digest, n = _hash_stream(r.target.open(sha256), pace, sink)
                        sink.flush()
                        os.fsync(sink.fileno())
                except BlobNotFound:
                    mark_pending(self.ctx, r.id, sha256, Reason.COPY_CORRUPT, "scrub found this copy missing")
                    held[r.id] = CopyState.PENDING.value
                    self._record(report, sha256, r.name, Problem.MISSING, Action.UNREPAIRED, None,
                                 "The replica has no copy although it was recorded as copied.")
                    continue
                except StorageFailure as exc:
                    report.replicas_skipped[r.name] = f"{exc.problem} {exc.fix}"
                    continue
                report.bytes += n
                if digest != sha256 or n != size:
                    self._record(report, sha256, r.name, _problem(size, n), Action.UNREPAIRED, None,
                                 f"Also wrong on this replica ({n} of {size} bytes, hashing to {digest}); "
                                 f"not used for the repair.")
                    mark_pending(self.ctx, r.id, sha256, Reason.COPY_CORRUPT, "scrub found this copy wrong")
                    held[r.id] = CopyState.PENDING.value
                    continue
                # The primary from here on: its failure ends the scrub (raised).
                if problem is not Problem.MISSING:
                    self.ctx.blobs.delete(sha256)  # put_file keeps an existing blob as it is
                self.ctx.blobs.put_file(sha256, path)
                again, m = _hash_stream(self.ctx.blobs.open(sha256), pace)
                if again != sha256 or m != size:
                    raise StorageFailure(f"The primary store kept other bytes for blob {sha256} when it was repaired.",
                                         "The primary's disk or service is faulty: check it before anything else.")
                self._record(report, sha256, PRIMARY, problem, Action.REPAIRED, r.name, detail)
                log.warning("scrub: blob %s was %s on the primary store; repaired from replica %s",
                            sha256, problem.value, r.name)
                return True
            finally:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        self._record(report, sha256, PRIMARY, problem, Action.UNREPAIRED, None,
                     f"{detail} No replica holds a good copy: restore it from a device that still has the file "
                     f"(its next backup uploads it again once the blob is gone).")
        return False

    def _check_copy(self, r: _Replica, sha256: str, size: int, pace: Pace, report: ScrubReport,
                    primary_ok: bool) -> None:
        report.copies_checked += 1
        try:
            provider = r.target.checksum(sha256) if self.trust_checksums else None
            problem: Problem | None = None
            detail = ""
            proven = False
            if provider is not None:
                report.copies_by_checksum += 1
                proven = provider == sha256
                if not proven:
                    problem, detail = Problem.ALTERED, f"The provider's SHA-256 is {provider}."
            elif self.rng.random() < r.sample:
                report.copies_read_back += 1
                digest, n = _hash_stream(r.target.open(sha256), pace)
                report.bytes += n
                proven = digest == sha256 and n == size
                if not proven:
                    problem, detail = _problem(size, n), f"{n} of {size} bytes, hashing to {digest}."
            else:
                got = r.target.stat(sha256).size
                if got != size:
                    problem, detail = _problem(size, got), f"{got} of {size} bytes."
        except BlobNotFound:
            problem, proven = Problem.MISSING, False
            detail = "The replica has no copy although it was recorded as copied."
        except StorageFailure as exc:
            report.replicas_skipped[r.name] = f"{exc.problem} {exc.fix}"
            return
        now = self.clock()
        if problem is None:
            if proven:
                self._set_copy(r.id, sha256, state=CopyState.VERIFIED.value, verified_at=now, reason=None, detail=None)
            return
        if not primary_ok:
            mark_pending(self.ctx, r.id, sha256, Reason.COPY_CORRUPT, f"scrub: {detail}")
            self._record(report, sha256, r.name, problem, Action.UNREPAIRED, None,
                         f"{detail} The primary's copy is bad too; copied again once it is repaired.")
            return
        try:
            with self.ctx.blobs.local_file(sha256) as path:
                r.target.put(sha256, path)
            after = r.target.checksum(sha256)
            if after is None:
                digest, n = _hash_stream(r.target.open(sha256), pace)
                after = digest if n == size else None
            if after != sha256:
                raise StorageFailure(f"{r.target.where} kept other bytes for blob {sha256} when it was copied again.",
                                     "The replica is faulty: check it, or remove it and add a new one.")
        except StorageFailure as exc:
            mark_pending(self.ctx, r.id, sha256, Reason.COPY_CORRUPT, f"scrub: {detail}")
            self._record(report, sha256, r.name, problem, Action.UNREPAIRED, None,
                         f"{detail} Copying it again failed: {exc.problem}")
            return
        self._set_copy(r.id, sha256, state=CopyState.VERIFIED.value, verified_at=now, copied_at=now,
                       reason=None, detail=None)
        self._record(report, sha256, r.name, problem, Action.RECOPIED, PRIMARY, detail)
        log.warning("scrub: the copy of %s on replica %s was %s; copied again from the primary",
                    sha256, r.name, problem.value)

    # -- records ----------------------------------------------------------------------------------
    def _set_copy(self, replica_id: int, sha256: str, **values: Any) -> None:
        from sqlalchemy import update

        with self.ctx.conn() as conn:
            conn.execute(update(ReplicaCopy).where(ReplicaCopy.replica_id == replica_id,
                                                   ReplicaCopy.sha256 == sha256).values(**values))

    def _proven(self, sha256: str) -> None:
        now = self.clock()
        with self.ctx.conn() as conn:
            module = postgresql if conn.dialect.name == "postgresql" else sqlite
            ins = module.insert(BlobCheck).values(sha256=sha256, verified_at=now)
            conn.execute(ins.on_conflict_do_update(index_elements=["sha256"], set_={"verified_at": now}))

    def _record(self, report: ScrubReport, sha256: str, location: str, problem: Problem, action: Action,
                source: str | None, detail: str) -> None:
        info = FindingInfo(sha256=sha256, location=location, problem=problem, action=action, source=source,
                           detail=detail[:2000])
        report.findings.append(info)
        if action is Action.REPAIRED:
            report.repaired += 1
        elif action is Action.RECOPIED:
            report.recopied += 1
        else:
            report.unrepaired += 1
        with self.ctx.db() as db:
            db.add(ScrubFinding(found_at=self.clock(), sha256=sha256, location=location, problem=problem.value,
                                action=action.value, source=source, detail=detail[:2000]))


def _notify(ctx: Context, report: ScrubReport) -> None:
    from camroll.server.services import notify

    lines = [f"{f.location}: {f.sha256[:12]}... {f.problem.value}, {f.action.value}"
             + (f" from {f.source}" if f.source else "") for f in report.findings[:10]]
    more = len(report.findings) - len(lines)
    body = (f"Scrub checked {report.blobs} blobs and found {len(report.findings)} problems: {report.repaired} "
            f"repaired on the primary, {report.recopied} copied again to a replica, {report.unrepaired} not "
            f"repaired.\n" + "\n".join(lines) + (f"\n... and {more} more" if more > 0 else "")
            + "\nSee 'camroll admin scrub --findings'.")
    kind: notify.Kind = "failure" if report.unrepaired else "warning"
    with ctx.db() as db:
        admins = list(db.scalars(select(User.id).where(User.is_admin.is_(True))))
    for uid in admins:
        try:
            notify.send(ctx, notify.Message(uid, "camroll: scrub found damaged copies", body, kind), wait=False)
        except Exception:
            log.exception("could not send the scrub report to user %d", uid)


def recent_findings(ctx: Context, limit: int = 100) -> list[FindingInfo]:
    with ctx.db() as db:
        rows = db.scalars(select(ScrubFinding).order_by(ScrubFinding.id.desc()).limit(limit)).all()
        return [FindingInfo(sha256=f.sha256, location=f.location, problem=Problem(f.problem), action=Action(f.action),
                            source=f.source, detail=f.detail) for f in rows]


def due(ctx: Context, now: datetime, period_seconds: float, budget_bytes: int) -> list[tuple[str, int]]:
    """The blobs the rolling scrub should read now: never proven, or proven longest ago (before the period
    began), up to ``budget_bytes`` (at least one)."""
    cutoff = now - timedelta(seconds=period_seconds)
    out: list[tuple[str, int]] = []
    total = 0
    with ctx.db() as db:
        q = (select(Blob.sha256, Blob.size, BlobCheck.verified_at).outerjoin(BlobCheck, BlobCheck.sha256 == Blob.sha256)
             .where((BlobCheck.verified_at.is_(None)) | (BlobCheck.verified_at < cutoff))
             .order_by(BlobCheck.verified_at.is_not(None), BlobCheck.verified_at, Blob.sha256).limit(10_000))
        for sha256, size, _at in db.execute(q):
            if out and total + int(size) > budget_bytes:
                break
            out.append((str(sha256), int(size)))
            total += int(size)
    return out


def scheduled_tick(ctx: Context, settings: ReplicaSettings, now: datetime | None = None) -> ScrubReport | None:
    """One portion of the rolling scrub: the period's share of the library's bytes for one tick (doubled,
    so a library that grows or a server that was down catches up), throttled; None if nothing is due."""
    now = now or utcnow()
    with ctx.db() as db:
        library = int(db.scalar(select(func.coalesce(func.sum(Blob.size), 0))) or 0)
    share = 2 * library * settings.scrub_tick_seconds / max(1.0, settings.scrub_period_seconds)
    shas = due(ctx, now, settings.scrub_period_seconds, int(share))
    if not shas:
        return None
    return Scrubber(ctx, settings, rate=settings.scrub_rate_bytes).run(shas)
