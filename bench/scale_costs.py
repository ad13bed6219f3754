"""Per-asset costs at scale, measured in one run: what docs/SCALE.md multiplies out.

One ``camroll serve`` on PostgreSQL + S3 (SeaweedFS) + Redis and one ``camroll worker``, as deployed:

* **PostgreSQL bytes per asset**: rows and table + index bytes (pg_total_relation_size,
  pg_indexes_size, after VACUUM FULL so dead rows do not count) after ``--small`` photos, minus the
  same after a first batch of ``--small // 5``: the growth per asset, without the fixed cost of an
  empty schema;
* **S3 requests per upload, by operation**: every botocore call the server and the worker make is
  counted by an event hook (a ``sitecustomize`` on their PYTHONPATH writes the counts to a file), for a
  small photo in one creation-with-upload request, a video sent in ``--chunk-mib`` PATCHes, and the
  worker's thumbnails;
* **CPU seconds per asset job by type** (metadata + grid and preview thumbnails; the worker's process
  tree, its sandbox children included): 12 MP JPEGs, 12 MP HEICs, 10 s 1080p H.264 videos.

    nice .venv/bin/python bench/scale_costs.py             # a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from scale.replica import Replica  # noqa: E402
from support.server import camroll_cmd  # noqa: E402

from camroll import wire  # noqa: E402

MiB = 1024 * 1024
OCTET = "application/offset+octet-stream"
PASSWORD = "scale-costs-password"

# Counts every S3 call of the process it is loaded in, by operation, into $CAMROLL_BENCH_S3_COUNTS.PID
# (one file per process: the worker's sandbox children load it too).
SITECUSTOMIZE = textwrap.dedent('''
    import atexit, collections, json, os, threading, time
    _out = os.environ.get("CAMROLL_BENCH_S3_COUNTS")
    if _out:
        _counts = collections.Counter()
        _lock = threading.Lock()
        def _count(model=None, **_kw):
            with _lock:
                _counts[model.name] += 1
        def _dump():
            with _lock:
                data = dict(_counts)
            if not data:
                return
            path = f"{_out}.{os.getpid()}"
            with open(path + ".tmp", "w") as f:
                json.dump(data, f)
            os.replace(path + ".tmp", path)
        def _loop():
            while True:
                time.sleep(0.2)
                _dump()
        import botocore.session
        _orig = botocore.session.Session.__init__
        def _init(self, *a, **kw):
            _orig(self, *a, **kw)
            self.register("before-call.s3", _count)
        botocore.session.Session.__init__ = _init
        threading.Thread(target=_loop, daemon=True).start()
        atexit.register(_dump)
''')


def s3_counts(path: Path) -> Counter[str]:
    total: Counter[str] = Counter()
    for f in path.parent.glob(path.name + ".*"):
        if f.suffix != ".tmp":
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                total.update(json.loads(f.read_text()))
    return total


def settled_counts(path: Path) -> Counter[str]:
    """The counts once the 0.2 s dump loop has caught up."""
    time.sleep(0.5)
    return s3_counts(path)


# --- media -------------------------------------------------------------------------------------

def picture(seed: int, size: tuple[int, int] = (4000, 3000)) -> Any:
    """A 12 MP picture with the texture of a photo (noise made at 1/8 size and scaled up smoothly):
    pure pixel noise would cost the encoders and decoders far more than any real photo does."""
    from PIL import Image

    rng = random.Random(seed)
    small = Image.merge("RGB", [Image.effect_noise((size[0] // 8, size[1] // 8), 60 + 10 * c) for c in range(3)])
    im = small.resize(size, Image.Resampling.BICUBIC)
    im.paste((rng.randrange(256), 90, 160), (0, 0, size[0] // 3, size[1] // 3))
    return im


def jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    picture(seed).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def heic(seed: int) -> bytes:
    import pillow_heif

    buf = io.BytesIO()
    # x265's ultrafast preset: its default takes a minute per 12 MP picture here; decoding is what we measure.
    pillow_heif.from_pillow(picture(seed)).save(buf, format="HEIF", quality=70, enc_params={"preset": "ultrafast"})
    return buf.getvalue()


def mp4(tmp: Path, seed: int, seconds: int = 10) -> bytes:
    out = tmp / f"v{seed}.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=duration={seconds}:size=1920x1080:rate=30,noise=alls={10 + seed}:allf=t",
                    "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "12M", "-pix_fmt", "yuv420p",
                    "-movflags", "+faststart", str(out)], check=True, timeout=300)
    data = out.read_bytes()
    out.unlink()
    return data


def photo_small(i: int) -> bytes:
    """A small real JPEG, unique per ``i`` (for the database and request counts, not the CPU)."""
    from PIL import Image

    im = Image.new("RGB", (320, 240), (i % 256, (i // 256) % 256, 120))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    return buf.getvalue() + f"camroll-scale-costs {i}".encode()


# --- the deployment ----------------------------------------------------------------------------

@dataclass
class Deployment:
    replica: Replica
    worker: subprocess.Popen[bytes]
    token: str
    session: str
    dsn: str
    server_counts: Path
    worker_counts: Path

    @property
    def url(self) -> str:
        return self.replica.url


@contextlib.contextmanager
def deployment(tmp: Path) -> Iterator[Deployment]:
    from services import postgres, redis, s3

    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    with contextlib.ExitStack() as stack:
        weed = stack.enter_context(s3.seaweedfs(tmp / "seaweedfs"))
        (tmp / "redis").mkdir()
        queue = stack.enter_context(redis.redis_server(tmp / "redis"))
        database_url = postgres.fresh_url(migrated=False)
        env = {"CAMROLL_DATABASE_URL": database_url, **weed.env("library"), "CAMROLL_REDIS_URL": queue.url,
               "CAMROLL_JOB_WORKERS": "0", "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        server_counts, worker_counts = tmp / "s3-server.json", tmp / "s3-worker.json"
        replica = Replica(data=tmp / "replica", env={**env, "CAMROLL_BENCH_S3_COUNTS": str(server_counts)})
        replica.start()
        stack.callback(replica.stop)
        _add_user(database_url, tmp / "admin")
        r = httpx.post(f"{replica.url}/api/v1/auth/login", json={"username": "u", "password": PASSWORD})
        r.raise_for_status()
        session = r.json()["token"]
        r = httpx.post(f"{replica.url}/api/v1/devices", json={"name": "phone", "platform": "android"},
                       headers={"Authorization": f"Bearer {session}"})
        r.raise_for_status()
        log = stack.enter_context(open(tmp / "worker.log", "ab"))
        worker = subprocess.Popen(camroll_cmd("worker", "--workers", "1", "--data", str(tmp / "worker")),
                                  env={**os.environ, **env, "CAMROLL_BENCH_S3_COUNTS": str(worker_counts)},
                                  stdout=log, stderr=subprocess.STDOUT)
        stack.callback(_stop, worker)
        yield Deployment(replica, worker, r.json()["token"], session,
                         database_url.replace("postgresql+psycopg://", "postgresql://"), server_counts, worker_counts)


def _stop(p: subprocess.Popen[bytes]) -> None:
    p.terminate()
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def _add_user(database_url: str, scratch: Path) -> None:
    from camroll.server import migrate
    from camroll.server.context import build
    from camroll.server.services.accounts import add_user
    from camroll.server.settings import Settings

    ctx = build(Settings(data_dir=scratch, database_url=database_url))
    migrate.upgrade(ctx.engine)
    add_user(ctx, "u", PASSWORD)
    ctx.engine.dispose()


def upload(d: Deployment, client: httpx.Client, data: bytes, name: str, chunk: int) -> int:
    sha = hashlib.sha256(data).hexdigest()
    meta = wire.encode_upload_metadata({wire.META_FILENAME: name, wire.META_PATH: f"DCIM/{name}",
                                        wire.META_SHA256: sha, wire.META_SIZE: str(len(data))})
    base = {"Tus-Resumable": wire.TUS_VERSION, "Upload-Length": str(len(data)), "Upload-Metadata": meta}
    if len(data) <= chunk:
        r = client.post(wire.UPLOADS_PATH, content=data, headers={
            **base, "Content-Type": OCTET,
            "Upload-Checksum": "sha256 " + base64.b64encode(bytes.fromhex(sha)).decode()})
        if r.status_code != 201:
            raise RuntimeError(f"upload {name}: {r.status_code} {r.text[:300]}")
    else:
        r = client.post(wire.UPLOADS_PATH, content=b"", headers=base)
        if r.status_code != 201:
            raise RuntimeError(f"create {name}: {r.status_code} {r.text[:300]}")
        url, offset = r.headers["Location"], 0
        while offset < len(data):
            r = client.patch(url, content=data[offset:offset + chunk], headers={
                "Tus-Resumable": wire.TUS_VERSION, "Content-Type": OCTET, "Upload-Offset": str(offset)})
            if r.status_code != 204:
                raise RuntimeError(f"PATCH {name}: {r.status_code} {r.text[:300]}")
            offset += chunk
    return int(r.headers[wire.ASSET_ID_HEADER])


def wait_jobs(d: Deployment, ids: list[int], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=d.url, headers={"Authorization": f"Bearer {d.session}"}, timeout=60) as c:
        pending = set(ids)
        while pending:
            for i in list(pending):
                a = c.get(f"/api/v1/assets/{i}").json()
                if a.get("has_thumbnail") or a.get("job_error"):
                    if a.get("job_error"):
                        print(f"  asset {i}: {a['job_error']}", flush=True)
                    pending.discard(i)
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs not done in {timeout} s: {sorted(pending)[:10]}")
            time.sleep(0.3)


def worker_cpu(d: Deployment) -> float:
    root = psutil.Process(d.worker.pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def pg_sizes(dsn: str) -> dict[str, tuple[int, int, int]]:
    """table -> (rows, total bytes, index bytes), after VACUUM FULL."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM FULL")
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").fetchall()]
        out = {}
        for t in tables:
            rows = conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()  # names from the catalogue
            size = conn.execute("SELECT pg_total_relation_size(%s), pg_indexes_size(%s)", (t, t)).fetchone()
            assert rows is not None and size is not None
            out[t] = (int(rows[0]), int(size[0]), int(size[1]))
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", type=int, default=1000, help="small photos for the database growth (default 1000)")
    p.add_argument("--jpeg", type=int, default=10, help="12 MP JPEGs for the CPU per thumbnail")
    p.add_argument("--heic", type=int, default=4, help="12 MP HEICs")
    p.add_argument("--video", type=int, default=4, help="10 s 1080p H.264 videos (about 15 MB)")
    p.add_argument("--chunk-mib", type=int, default=4, help="PATCH size for files larger than this")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if not 10 <= args.small <= 100_000 or min(args.jpeg, args.heic, args.video) < 1:
        p.error("--small 10..100000, and at least one file of each type")
    if shutil.which("ffmpeg") is None:
        p.error("ffmpeg is needed for the videos: apt-get install ffmpeg")
    chunk = args.chunk_mib * MiB
    result: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="camroll-costs-"))
    try:
        print("making media ...", flush=True)
        media = {"jpeg": [jpeg(i) for i in range(args.jpeg)], "heic": [heic(100 + i) for i in range(args.heic)],
                 "video": [mp4(tmp, i) for i in range(args.video)]}
        for kind, items in media.items():
            print(f"  {kind}: {len(items)} files, mean {sum(map(len, items)) / len(items) / 1e6:.1f} MB", flush=True)
        with deployment(tmp) as d, httpx.Client(base_url=d.url, timeout=300,
                                                headers={"Authorization": f"Bearer {d.token}"}) as client:
            # 1. Database growth per asset, and the S3 requests of a small photo and of its jobs.
            first = args.small // 5
            ids = [upload(d, client, photo_small(i), f"S{i:06d}.jpg", chunk) for i in range(first)]
            wait_jobs(d, ids)
            before = pg_sizes(d.dsn)
            s0, w0 = settled_counts(d.server_counts), settled_counts(d.worker_counts)
            ids = [upload(d, client, photo_small(i), f"S{i:06d}.jpg", chunk) for i in range(first, args.small)]
            s1 = settled_counts(d.server_counts)
            wait_jobs(d, ids)
            w1 = settled_counts(d.worker_counts)
            after = pg_sizes(d.dsn)
            n = args.small - first
            result["pg_per_asset"] = {t: {"rows": (after[t][0] - before.get(t, (0, 0, 0))[0]) / n,
                                          "bytes": (after[t][1] - before.get(t, (0, 0, 0))[1]) / n,
                                          "index_bytes": (after[t][2] - before.get(t, (0, 0, 0))[2]) / n}
                                      for t in after}
            result["s3_small_upload"] = {k: v / n for k, v in (s1 - s0).items()}
            result["s3_small_jobs"] = {k: v / n for k, v in (w1 - w0).items()}
            # 2. CPU per asset job by type, and the S3 requests of a chunked video upload.
            cpu: dict[str, float] = {}
            for kind, items in media.items():
                s0, w0 = settled_counts(d.server_counts), settled_counts(d.worker_counts)
                c0 = worker_cpu(d)
                ids = [upload(d, client, data, f"{kind}{i}.{'mp4' if kind == 'video' else kind}", chunk)
                       for i, data in enumerate(items)]
                s1 = settled_counts(d.server_counts)
                wait_jobs(d, ids)
                cpu[kind] = (worker_cpu(d) - c0) / len(items)
                w1 = settled_counts(d.worker_counts)
                result[f"s3_{kind}_upload"] = {k: v / len(items) for k, v in (s1 - s0).items()}
                result[f"s3_{kind}_jobs"] = {k: v / len(items) for k, v in (w1 - w0).items()}
                result[f"{kind}_mean_mb"] = sum(map(len, items)) / len(items) / 1e6
            result["cpu_s_per_job"] = cpu
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(result, args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    print("\nPostgreSQL growth per asset (after VACUUM FULL):")
    print("| table | rows/asset | bytes/asset | of which index |\n|---|---:|---:|---:|")
    total = idx = 0.0
    for t, v in sorted(r["pg_per_asset"].items()):
        if v["rows"] or v["bytes"]:
            print(f"| {t} | {v['rows']:.2f} | {v['bytes']:.0f} | {v['index_bytes']:.0f} |")
            total += v["bytes"]
            idx += v["index_bytes"]
    print(f"| all | | {total:.0f} | {idx:.0f} |")
    print(f"\nS3 requests per asset, by operation (chunk {args.chunk_mib} MiB):")
    print("| what | requests | by operation |\n|---|---:|---|")
    for key, label in (("s3_small_upload", "small photo upload (one request)"),
                       ("s3_small_jobs", "small photo: metadata + thumbnails"),
                       ("s3_jpeg_upload", f"12 MP JPEG upload ({r['jpeg_mean_mb']:.1f} MB)"),
                       ("s3_jpeg_jobs", "12 MP JPEG: metadata + thumbnails"),
                       ("s3_heic_upload", f"12 MP HEIC upload ({r['heic_mean_mb']:.1f} MB)"),
                       ("s3_heic_jobs", "12 MP HEIC: metadata + thumbnails"),
                       ("s3_video_upload", f"1080p video upload ({r['video_mean_mb']:.1f} MB)"),
                       ("s3_video_jobs", "1080p video: metadata + poster thumbnails")):
        ops = r[key]
        detail = ", ".join(f"{k} {v:.2f}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1]))
        print(f"| {label} | {sum(ops.values()):.2f} | {detail} |")
    print("\nWorker CPU seconds per asset job (metadata + grid + preview; process tree):")
    print("| type | CPU s |\n|---|---:|")
    for kind, s in r["cpu_s_per_job"].items():
        print(f"| {kind} | {s:.2f} |")


if __name__ == "__main__":
    main()
