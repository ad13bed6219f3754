#!/usr/bin/env python3
"""Crash anywhere, the full proof: ``kill -9`` of the agent at 30 random moments and of the server at
30 random moments while at least 200 files (photos, videos, copies across folders, multi-chunk videos)
are backed up; then a clean pass, the server's sweep, and the audit: every file backed up exactly once,
every original downloaded and byte-identical, no orphan blob, part file or upload row, quota usage
equal to the assets.  Exits 1 if any promise is broken, printing the seed to replay it.

    .venv/bin/python bench/crash_bench.py --kills-agent 30 --kills-server 30 --files 200 --seed 1

The harness is tests/reliability/crash.py; tests/reliability/test_crash.py runs it CI-sized.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from reliability.crash import run_crash_proof  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills-agent", type=int, default=30)
    ap.add_argument("--kills-server", type=int, default=30)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--large-files", type=int, default=8, help="videos of 5-6 MiB (several chunks each)")
    ap.add_argument("--seed", type=int, default=None, help="replay a run (default: a random seed, printed)")
    ap.add_argument("--window", type=float, default=5.0, help="kill moments uniform in [0.05, WINDOW] s")
    ap.add_argument("--chunk-mib", type=int, default=1, help="the agent's chunk size (1 MiB: many PATCHes)")
    ap.add_argument("--bandwidth", default=None,
                    help="the agent's bandwidth limit during the kills (default: paced so the files last as long "
                         "as the kills)")
    ap.add_argument("--work", type=Path, default=None, help="keep everything here (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    work = args.work or Path(tempfile.mkdtemp(prefix="camroll-crash-"))
    print(f"work dir {work}; replay with --seed {seed}", flush=True)
    run = run_crash_proof(work, files=args.files, kills_agent=args.kills_agent, kills_server=args.kills_server,
                          seed=seed, window=args.window, chunk_mib=args.chunk_mib, bandwidth=args.bandwidth,
                          large_files=args.large_files, log=lambda s: print(s, flush=True))
    assert run.audit is not None
    problems = run.audit.problems()
    if args.json:
        args.json.write_text(json.dumps({**asdict(run), "problems": problems}, indent=2, default=str))
    print("OK: every promise held" if not problems else f"FAILED ({len(problems)} problems), seed {seed}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
