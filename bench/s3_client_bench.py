"""Which S3 client camroll's server uses: boto3 and obstore side by side against one SeaweedFS.

    .venv/bin/python bench/s3_client_bench.py            # 200 x 256 KiB, 10 x 64 MiB, 200 ranges, 200 HEADs
    .venv/bin/python bench/s3_client_bench.py --large-count 4 --small-count 100   # quicker

Starts ``weed mini`` on 127.0.0.1 (tests/services/s3.py), then runs each client in its own process (so
peak RSS and CPU are its own), one after the other, with the same work on the same server: PUT and GET
of small objects (8 threads), PUT from a file and streamed GET of large objects (one at a time; boto3
through its transfer manager with camroll's part size and concurrency, obstore with its multipart
``put`` and a chunked ``get`` stream), ranged GETs of 64 KiB inside the large objects, HEADs.  Prints
throughput, per-request latency p50/p95, CPU seconds and peak RSS per client.

The figures of two runs on the 2-core build machine (SeaweedFS 4.48, boto3 1.44, obstore 0.12, the server
on the same machine, so its CPU is in every figure) and the decision (boto3) are in the module docstring
of ``camroll.server.storage.s3``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SMALL = 256 * 2**10
RANGE = 64 * 2**10
THREADS = 8
CHUNK = 1 << 20


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed(fn: Callable[[int], Any], n: int, threads: int) -> dict[str, float]:
    lat: list[float] = []

    def one(i: int) -> None:
        t = time.perf_counter()
        fn(i)
        lat.append(time.perf_counter() - t)

    cpu, t0 = _cpu(), time.perf_counter()
    if threads == 1:
        for i in range(n):
            one(i)
    else:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    lat.sort()
    return {"wall": wall, "cpu": _cpu() - cpu, "p50": statistics.median(lat),
            "p95": lat[min(len(lat) - 1, int(len(lat) * 0.95))], "n": n}


class _Boto3:
    def __init__(self, env: dict[str, str], bucket: str) -> None:
        os.environ.update(env)
        from camroll.server.storage.s3config import make_client

        self.c = make_client()
        self.bucket = bucket

    def put_bytes(self, key: str, data: bytes) -> None:
        self.c.put_object(Bucket=self.bucket, Key=key, Body=data)

    def put_file(self, key: str, path: Path) -> None:
        from boto3.s3.transfer import TransferConfig

        from camroll.server.storage import s3

        cfg = TransferConfig(multipart_threshold=s3.MULTIPART_THRESHOLD, multipart_chunksize=s3.MULTIPART_CHUNK,
                             max_concurrency=s3.MULTIPART_CONCURRENCY)
        self.c.upload_file(str(path), self.bucket, key, Config=cfg)

    def get_stream(self, key: str) -> str:
        body = self.c.get_object(Bucket=self.bucket, Key=key)["Body"]
        h = hashlib.sha256()
        while block := body.read(CHUNK):
            h.update(block)
        return h.hexdigest()

    def get_range(self, key: str, start: int, length: int) -> bytes:
        data: bytes = self.c.get_object(Bucket=self.bucket, Key=key,
                                        Range=f"bytes={start}-{start + length - 1}")["Body"].read()
        return data

    def head(self, key: str) -> int:
        return int(self.c.head_object(Bucket=self.bucket, Key=key)["ContentLength"])


class _Obstore:
    def __init__(self, env: dict[str, str], bucket: str) -> None:
        from obstore.store import S3Store

        self.s = S3Store(bucket, endpoint=env["AWS_ENDPOINT_URL"], access_key_id=env["AWS_ACCESS_KEY_ID"],
                         secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region=env["AWS_REGION"],
                         virtual_hosted_style_request=False, client_options={"allow_http": True,
                                                                            "pool_max_idle_per_host": "64"})

    def put_bytes(self, key: str, data: bytes) -> None:
        import obstore

        obstore.put(self.s, key, data)

    def put_file(self, key: str, path: Path) -> None:
        import obstore

        from camroll.server.storage import s3

        obstore.put(self.s, key, path, chunk_size=s3.MULTIPART_CHUNK, max_concurrency=s3.MULTIPART_CONCURRENCY)

    def get_stream(self, key: str) -> str:
        import obstore

        h = hashlib.sha256()
        for block in obstore.get(self.s, key).stream(min_chunk_size=CHUNK):
            h.update(block)
        return h.hexdigest()

    def get_range(self, key: str, start: int, length: int) -> bytes:
        import obstore

        return bytes(obstore.get_range(self.s, key, start=start, length=length))

    def head(self, key: str) -> int:
        import obstore

        return int(obstore.head(self.s, key)["size"])


def worker(name: str, env: dict[str, str], bucket: str, files: list[str], small_count: int) -> dict[str, Any]:
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    client: _Boto3 | _Obstore = _Boto3(env, bucket) if name == "boto3" else _Obstore(env, bucket)
    prefix = f"bench-{name}-{os.getpid()}"
    small = os.urandom(SMALL)
    large = [Path(f) for f in files]
    sizes = [p.stat().st_size for p in large]
    out: dict[str, Any] = {"client": name, "rss_after_import_mib": rss0 / 1024}
    out["put_small"] = _timed(lambda i: client.put_bytes(f"{prefix}/s/{i}", small), small_count, THREADS)
    out["get_small"] = _timed(lambda i: client.get_stream(f"{prefix}/s/{i}"), small_count, THREADS)
    out["put_large"] = _timed(lambda i: client.put_file(f"{prefix}/l/{i}", large[i]), len(large), 1)
    want = [hashlib.sha256(p.read_bytes()).hexdigest() for p in large]
    got: list[str] = []
    out["get_large"] = _timed(lambda i: got.append(client.get_stream(f"{prefix}/l/{i}")), len(large), 1)
    assert got == want, "a large object came back different"
    offsets = [(i % len(large), (i * 7919 * RANGE) % (sizes[i % len(large)] - RANGE)) for i in range(small_count)]
    out["get_range"] = _timed(lambda i: client.get_range(f"{prefix}/l/{offsets[i][0]}", offsets[i][1], RANGE),
                              small_count, THREADS)
    out["head"] = _timed(lambda i: client.head(f"{prefix}/s/{i}"), small_count, THREADS)
    out["bytes"] = {"put_small": SMALL * small_count, "get_small": SMALL * small_count,
                    "put_large": sum(sizes), "get_large": sum(sizes), "get_range": RANGE * small_count, "head": 0}
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["cpu_total_s"] = _cpu()
    return out


def _table(results: list[dict[str, Any]]) -> str:
    ops = ["put_small", "get_small", "put_large", "get_large", "get_range", "head"]
    names = [r["client"] for r in results]
    lines = [f"{'operation':<12}" + "".join(f"{n + ' MB/s':>14}{n + ' req/s':>14}{'p50 ms':>9}{'p95 ms':>9}{'CPU s':>8}"
                                            for n in names)]
    for op in ops:
        row = f"{op:<12}"
        for r in results:
            m, b = r[op], r["bytes"][op]
            mbs = f"{b / m['wall'] / 1e6:.0f}" if b else "-"
            row += (f"{mbs:>14}{m['n'] / m['wall']:>14.0f}{m['p50'] * 1e3:>9.1f}{m['p95'] * 1e3:>9.1f}"
                    f"{m['cpu']:>8.2f}")
        lines.append(row)
    lines.append(f"{'peak RSS':<12}" + "".join(f"{r['peak_rss_mib']:>13.0f}M{'':>14}{'':>9}{'':>9}{'':>8}"
                                              for r in results))
    lines.append(f"{'RSS at start':<12}" + "".join(f"{r['rss_after_import_mib']:>13.0f}M{'':>40}" for r in results))
    lines.append(f"{'CPU total':<12}" + "".join(f"{r['cpu_total_s']:>13.1f}s{'':>40}" for r in results))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small-count", type=int, default=200)
    ap.add_argument("--large-count", type=int, default=10)
    ap.add_argument("--large-mib", type=int, default=64)
    ap.add_argument("--clients", default="boto3,obstore")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        spec = json.loads(sys.stdin.read())
        print(json.dumps(worker(args.worker, spec["env"], spec["bucket"], spec["files"], spec["small_count"])))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from services.s3 import seaweedfs

    with tempfile.TemporaryDirectory(prefix="s3bench-") as tmp, seaweedfs(Path(tmp) / "weed") as svc:
        files = []
        for i in range(args.large_count):
            p = Path(tmp) / f"large{i}"
            with open(p, "wb") as f:
                block = os.urandom(CHUNK)
                for j in range(args.large_mib):
                    f.write(block[j % 251:] + block[:j % 251])
            files.append(str(p))
        env = {k: v for k, v in svc.env("").items() if k.startswith("AWS_")}
        results = []
        for name in args.clients.split(","):
            spec = json.dumps({"env": env, "bucket": svc.bucket, "files": files, "small_count": args.small_count})
            proc = subprocess.run([sys.executable, __file__, "--worker", name], input=spec, text=True,
                                  capture_output=True, check=False)
            if proc.returncode:
                sys.exit(f"{name} worker failed:\n{proc.stderr}")
            results.append(json.loads(proc.stdout))
    print(f"S3 clients against SeaweedFS on 127.0.0.1: {args.small_count} x {SMALL >> 10} KiB ({THREADS} threads), "
          f"{args.large_count} x {args.large_mib} MiB (one at a time), {args.small_count} ranged GETs of "
          f"{RANGE >> 10} KiB, {args.small_count} HEADs")
    print(_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
