"""Bad networks: a real agent backs up through the fault proxy (tests/e2e/proxy.py), which cuts the
connection carrying the byte at seeded random offsets of the client-to-server stream and stalls the
link at others; the backup must complete, every file verified (:mod:`audit`), with the wire bytes
the agent sent at most 1.1x the payload."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from e2e.proxy import FaultPlan, Proxy

from .audit import Audit, agent_states, audit
from .corpus import MIB, make_corpus
from .rig import rig

MAX_RATIO = 1.1


@dataclass
class NetworkRun:
    seed: int
    cut_every: int
    stall_every: int
    passes: int = 0
    cuts: int = 0
    stalls: int = 0
    stalled_s: float = 0.0
    payload: int = 0  # sum of the distinct files' sizes: what had to go to the server
    wire: int = 0  # client -> server bytes the proxy received (headers, API calls and resent bytes included)
    duration_s: float = 0.0
    audit: Audit | None = None

    @property
    def ratio(self) -> float:
        return self.wire / self.payload if self.payload else 0.0

    def figures(self) -> str:
        return (f"seed {self.seed}: {self.cuts} cuts (one per {self.cut_every / MIB:.0f} MiB on average), "
                f"{self.stalls} stalls ({self.stalled_s:.1f} s), {self.passes} pass(es), payload "
                f"{self.payload:,} B, wire {self.wire:,} B, ratio {self.ratio:.3f}, {self.duration_s:.0f} s; "
                f"{self.audit.figures() if self.audit else 'no audit'}")

    def problems(self) -> list[str]:
        out = list(self.audit.problems()) if self.audit else ["no audit"]
        if self.ratio > MAX_RATIO:
            out.append(f"wire bytes {self.ratio:.3f}x the payload, above {MAX_RATIO}x")
        return out


def run_network_proof(work: Path, *, files: int, large_files: int, large_size: int, seed: int,
                      cut_every: int, stall_every: int, stall_seconds: tuple[float, float] = (0.2, 2.0),
                      chunk_mib: int | None = None, max_passes: int = 10,
                      log: Callable[[str], None] = print) -> NetworkRun:
    t0 = time.monotonic()
    run = NetworkRun(seed, cut_every, stall_every)
    with rig(work) as r:
        corpus = make_corpus(r.photos, files, seed=seed, large_files=large_files, large_size=large_size)
        run.payload = corpus.payload
        log(f"network proof: seed {seed}, {len(corpus.files)} files ({len(corpus.distinct)} distinct, "
            f"{corpus.payload:,} B), a cut every {cut_every / MIB:.1f} MiB and a stall every "
            f"{stall_every / MIB:.1f} MiB on average, chunks {chunk_mib or 'default'} MiB")
        plan = FaultPlan(seed=seed, cut_every=cut_every, stall_every=stall_every, stall_seconds=stall_seconds)
        proxy = Proxy(r.server.port, faults=plan)
        try:
            r.agent.set_server_url(proxy.url)
            if chunk_mib is not None:
                r.configure(chunk_mib=chunk_mib)
            for i in range(1, max_passes + 1):
                res = r.agent.run("backup", "--json", check=False, timeout=1800)
                run.passes = i
                states = agent_states(r.state_db)
                log(f"  pass {i}: exit {res.returncode}, {proxy.cuts_done} cuts and {proxy.stalls_done} stalls so "
                    f"far, wire {proxy.bytes_in:,} B, agent files {states}")
                if set(states) == {"backed_up"}:
                    break
            run.cuts, run.stalls, run.stalled_s = proxy.cuts_done, proxy.stalls_done, proxy.stalled_s
            run.wire = proxy.bytes_in
        finally:
            proxy.close()
        run.audit = audit(corpus, api_url=r.server.url, token=r.agent.session(), state_db=r.state_db,
                          data_dir=r.server.data)
    run.duration_s = time.monotonic() - t0
    log(run.figures())
    for p in run.problems():
        log(f"PROBLEM: {p}")
    return run
