"""Bad networks, CI-sized: a real agent backs up through the fault proxy, which cuts connections at
seeded random offsets (one per 8 MiB on average) and stalls the link; the backup completes, every file
verified, with at most 1.1x the payload on the wire.  The full proof is ``bench/network_bench.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .corpus import MIB
from .network import MAX_RATIO, run_network_proof

SEED = int(os.environ.get("CAMROLL_NETWORK_SEED", "5"))


@pytest.mark.timeout(600)
def test_cut_and_stalled_links_complete_with_little_resent(tmp_path: Path) -> None:
    run = run_network_proof(tmp_path, files=30, large_files=2, large_size=40 * MIB, seed=SEED,
                            cut_every=8 * MIB, stall_every=16 * MIB, stall_seconds=(0.1, 0.6), chunk_mib=16)
    assert run.cuts >= 5 and run.stalls >= 2, run.figures()
    assert run.problems() == [], run.figures()
    assert run.ratio <= MAX_RATIO
