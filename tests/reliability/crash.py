"""Crash anywhere: ``kill -9`` of the agent and of the server at seeded random moments during a
backup, each killed side restarted, then a clean pass and the audit (:mod:`audit`).

A moment is a delay after a ``camroll backup`` pass took its lock (the real start of its work, not
the interpreter's). The files arrive as the backup goes, enough before each pass that it is still busy
at the latest moment, so every kill finds work in flight: scanning, hashing, checks, uploads in the
middle of a chunk, completions, the asset commit, background jobs. The seed fixes the corpus, the order
of the kills and every delay; the log prints them so a failing run can be replayed."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
from support.server import camroll_cmd

from camroll.agent.settings.config import parse_rate

from .audit import Audit, agent_states, audit
from .corpus import Corpus, make_corpus
from .rig import Rig, rig

Side = Literal["agent", "server"]
# A very short upload expiry for the final sweep: abandoned uploads (created just before a kill, never
# resumed) expire within seconds and the sweeper removes their bytes.
SWEEP_EXPIRY_HOURS = "0.0003"
# Seconds of sending placed beyond a pass's kill moment: its scan, hash and check come first.
LEAD = 1.5


@dataclass(frozen=True)
class Kill:
    n: int
    side: Side
    delay: float  # seconds after the pass started
    restart_s: float  # how long the killed side took to come back (the server's readiness; 0 for the agent)
    states: dict[str, int]  # the agent's file states right after the kill


@dataclass
class CrashRun:
    seed: int
    kills: list[Kill] = field(default_factory=list)
    missed: int = 0  # moments that came after the pass had already ended (drawn again)
    backed_up_under_kills: int = 0  # files the agent had backed up when the kills ended
    clean_passes: int = 0
    retry_failed_needed: bool = False
    duration_s: float = 0.0
    audit: Audit | None = None

    def figures(self) -> str:
        agent = sum(k.side == "agent" for k in self.kills)
        server = len(self.kills) - agent
        restart = max((k.restart_s for k in self.kills), default=0.0)
        return (f"seed {self.seed}: {agent} agent kills + {server} server kills ({self.missed} moments missed "
                f"and drawn again), slowest server restart {restart:.1f} s, {self.backed_up_under_kills} files "
                f"backed up under the kills, {self.clean_passes} clean "
                f"pass(es){' with --retry-failed' if self.retry_failed_needed else ''}, "
                f"{self.duration_s:.0f} s; {self.audit.figures() if self.audit else 'no audit'}")


def _sides(rng: random.Random, agent: int, server: int) -> list[Side]:
    a: list[Side] = ["agent"]
    s: list[Side] = ["server"]
    sides = a * agent + s * server
    rng.shuffle(sides)
    return sides


class _Backup:
    """One ``camroll backup --json`` pass in a subprocess, its output in files (never a full pipe)."""

    def __init__(self, r: Rig, log_dir: Path, n: int) -> None:
        self.out = log_dir / f"pass-{n:03d}.out"
        self.lock = r.state_db.with_name(r.state_db.name + ".lock")
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(camroll_cmd("backup", "--json"), stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, **r.agent.env})
        self.started = time.monotonic()

    def _wait_for_lock(self) -> bool:
        """Wait until the pass holds its lock (it writes its pid into the lock file): moments count from
        there, not from the interpreter's start-up, which takes seconds on a loaded machine."""
        me = str(self.proc.pid).encode()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if self.lock.read_bytes().strip() == me:
                    self.started = time.monotonic()
                    return True
            except FileNotFoundError:
                pass
            time.sleep(0.005)
        raise AssertionError("the backup pass did not start within 120 s")

    def wait_until(self, moment: float) -> bool:
        """Wait until ``moment`` seconds after the pass took its lock; False if the pass ended first."""
        if not self._wait_for_lock():
            return False
        while True:
            if self.proc.poll() is not None:
                return False
            left = self.started + moment - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.01))


def _place(corpus: Corpus, staging: Path, photos: Path, placed: int, pending: int, target: int) -> int:
    """Move files from ``staging`` into the agent's folders until ``target`` bytes wait to be backed
    up (or the corpus is all there); returns how many files are placed."""
    while placed < len(corpus.files) and pending < target:
        f = corpus.files[placed]
        dest = photos / f.rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / f.rel, dest)  # the rename keeps the mtime: never "still being written"
        placed += 1
        pending += f.size
    return placed


def _pending_bytes(corpus: Corpus, placed: int, state_db: Path) -> int:
    """Bytes of the placed files the agent has not backed up yet."""
    total = sum(f.size for f in corpus.files[:placed])
    if not state_db.exists():
        return total
    with sqlite3.connect(f"file:{state_db}?mode=ro", uri=True) as con:
        done = con.execute("SELECT coalesce(sum(size), 0) FROM files WHERE state='backed_up'").fetchone()[0]
    return max(0, total - int(done))


def run_crash_proof(work: Path, *, files: int, kills_agent: int, kills_server: int, seed: int,
                    window: float = 3.0, chunk_mib: int = 1, bandwidth: str | None = None, large_files: int = 4,
                    log: Callable[[str], None] = print) -> CrashRun:
    """Back up ``files`` files under ``work`` while killing each side at random moments; returns the
    run with its audit (``run.audit.problems()`` lists every broken promise)."""
    t_start = time.monotonic()
    rng = random.Random(seed)
    run = CrashRun(seed)
    staging = work / "staging"
    corpus = make_corpus(staging, files, seed=seed, large_files=large_files)
    if bandwidth is None:
        # Paced so that the corpus lasts as long as the kills: before each pass the files for its
        # moment plus LEAD seconds of sending are placed, and a pass whose server is killed goes on
        # to send all of them, so each kill uses up to (window / 2 + LEAD) s of sending on average;
        # the margin keeps work for every kill on a quiet machine, where nothing else slows a pass (1.3
        # ran out of files once the batch path got faster: 52 of 60 backed up by the 11th kill).
        per_kill = window / 2 + LEAD
        bandwidth = f"{max(100_000, int(corpus.payload / max(1, kills_agent + kills_server) / per_kill / 2.0))}B/s"
    log(f"crash proof: seed {seed}, {files} files, {kills_agent} agent + {kills_server} server kills, "
        f"moments uniform in [0.05, {window}] s after a pass starts, chunks {chunk_mib} MiB, {bandwidth}")
    log(f"corpus: {len(corpus.files)} files, {len(corpus.distinct)} distinct, {corpus.payload:,} bytes")
    logs = work / "passes"
    logs.mkdir(parents=True, exist_ok=True)
    with rig(work) as r:
        r.configure(chunk_mib=chunk_mib, bandwidth=bandwidth)
        sides = _sides(rng, kills_agent, kills_server)
        rate = parse_rate(bandwidth)
        placed = 0
        attempt = 0
        while len(run.kills) < len(sides):
            attempt += 1
            if attempt > 4 * len(sides) + 10:
                raise AssertionError(f"only {len(run.kills)} kills landed in {attempt} passes: passes too short")
            side = sides[len(run.kills)]
            delay = round(rng.uniform(0.05, window), 3)
            # Enough work in the folders that this pass is still sending at its moment, but no more,
            # so the corpus lasts for all the kills: the files arrive as the backup goes.
            target = int(rate * (delay + LEAD))
            placed = _place(corpus, staging, r.photos, placed, _pending_bytes(corpus, placed, r.state_db), target)
            p = _Backup(r, logs, attempt)
            if not p.wait_until(delay):
                run.missed += 1
                log(f"  pass {attempt}: ended before {delay:.3f} s; moment drawn again")
                continue
            restart = 0.0
            if side == "agent":
                os.kill(p.proc.pid, signal.SIGKILL)
                p.proc.wait()
            else:
                r.server.kill()
                t0 = time.monotonic()
                try:
                    r.server.start()
                except RuntimeError as exc:
                    raise AssertionError(f"seed {seed}, kill {len(run.kills) + 1}: the server did not "
                                         f"restart: {exc}") from exc
                restart = time.monotonic() - t0
                # The running pass retries and resumes on its own (or gives up; the next pass resumes).
                p.proc.wait(timeout=600)
            k = Kill(len(run.kills) + 1, side, delay, round(restart, 2), agent_states(r.state_db))
            run.kills.append(k)
            log(f"  kill {k.n:>2}/{len(sides)}: {side:<6} at {delay:.3f} s"
                f"{f', back in {restart:.1f} s' if restart else ''}; agent files {k.states}")
        run.backed_up_under_kills = agent_states(r.state_db).get("backed_up", 0)
        placed = _place(corpus, staging, r.photos, placed, 0, corpus.payload * 2)
        _clean_passes(r, run, log)
        _sweep(r, log)
        run.audit = audit(corpus, api_url=r.server.url, token=r.agent.session(), state_db=r.state_db,
                          data_dir=r.server.data)
    run.duration_s = time.monotonic() - t_start
    log(run.figures())
    for problem in run.audit.problems():
        log(f"PROBLEM: {problem}")
    return run


def _clean_passes(r: Rig, run: CrashRun, log: Callable[[str], None]) -> None:
    """Passes without kills until every file is backed up; failed files get --retry-failed only if a
    plain pass leaves them parked (that is reported: a kill should never park a file)."""
    r.configure(bandwidth=None)
    for i in range(1, 5):
        args = ["backup", "--json"] + (["--retry-failed"] if i > 1 else [])
        res = r.agent.run(*args, check=False, timeout=600)
        run.clean_passes = i
        run.retry_failed_needed = i > 1
        states = agent_states(r.state_db)
        log(f"  clean pass {i}: exit {res.returncode}, agent files {states}")
        if set(states) == {"backed_up"}:
            return


def _sweep(r: Rig, log: Callable[[str], None]) -> None:
    """Restart the server with a tiny upload expiry and wait for its sweeper to expire what the kills
    left unfinished."""
    r.server.extra_args = (*r.server.extra_args, "--upload-expiry", SWEEP_EXPIRY_HOURS)
    r.server.restart()
    deadline = time.monotonic() + 20
    time.sleep(2.5)
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{r.server.data / 'camroll.db'}?mode=ro", uri=True) as con:
            active = con.execute("SELECT count(*) FROM uploads WHERE state='active'").fetchone()[0]
        if not active:
            break
        time.sleep(0.5)
    httpx.get(f"{r.server.url}/api/v1/server", timeout=10).raise_for_status()
    log("  server restarted with a short upload expiry; sweep done")
