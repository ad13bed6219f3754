#!/usr/bin/env python3
"""Thumbnail throughput: thumbnails per second of camroll.media.thumbs on a camera-roll corpus, per
kind of file, for both standard sizes from one decode (grid 250 + preview 1440) and for the grid size
alone, in one process and in N worker processes.

Files are grouped by what they are, not by name: JPEGs of 20 MP or more ("jpeg-24mp", the 6000x4000
DSLR shots of the corpus), other JPEGs ("jpeg-12mp", phone photos), HEIC, PNG and video. The files
are read once before timing so the figures measure decoding and encoding, not the disk.

    python bench/thumb_bench.py --corpus /work/bench-corpus/full/roll --out thumbs.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine_info, tool_version, walk_files

from camroll.media import thumbs, types
from camroll.media.errors import MediaError

DEFAULT_CORPUS = Path("/work/bench-corpus/full/roll")
KINDS = ("jpeg-24mp", "jpeg-12mp", "heic", "png", "video")
MODES = ("both", "grid")


def classify(path: Path) -> str | None:
    with open(path, "rb") as f:
        mt = types.sniff(f.read(types.SNIFF_BYTES))
    if mt is None:
        return None
    if mt is types.JPEG:
        with Image.open(path) as im:
            return "jpeg-24mp" if im.width * im.height >= 20_000_000 else "jpeg-12mp"
    if mt is types.HEIC:
        return "heic"
    if mt is types.PNG:
        return "png"
    return "video" if mt.kind == "video" else None


def one(args: tuple[str, str, str]) -> int:
    """Make the thumbnails of one file into ``outdir``; returns how many were written (0 on failure)."""
    path, mode, outdir = args
    src = Path(path)
    stem = Path(outdir) / f"{abs(hash(path))}"
    try:
        if mode == "both":
            thumbs.make_grid_and_preview(src, stem.with_suffix(".g.webp"), stem.with_suffix(".p.webp"))
            return 2
        thumbs.make_thumbnail(src, stem.with_suffix(".g.webp"), size=thumbs.GRID)
        return 1
    except MediaError as exc:
        print(f"  {path}: {exc}", file=sys.stderr)
        return 0


def run(files: Sequence[Path], mode: str, procs: int, outdir: str) -> dict[str, Any]:
    jobs = [(str(p), mode, outdir) for p in files]
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    if procs == 1:
        made = sum(one(j) for j in jobs)
    else:
        with ProcessPoolExecutor(max_workers=procs) as pool:
            made = sum(pool.map(one, jobs, chunksize=1))
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
    return {
        "mode": mode, "procs": procs, "files": len(files), "thumbnails": made, "seconds": round(seconds, 3),
        "files_per_s": round(len(files) / seconds, 2), "ms_per_file": round(1000 * seconds / len(files), 1),
        # CPU time of this process and its reaped children (pool workers, ffmpeg): steadier than wall
        # time on a shared machine.
        "cpu_ms_per_file": round(1000 * cpu / len(files), 1),
    }


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS if DEFAULT_CORPUS.is_dir() else None,
                    help=f"folder of photos and videos (default {DEFAULT_CORPUS} if it exists); make one with "
                         "'python /work/shared/tools/make_corpus.py DIR --parts roll'")
    ap.add_argument("--per-kind", type=int, default=24, help="files of each kind to time (default 24)")
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="worker processes for the N run")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.corpus is None or not args.corpus.is_dir():
        ap.error("no corpus folder: pass --corpus DIR (make one with /work/shared/tools/make_corpus.py)")
    wanted = [k for k in args.kinds.split(",") if k]
    by_kind: dict[str, list[Path]] = {k: [] for k in wanted}
    for entry in sorted(walk_files(args.corpus), key=lambda e: e.path):
        kind = classify(Path(entry.path))
        if kind in by_kind and len(by_kind[kind]) < args.per_kind:
            by_kind[kind].append(Path(entry.path))
    for paths in by_kind.values():
        for p in paths:
            p.read_bytes()  # into the page cache: time decoding, not the disk
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    procs_list = sorted({1, args.procs})
    with tempfile.TemporaryDirectory(prefix="thumb-bench-") as outdir:
        for kind, paths in by_kind.items():
            if not paths:
                continue
            for mode in MODES:
                for procs in procs_list:
                    row = {"kind": kind, **run(paths, mode, procs, outdir)}
                    rows.append(row)
                    print(f"{kind:10} {mode:5} procs={procs}  {row['files']:3} files  {row['seconds']:7.2f} s  "
                          f"{row['files_per_s']:6.2f} files/s  {row['ms_per_file']:7.1f} ms/file  "
                          f"{row['cpu_ms_per_file']:7.1f} CPU ms/file", flush=True)
    print()
    print(f"{'kind':10} {'mode':5} " + " ".join(f"{f'{p} proc files/s':>16}" for p in procs_list)
          + f"{'CPU ms/file':>13}")
    for kind in by_kind:
        for mode in MODES:
            cells = [r for r in rows if r["kind"] == kind and r["mode"] == mode]
            if cells:
                print(f"{kind:10} {mode:5} " + " ".join(f"{c['files_per_s']:16.2f}" for c in cells)
                      + f"{cells[0]['cpu_ms_per_file']:13.1f}")
    result = {
        "corpus": str(args.corpus), "per_kind": args.per_kind, "rows": rows,
        "machine": machine_info(), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "ffmpeg": tool_version(["ffmpeg", "-version"]),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print(f"\nload average before {load_before[0]:.2f}, after {result['loadavg_after'][0]:.2f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
