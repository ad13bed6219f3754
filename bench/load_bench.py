"""Load: many devices backing up at once, on two replicas behind the load balancer and on the embedded
default, in one run.

Two configurations get the same load, one after the other:

* ``cluster``: PostgreSQL + S3 (SeaweedFS ``weed mini``) + Redis, two ``camroll serve`` replicas
  (``CAMROLL_JOB_WORKERS=0``) and one ``camroll worker`` (2 threads), behind the shipped nginx config
  (deploy/nginx/camroll.conf, TLS), as docs/DEPLOY.md sets them up;
* ``embedded``: one ``camroll serve`` with its defaults (SQLite, local disk, the job queue in SQLite,
  2 job threads in the server), reached directly, as the two-command start runs it.

The load: ``--devices`` simulated devices (default 50; 10 users with 5 devices each, every device its
own device token), each backing up ``--files`` files (default 200): 70% JPEG photos, 20% HEIC photos,
10% H.264 MP4 videos.  Every file is a real image or clip (made once at start) padded to its size with
random bytes its decoder ignores (after a JPEG's end marker, in an ISO-BMFF ``free`` box for HEIC and
MP4), so each has its own SHA-256 and thumbnails are real work.  Sizes at ``--scale 1``: JPEG 60-240 KiB,
HEIC 40-160 KiB, video 1-6 MiB (mean about 480 KiB a file, 97 MB a device); a real phone's files are
about 10x larger, scaled down so that one run takes a few minutes on a 2-core machine.

A device is simulated with httpx as the agent's uploader does it (agent/backup/), not as
50 agent processes (which would measure 50 Python start-ups and state databases on 2 cores): hashes
checked in batches of 50 (``POST /assets/check``), then each missing file uploaded with
creation-with-upload and ``Upload-Checksum: sha256`` when it fits in one chunk (``--chunk-mib``, 4 MiB),
else a bodiless POST and PATCHes of one chunk; ``--concurrency`` uploads in flight per device (2).

Printed: files/s, MB/s, p50/p95/p99 of one file's upload time (first request to the answer carrying
its asset id), errors (any answer that is not the expected one; must be 0), each process's peak RSS
(its process tree) and CPU seconds (psutil, sampled every 0.5 s), and the peak of PostgreSQL
connections (pg_stat_activity).

    nice .venv/bin/python bench/load_bench.py                     # full size, both configurations
    nice .venv/bin/python bench/load_bench.py --devices 5 --files 20   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import signal
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from scale.replica import Replica, start_replicas  # noqa: E402
from services import nginx  # noqa: E402
from support.server import ServerProcess, camroll_cmd  # noqa: E402

from camroll import wire  # noqa: E402

MiB = 1024 * 1024
OCTET = "application/offset+octet-stream"
PASSWORD = "load-bench-password"
USERS = 10
CHECK_BATCH = 50


# --- the files ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    name: str
    ext: str
    share: float  # of the files
    low: int  # bytes at --scale 1
    high: int


KINDS = (Kind("jpeg", "jpg", 0.7, 60 * 1024, 240 * 1024), Kind("heic", "heic", 0.2, 40 * 1024, 160 * 1024),
         Kind("video", "mp4", 0.1, 1 * MiB, 6 * MiB))


def _templates(tmp: Path) -> dict[str, bytes]:
    """One small real file per kind; every upload is one of these plus padding."""
    from PIL import Image

    im = Image.new("RGB", (640, 480), (180, 90, 40))
    for x in range(0, 640, 16):
        im.paste((x % 256, 120, 200), (x, 0, x + 8, 240))
    jpg = io.BytesIO()
    im.save(jpg, "JPEG", quality=85)
    import pillow_heif

    heif = pillow_heif.from_pillow(im)
    heic = io.BytesIO()
    heif.save(heic, format="HEIF", quality=60)
    clip = tmp / "clip.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=duration=1:size=320x240:rate=10", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                    str(clip)], check=True, timeout=120)
    return {"jpeg": jpg.getvalue(), "heic": heic.getvalue(), "video": clip.read_bytes()}


@dataclass(frozen=True)
class FileSpec:
    device: int
    index: int
    kind: str
    size: int


def plan(devices: int, files: int, scale: float, seed: int) -> list[list[FileSpec]]:
    rng = random.Random(seed)
    out = []
    for d in range(devices):
        specs = []
        for i in range(files):
            pick, acc = rng.random(), 0.0
            kind = KINDS[-1]
            for k in KINDS:
                acc += k.share
                if pick < acc:
                    kind = k
                    break
            specs.append(FileSpec(d, i, kind.name, int(rng.uniform(kind.low, kind.high) * scale)))
        out.append(specs)
    return out


class Maker:
    """Builds a file's bytes from its spec: the template, then a tag naming the file and random bytes."""

    def __init__(self, templates: dict[str, bytes], seed: int) -> None:
        self.templates = templates
        noise = random.Random(seed).randbytes(8 * MiB)
        # Twice over, so any piece up to 8 MiB is one slice from any start.
        self.noise = memoryview(noise + noise)

    def _filler(self, start: int, n: int) -> list[memoryview]:
        half = len(self.noise) // 2
        out = []
        while n > 0:
            take = min(n, half)
            out.append(self.noise[start % half:start % half + take])
            n -= take
            start += take
        return out

    def __call__(self, spec: FileSpec) -> bytes:
        base = self.templates[spec.kind]
        tag = f"camroll-load-bench device {spec.device} file {spec.index}\n".encode()
        size = max(spec.size, len(base) + len(tag) + 16)
        start = spec.device * 7919 + spec.index * 104729
        if spec.kind == "jpeg":
            # After the end marker: decoders stop there.
            return b"".join([base, tag, *self._filler(start, size - len(base) - len(tag))])
        # ISO-BMFF (HEIC, MP4): a top-level free box that every reader skips.
        box = size - len(base)
        return b"".join([base, struct.pack(">I4s", box, b"free"), tag, *self._filler(start, box - 8 - len(tag))])


# --- one device ---------------------------------------------------------------------------------

@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    requests: int = 0


def _meta(spec: FileSpec, sha: str, size: int) -> str:
    name = f"IMG_{spec.index:05d}.{next(k.ext for k in KINDS if k.name == spec.kind)}"
    return wire.encode_upload_metadata({wire.META_FILENAME: name, wire.META_PATH: f"DCIM/Camera/{name}",
                                        wire.META_SHA256: sha, wire.META_SIZE: str(size),
                                        wire.META_MTIME_NS: str(1_700_000_000_000_000_000 + spec.index)})


async def _upload(client: httpx.AsyncClient, spec: FileSpec, data: bytes, sha: str, chunk: int,
                  out: Outcome) -> None:
    t0 = time.perf_counter()
    base = {"Tus-Resumable": wire.TUS_VERSION, "Upload-Length": str(len(data)),
            "Upload-Metadata": _meta(spec, sha, len(data))}
    try:
        if len(data) <= chunk:
            digest = base64.b64encode(bytes.fromhex(sha)).decode()
            r = await client.post(wire.UPLOADS_PATH, content=data, headers={
                **base, "Content-Type": OCTET, "Upload-Checksum": f"sha256 {digest}"})
            out.requests += 1
            if r.status_code != 201 or wire.ASSET_ID_HEADER not in r.headers:
                out.errors.append(f"POST {spec}: {r.status_code} {r.text[:200]}")
                return
        else:
            r = await client.post(wire.UPLOADS_PATH, content=b"", headers=base)
            out.requests += 1
            if r.status_code != 201:
                out.errors.append(f"POST {spec}: {r.status_code} {r.text[:200]}")
                return
            url, offset = r.headers["Location"], 0
            while offset < len(data):
                piece = data[offset:offset + chunk]
                r = await client.patch(url, content=piece, headers={
                    "Tus-Resumable": wire.TUS_VERSION, "Content-Type": OCTET, "Upload-Offset": str(offset)})
                out.requests += 1
                if r.status_code != 204:
                    out.errors.append(f"PATCH {spec} at {offset}: {r.status_code} {r.text[:200]}")
                    return
                offset += len(piece)
            if wire.ASSET_ID_HEADER not in r.headers:
                out.errors.append(f"PATCH {spec}: the last answer has no asset id")
                return
    except httpx.HTTPError as exc:
        out.errors.append(f"{spec}: {type(exc).__name__}: {exc}")
        return
    out.latencies.append(time.perf_counter() - t0)
    out.files += 1
    out.bytes += len(data)


async def device(base_url: str, token: str, specs: list[FileSpec], make: Maker, *, chunk: int, concurrency: int,
                 verify: ssl.SSLContext, out: Outcome) -> None:
    limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=concurrency + 1)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, verify=verify,
                                 timeout=120, limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(spec: FileSpec, data: bytes, sha: str) -> None:
            async with gate:
                await _upload(client, spec, data, sha, chunk, out)

        for start in range(0, len(specs), CHECK_BATCH):
            batch = specs[start:start + CHECK_BATCH]
            shas = [hashlib.sha256(make(s)).hexdigest() for s in batch]
            r = await client.post(f"{wire.API_PREFIX}/assets/check", json={"items": [{"sha256": s} for s in shas]})
            out.requests += 1
            if r.status_code != 200:
                out.errors.append(f"check: {r.status_code} {r.text[:200]}")
                continue
            present = r.json()["present"]
            await asyncio.gather(*(one(s, make(s), h) for s, h in zip(batch, shas, strict=True) if h not in present))


# --- measuring processes ------------------------------------------------------------------------

class Sampler:
    """Peak RSS (sum over each process tree) and CPU seconds per named process, every ``interval``;
    and the peak of PostgreSQL connections when ``pg_dsn`` is given."""

    def __init__(self, roots: dict[str, Callable[[], list[psutil.Process]]], pg_dsn: str | None = None,
                 interval: float = 0.5, alone: frozenset[str] = frozenset()) -> None:
        self.roots = roots
        self.alone = alone  # names measured without their children
        self.interval = interval
        self.pg_dsn = pg_dsn
        self.peak_rss: dict[str, int] = dict.fromkeys(roots, 0)
        self.cpu: dict[str, dict[int, float]] = {name: {} for name in roots}
        self.base_cpu: dict[str, dict[int, float]] = {name: {} for name in roots}
        self.pg_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _procs(self, name: str) -> list[psutil.Process]:
        out: list[psutil.Process] = []
        for root in self.roots[name]():
            with contextlib.suppress(psutil.Error):
                out += [root] if name in self.alone else [root, *root.children(recursive=True)]
        return out

    def sample(self, *, baseline: bool = False) -> None:
        for name in self.roots:
            total = 0
            for p in self._procs(name):
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
                    t = p.cpu_times()
                    used = t.user + t.system
                    self.cpu[name][p.pid] = used
                    if baseline:
                        self.base_cpu[name][p.pid] = used
            self.peak_rss[name] = max(self.peak_rss[name], total)

    def _pg(self, conn: Any) -> None:
        n = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").fetchone()[0]
        self.pg_peak = max(self.pg_peak, int(n) - 1)  # not this sampler's own

    def _run(self) -> None:
        conn = None
        if self.pg_dsn:
            import psycopg

            conn = psycopg.connect(self.pg_dsn, autocommit=True)
        try:
            while not self._stop.wait(self.interval):
                self.sample()
                if conn is not None:
                    self._pg(conn)
        finally:
            if conn is not None:
                conn.close()

    def start(self) -> None:
        self.sample(baseline=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def cpu_seconds(self, name: str) -> float:
        return sum(v - self.base_cpu[name].get(pid, 0.0) for pid, v in self.cpu[name].items())


def by_pid(*pids: int) -> Callable[[], list[psutil.Process]]:
    def find() -> list[psutil.Process]:
        out = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                out.append(psutil.Process(pid))
        return out
    return find


def by_name(name: str, needle: str = "") -> Callable[[], list[psutil.Process]]:
    """Processes called ``name`` whose command line holds ``needle``, outermost only."""
    def find() -> list[psutil.Process]:
        found = []
        for p in psutil.process_iter(["name", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                if p.info["name"] == name and needle in " ".join(p.info["cmdline"] or []):
                    found.append(p)
        pids = {p.pid for p in found}
        return [p for p in found if p.ppid() not in pids]
    return find


# --- the two configurations ---------------------------------------------------------------------

@dataclass
class Target:
    name: str
    url: str
    # One context for every client: building one per client costs 0.1-0.3 s of CPU (CA file parsing).
    verify: ssl.SSLContext
    processes: dict[str, Callable[[], list[psutil.Process]]]
    add_users: Callable[[int], None]
    pg_dsn: str | None = None


def _add_users_in_process(database_url: str, scratch: Path, count: int) -> None:
    from camroll.server import migrate
    from camroll.server.context import build
    from camroll.server.services.accounts import add_user
    from camroll.server.settings import Settings

    ctx = build(Settings(data_dir=scratch, database_url=database_url))
    migrate.upgrade(ctx.engine)
    for u in range(count):
        add_user(ctx, f"user{u:02d}", PASSWORD)
    ctx.engine.dispose()


@contextlib.contextmanager
def embedded(tmp: Path) -> Iterator[Target]:
    data = tmp / "embedded"
    srv = ServerProcess(data=data, env={"CAMROLL_DATABASE_URL": "", "CAMROLL_REDIS_URL": ""})
    srv.start()
    assert srv.proc is not None
    try:
        def users(n: int) -> None:
            _add_users_in_process(f"sqlite+pysqlite:///{data / 'camroll.db'}", data, n)
        yield Target("embedded (SQLite + local disk, 1 server)", srv.url, ssl.create_default_context(),
                     {"camroll serve": by_pid(srv.proc.pid)}, users)
    finally:
        srv.stop()


@contextlib.contextmanager
def cluster(tmp: Path) -> Iterator[Target]:
    from services import postgres, redis, s3

    stack = contextlib.ExitStack()
    weed = stack.enter_context(s3.seaweedfs(tmp / "seaweedfs"))
    (tmp / "redis").mkdir()
    queue = stack.enter_context(redis.redis_server(tmp / "redis"))
    database_url = postgres.fresh_url(migrated=False)
    env = {"CAMROLL_DATABASE_URL": database_url, **weed.env("library"), "CAMROLL_REDIS_URL": queue.url,
           "CAMROLL_JOB_WORKERS": "0"}
    replicas = [Replica(data=tmp / f"replica-{n}", env=env) for n in "ab"]
    start_replicas(replicas)
    lb = nginx.start_nginx(tmp / "nginx", [r.port for r in replicas])
    log = open(tmp / "worker.log", "ab")  # noqa: SIM115 - the worker writes it until the end
    worker = subprocess.Popen(camroll_cmd("worker", "--workers", "2", "--data", str(tmp / "worker")),
                              env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        pg = postgres.cluster()
        dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
        procs = {f"camroll serve {n}": by_pid(r.proc.pid) for n, r in zip("ab", replicas, strict=True)
                 if r.proc is not None}
        procs.update({"camroll worker": by_pid(worker.pid), "nginx": by_pid(lb.proc.pid),
                      "postgres": by_name("postgres", f"--port={pg.port}"),
                      "seaweedfs (weed mini)": by_name("weed"), "redis-server": by_name("redis-server")})
        yield Target("cluster (2 replicas + worker, PostgreSQL + S3 + Redis, nginx TLS)", lb.url,
                     lb.ssl_context(), procs, lambda n: _add_users_in_process(database_url, tmp / "admin", n),
                     pg_dsn=dsn)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
        lb.stop()
        for r in replicas:
            r.stop()
        stack.close()


# --- a run --------------------------------------------------------------------------------------

@dataclass
class Result:
    config: str
    devices: int
    files: int
    bytes: int
    seconds: float
    errors: int
    p50: float
    p95: float
    p99: float
    requests: int
    pg_connections_peak: int | None
    processes: dict[str, tuple[float, float]]  # name -> (peak RSS MB, CPU s)
    first_errors: list[str]

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _tokens(target: Target, devices: int) -> list[str]:
    target.add_users(USERS)
    tokens = []
    with httpx.Client(base_url=target.url, verify=target.verify, timeout=60) as c:
        sessions = []
        for u in range(USERS):
            r = c.post(f"{wire.API_PREFIX}/auth/login", json={"username": f"user{u:02d}", "password": PASSWORD})
            r.raise_for_status()
            sessions.append(r.json()["token"])
        for d in range(devices):
            r = c.post(f"{wire.API_PREFIX}/devices", json={"name": f"phone-{d:02d}", "platform": "android"},
                       headers={"Authorization": f"Bearer {sessions[d % USERS]}"})
            r.raise_for_status()
            tokens.append(r.json()["token"])
    return tokens


def run(target: Target, specs: list[list[FileSpec]], make: Maker, *, chunk: int, concurrency: int) -> Result:
    tokens = _tokens(target, len(specs))
    client = "load client (this process)"
    # The servers are this process's children: the client is measured alone.
    sampler = Sampler({**target.processes, client: by_pid(os.getpid())}, pg_dsn=target.pg_dsn,
                      alone=frozenset({client}))
    outcomes = [Outcome() for _ in specs]

    async def everything() -> None:
        await asyncio.gather(*(device(target.url, tok, s, make, chunk=chunk, concurrency=concurrency,
                                      verify=target.verify, out=o)
                               for tok, s, o in zip(tokens, specs, outcomes, strict=True)))

    sampler.start()
    t0 = time.perf_counter()
    asyncio.run(everything())
    seconds = time.perf_counter() - t0
    sampler.stop()
    lat = sorted(x for o in outcomes for x in o.latencies)
    errors = [e for o in outcomes for e in o.errors]
    return Result(target.name, len(specs), sum(o.files for o in outcomes), sum(o.bytes for o in outcomes), seconds,
                  len(errors), _pct(lat, 50), _pct(lat, 95), _pct(lat, 99), sum(o.requests for o in outcomes),
                  sampler.pg_peak if target.pg_dsn else None,
                  {n: (sampler.peak_rss[n] / 1e6, sampler.cpu_seconds(n)) for n in sampler.roots}, errors[:5])


def table(results: list[Result]) -> str:
    lines = ["| configuration | files | MB | s | files/s | MB/s | p50 s | p95 s | p99 s | errors | PG conns peak |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        pg = "" if r.pg_connections_peak is None else str(r.pg_connections_peak)
        lines.append(f"| {r.config} | {r.files} | {r.bytes / 1e6:.0f} | {r.seconds:.1f} | {r.files_per_s:.1f} | "
                     f"{r.mb_per_s:.1f} | {r.p50:.3f} | {r.p95:.3f} | {r.p99:.3f} | {r.errors} | {pg} |")
    lines += ["", "| configuration | process | peak RSS MB | CPU s |", "|---|---|---:|---:|"]
    for r in results:
        for name, (rss, cpu) in r.processes.items():
            lines.append(f"| {r.config.split(' (')[0]} | {name} | {rss:.0f} | {cpu:.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=50)
    p.add_argument("--files", type=int, default=200, help="files per device")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every file size")
    p.add_argument("--chunk-mib", type=int, default=4, help="larger files go as a POST and PATCHes of this size")
    p.add_argument("--concurrency", type=int, default=2, help="uploads in flight per device")
    p.add_argument("--only", choices=("cluster", "embedded"), help="run one configuration")
    p.add_argument("--seed", type=int, default=20261201)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    if not 1 <= args.devices <= 1000 or not 1 <= args.files <= 100_000 or not 0 < args.scale <= 100:
        p.error("--devices 1..1000, --files 1..100000 and --scale in (0, 100] keep a run bounded")
    if shutil.which("ffmpeg") is None:
        p.error("ffmpeg is needed for the video template: apt-get install ffmpeg")
    tmp = Path(tempfile.mkdtemp(prefix="camroll-load-"))
    try:
        make = Maker(_templates(tmp), args.seed)
        specs = plan(args.devices, args.files, args.scale, args.seed)
        total = sum(s.size for d in specs for s in d)
        print(f"{args.devices} devices x {args.files} files, {total / 1e6:.0f} MB per configuration "
              f"(scale {args.scale}), chunk {args.chunk_mib} MiB, {args.concurrency} uploads in flight per device",
              flush=True)
        results = []
        configs = [("embedded", embedded), ("cluster", cluster)]
        for name, start in configs:
            if args.only and args.only != name:
                continue
            (tmp / name).mkdir()
            with start(tmp / name) as target:
                print(f"running {target.name} ...", flush=True)
                results.append(run(target, specs, make, chunk=args.chunk_mib * MiB, concurrency=args.concurrency))
                if results[-1].first_errors:
                    print("first errors:", *results[-1].first_errors, sep="\n  ", flush=True)
        print(table(results))
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
