#!/usr/bin/env python3
"""Bad networks, the full proof: a real agent backs up through a loopback fault proxy that cuts the
connection at seeded random offsets of the upload stream (one cut per --cut-every MiB on average) and
stalls the link (one per --stall-every MiB, 0.2-2 s each); the backup must complete with every file
verified and the wire bytes (client to server, counted by the proxy) at most 1.1x the payload.
Exits 1 if a promise is broken, printing the seed to replay it.

    .venv/bin/python bench/network_bench.py --seed 1

The harness is tests/reliability/network.py; tests/reliability/test_network.py runs it CI-sized.
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

from reliability.corpus import MIB  # noqa: E402
from reliability.network import run_network_proof  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--large-files", type=int, default=3)
    ap.add_argument("--large-mib", type=int, default=100, help="size of each large video (default chunk: 64 MiB)")
    ap.add_argument("--cut-every", type=float, default=16, help="mean MiB between cuts")
    ap.add_argument("--stall-every", type=float, default=24, help="mean MiB between stalls")
    ap.add_argument("--chunk-mib", type=int, default=None, help="the agent's chunk size (default: its own, 64)")
    ap.add_argument("--seed", type=int, default=None, help="replay a run (default: a random seed, printed)")
    ap.add_argument("--work", type=Path, default=None, help="keep everything here (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    work = args.work or Path(tempfile.mkdtemp(prefix="camroll-network-"))
    print(f"work dir {work}; replay with --seed {seed}", flush=True)
    run = run_network_proof(work, files=args.files, large_files=args.large_files, large_size=args.large_mib * MIB,
                            seed=seed, cut_every=int(args.cut_every * MIB), stall_every=int(args.stall_every * MIB),
                            chunk_mib=args.chunk_mib, log=lambda s: print(s, flush=True))
    problems = run.problems()
    if args.json:
        args.json.write_text(json.dumps({**asdict(run), "ratio": run.ratio, "problems": problems}, indent=2,
                                        default=str))
    print("OK: every promise held" if not problems else f"FAILED ({len(problems)} problems), seed {seed}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
