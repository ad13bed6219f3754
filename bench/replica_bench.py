"""Replication and scrub throughput, beside ``rclone check --download`` on the same data in one run.

    .venv/bin/python bench/replica_bench.py [--corpus DIR] [--scale 0.03] [--json]

A camera-roll corpus (``make_corpus.py --parts roll``, made once under --corpus) goes into a throw-away
library (SQLite, local blobs).  Then, against one SeaweedFS (``weed mini`` on loopback, from the test
extras):

1. replication: every original copied to an S3 replica by the copy loop (``run_replica``): MB/s, CPU s/GB;
2. scrub: every blob re-hashed on the primary and its S3 copy read back and hashed (``--sample 1
   --read-back``), then again trusting the S3 server's SHA-256 checksums (the default);
3. ``rclone check --download`` of the blob folder against the same bucket prefix: what an admin would
   otherwise run by hand, reading the same bytes on both sides;
4. the rclone target's cost per operation (one subprocess per copy), on rclone's ``:local:`` backend.

CPU is this process's (1, 2) or the child's (3, 4); the machine is shared, so the load average is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def _corpus(root: Path, scale: float) -> list[Path]:
    roll = root / "roll"
    if not roll.is_dir():
        subprocess.run([sys.executable, "/work/shared/tools/make_corpus.py", "--scale", str(scale), "--parts", "roll",
                        str(root)], check=True)
    return sorted(p for p in roll.rglob("*") if p.is_file() and not p.is_symlink())


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path(tempfile.gettempdir()) / "camroll-replica-corpus")
    ap.add_argument("--scale", type=float, default=0.03)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from services.s3 import seaweedfs

    from camroll.server import migrate
    from camroll.server.context import build
    from camroll.server.leases import Leases
    from camroll.server.models import Asset, Blob, User, utcnow
    from camroll.server.replicas import admin, service
    from camroll.server.replicas.rclone import RcloneTarget, find_rclone
    from camroll.server.replicas.scrub import Scrubber
    from camroll.server.replicas.settings import ReplicaSettings
    from camroll.server.settings import Settings

    files = _corpus(args.corpus, args.scale)
    out: dict[str, object] = {"load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="camroll-replica-bench-") as tmp_s:
        tmp = Path(tmp_s)
        ctx = build(Settings.for_data_dir(tmp / "data"))
        migrate.upgrade(ctx.engine)
        with ctx.db() as db:
            user = User(username="bench", password_hash="x", is_admin=True)
            db.add(user)
            db.flush()
            uid = user.id
        total = 0
        seen: set[str] = set()
        for f in files:
            data = f.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            if sha in seen:
                continue
            seen.add(sha)
            src = tmp / "src"
            src.write_bytes(data)
            ctx.blobs.put_file(sha, src)
            with ctx.db() as db:
                db.add(Blob(sha256=sha, size=len(data), created_at=utcnow()))
                db.flush()
                db.add(Asset(user_id=uid, sha256=sha, size=len(data), filename=f.name))
            total += len(data)
        out["files"], out["bytes"] = len(seen), total
        gb = total / 1e9
        with seaweedfs(tmp / "weed") as svc:
            prefix = svc.new_prefix()
            opts = {"endpoint": svc.endpoint, "region": svc.region, "access_key_id": svc.access_key,
                    "secret_access_key": svc.secret_key, "addressing_style": "path"}
            r = admin.add(ctx, "weed", f"s3://{svc.bucket}/{prefix}", opts)
            settings = ReplicaSettings(round_seconds=3600.0)
            t0, c0 = time.monotonic(), time.process_time()
            res = service.run_replica(ctx, r.id, Leases(ctx), settings)
            wall, cpu = time.monotonic() - t0, time.process_time() - c0
            assert res is not None and res.copied == len(seen), res
            out["replicate_s3"] = {"seconds": round(wall, 2), "MB_s": round(total / 1e6 / wall, 1),
                                   "cpu_s_per_GB": round(cpu / gb, 1)}
            t0, c0 = time.monotonic(), time.process_time()
            rep = Scrubber(ctx, settings, sample=1.0, trust_checksums=False).run()
            wall, cpu = time.monotonic() - t0, time.process_time() - c0
            assert not rep.findings and rep.copies_read_back + rep.copies_by_checksum == len(seen), rep
            t1, c1 = time.monotonic(), time.process_time()
            quick = Scrubber(ctx, settings, sample=1.0).run()
            out["scrub_primary_s3_by_checksum"] = {
                "seconds": round(time.monotonic() - t1, 2), "bytes_read": quick.bytes,
                "by_provider_checksum": quick.copies_by_checksum,
                "cpu_s_per_GB": round((time.process_time() - c1) / (quick.bytes / 1e9), 1)}
            out["scrub_primary_and_s3_read_back"] = {"seconds": round(wall, 2), "bytes_read": rep.bytes,
                                           "MB_s": round(rep.bytes / 1e6 / wall, 1),
                                           "cpu_s_per_GB": round(cpu / (rep.bytes / 1e9), 1),
                                           "by_provider_checksum": rep.copies_by_checksum}
            rclone = find_rclone()
            env = {**os.environ, "RCLONE_CONFIG_WEED_TYPE": "s3", "RCLONE_CONFIG_WEED_PROVIDER": "Other",
                   "RCLONE_CONFIG_WEED_ENDPOINT": svc.endpoint, "RCLONE_CONFIG_WEED_ACCESS_KEY_ID": svc.access_key,
                   "RCLONE_CONFIG_WEED_SECRET_ACCESS_KEY": svc.secret_key, "RCLONE_CONFIG_WEED_REGION": svc.region,
                   "RCLONE_CONFIG_WEED_FORCE_PATH_STYLE": "true"}
            c0, t0 = _children_cpu(), time.monotonic()
            proc = subprocess.run([rclone, "check", "--download", "--config", str(tmp / "none.conf"),
                                   "--exclude", ".tmp/**", str(tmp / "data" / "blobs"),
                                   f"weed:{svc.bucket}/{prefix}/blobs"], env=env, capture_output=True, text=True)
            wall, cpu = time.monotonic() - t0, _children_cpu() - c0
            assert proc.returncode == 0, proc.stderr[-2000:]
            read = 2 * total  # both sides read whole
            out["rclone_check_download"] = {"seconds": round(wall, 2), "bytes_read": read,
                                            "MB_s": round(read / 1e6 / wall, 1),
                                            "cpu_s_per_GB": round(cpu / (read / 1e9), 1)}
        # The rclone target's per-operation cost: small files, so the process start dominates.
        target = RcloneTarget(f":local:{tmp / 'rclone-remote'}", {})
        small = sorted(seen)[:20]
        c0, t0 = _children_cpu(), time.monotonic()
        for sha in small:
            with ctx.blobs.local_file(sha) as p:
                target.put(sha, p)
        wall, cpu = time.monotonic() - t0, _children_cpu() - c0
        out["rclone_target_put"] = {"files": len(small), "ms_per_file": round(1000 * wall / len(small), 1),
                                    "child_cpu_ms_per_file": round(1000 * cpu / len(small), 1),
                                    "processes_per_file": 2}
        ctx.engine.dispose()
    out["load_average_end"] = os.getloadavg()
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for k, v in out.items():
        print(f"{k:<24} {v}")


if __name__ == "__main__":
    main()
