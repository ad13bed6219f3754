#!/usr/bin/env python3
"""Memory benchmark: back up one large video (3 GB by default) with camroll and report the peak RSS of
the agent (``camroll backup``) and of the server (``camroll serve``).  Target: each under 150 MB, i.e.
neither side may hold a file (or a large part of it) in memory.

The file is made once (kept for later runs): an MP4 ``ftyp`` box and a 64-bit ``mdat`` box header
followed by pseudo-random bytes (a block of ``os.urandom`` repeated with a per-block counter, so it
does not compress and no two blocks are equal), written at disk speed.

    python bench/memory_bench.py --file /work/bench-corpus/big/big-3g.mp4 --out memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    MB,
    CamrollRig,
    MiB,
    camroll_argv,
    du_bytes,
    fmt_mb,
    machine_info,
    stop_on_sigterm,
    timed_sync,
    tool_version,
)

TARGET_RSS_BYTES = 150 * MB


def mp4_header(total_size: int) -> bytes:
    ftyp = b"ftyp" + b"isom" + struct.pack(">I", 0x200) + b"isom" + b"iso2" + b"avc1" + b"mp41"
    ftyp_box = struct.pack(">I", 8 + len(ftyp) - 4) + ftyp
    mdat_size = total_size - len(ftyp_box)
    mdat_hdr = struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", mdat_size)
    return ftyp_box + mdat_hdr


def make_big_file(path: Path, size: int, block: int = 16 * MiB) -> float:
    """Writes ``path`` (``size`` bytes) unless it already exists with that size; returns seconds spent."""
    if path.exists() and path.stat().st_size == size:
        return 0.0
    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    base = bytearray(os.urandom(block))
    with tmp.open("wb") as f:
        head = mp4_header(size)
        f.write(head)
        written = len(head)
        n = 0
        while written < size:
            struct.pack_into(">Q", base, 0, n)  # every block differs
            chunk = memoryview(base)[: min(block, size - written)]
            f.write(chunk)
            written += len(chunk)
            n += 1
        f.flush()
        os.fsync(f.fileno())
    tmp.rename(path)
    # Give it a plausible capture time: 2024-06-01 12:00 UTC.
    os.utime(path, (1717243200, 1717243200))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--file",
        type=Path,
        default=Path("/work/bench-corpus/big/big-3g.mp4"),
        help="the large video; made if missing (default: %(default)s). Its folder is what camroll backs up, "
        "so keep it alone there",
    )
    ap.add_argument("--size", type=int, default=3_000_000_000, help="bytes (default: %(default)s)")
    ap.add_argument("--work", type=Path, default=None, help="temp dir parent (default: next to the file)")
    ap.add_argument("--out", type=Path, default=None, help="write figures as JSON here")
    ap.add_argument("--interval", type=float, default=0.05, help="RSS sampling interval, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args(argv)
    stop_on_sigterm()

    path = args.file.resolve()
    machine = machine_info()  # at the start: records the camroll commit the run actually used
    made_s = make_big_file(path, args.size)
    if made_s:
        print(f"made {path} ({args.size / MB:,.0f} MB) in {made_s:.1f}s", file=sys.stderr)
    folder = path.parent
    others = [p.name for p in folder.iterdir() if p != path]
    if others:
        print(f"warning: {folder} holds other entries too: {others[:5]}", file=sys.stderr)
    work_parent = args.work or folder.parent
    work = Path(tempfile.mkdtemp(prefix="camroll-membench-", dir=work_parent))
    timed_sync()
    rig = CamrollRig(work, interval=args.interval)
    result: dict[str, Any] = {}
    ok = False
    try:
        rig.start([folder])
        assert rig.server is not None
        srv_idle = rig.server.peaks()[0]
        res, js = rig.backup(log=work / "backup")
        srv_peak = rig.server.peaks()[0]
        status = rig.status()
        ok = res.returncode == 0
        result = {
            "seconds": round(res.seconds, 3),
            "mb_per_s": round(args.size / MB / res.seconds, 1),
            "returncode": res.returncode,
            "agent_maxrss_bytes": res.maxrss_bytes,
            "agent_peak_rss_psutil_bytes": res.peak_rss_bytes,
            "agent_peak_tree_rss_psutil_bytes": res.peak_tree_rss_bytes,
            "server_rss_after_start_bytes": srv_idle,
            "server_peak_rss_startup_bytes": rig.startup_peak_rss,
            "server_peak_rss_during_backup_bytes": srv_peak,
            "backup_json": js,
            "status_json": status,
            "stderr_tail": res.stderr[-3000:],
        }
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        if rig.server is not None:
            result["server_log_tail"] = rig.server.log_tail()
    finally:
        rig.stop()
        if rig.server is not None:
            result["server_maxrss_bytes"] = rig.server.maxrss_bytes
        stored = 0
        if rig.data.exists():
            stored = du_bytes(rig.data)
        result["server_data_bytes"] = stored
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    agent = max(result.get("agent_maxrss_bytes", 0), result.get("agent_peak_rss_psutil_bytes", 0))
    server = max(result.get("server_maxrss_bytes", 0) or 0, result.get("server_peak_rss_during_backup_bytes", 0))
    lines = [
        f"file: {path} ({args.size / MB:,.0f} MB)",
        f"camroll: {tool_version([*camroll_argv(), '--version'])}",
    ]
    if "error" in result:
        lines.append(f"FAILED: {result['error'].splitlines()[0]}")
    else:
        lines.append(f"backup: {result['seconds']:.1f}s ({result['mb_per_s']:.0f} MB/s), exit {result['returncode']}")
    lines += [
        f"agent  peak RSS: {fmt_mb(agent)}  (ru_maxrss {fmt_mb(result.get('agent_maxrss_bytes'))}, "
        f"psutil {fmt_mb(result.get('agent_peak_rss_psutil_bytes'))})  "
        f"{'OK' if ok and agent < TARGET_RSS_BYTES else 'OVER TARGET' if agent else '-'}",
        f"server peak RSS: {fmt_mb(server)} "
        f"(ru_maxrss, whole life {fmt_mb(result.get('server_maxrss_bytes'))}, "
        f"psutil during backup {fmt_mb(result.get('server_peak_rss_during_backup_bytes'))}, "
        f"during start-up {fmt_mb(result.get('server_peak_rss_startup_bytes'))}, after start "
        f"{fmt_mb(result.get('server_rss_after_start_bytes'))})  "
        f"{'OK' if ok and server < TARGET_RSS_BYTES else 'OVER TARGET' if server else '-'}",
        f"server data after backup: {fmt_mb(result.get('server_data_bytes'))}",
        f"target: each < {TARGET_RSS_BYTES / MB:.0f} MB",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        doc = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "argv": sys.argv,
            "machine": machine,
            "file": str(path),
            "size": args.size,
            "target_rss_bytes": TARGET_RSS_BYTES,
            "result": result,
            "table": text,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 0 if ok and agent < TARGET_RSS_BYTES and server < TARGET_RSS_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
