"""Crash anywhere, CI-sized: the agent and the server each killed with SIGKILL at 6 random moments
while 60 files are backed up; afterwards every file is stored exactly once, byte-identical, with no
orphan and the quota equal to the assets.  The full proof is ``bench/crash_bench.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .crash import run_crash_proof

SEED = int(os.environ.get("CAMROLL_CRASH_SEED", "8"))


@pytest.mark.timeout(600)
def test_kill_9_anywhere_loses_nothing(tmp_path: Path) -> None:
    run = run_crash_proof(tmp_path, files=60, kills_agent=6, kills_server=6, seed=SEED, large_files=3)
    assert run.audit is not None
    assert len(run.kills) == 12
    assert run.audit.problems() == [], f"seed {SEED}: {run.figures()}"
