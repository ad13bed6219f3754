"""Server-side upload throughput: many small files via tus creation-with-upload, and one large
file in checksummed PATCHes.

Starts ``camroll serve`` on a fresh data directory, creates a user and a device token, then

* uploads ``--files`` distinct payloads of ``--size`` bytes (starting with a JPEG signature) as
  creation-with-upload POSTs carrying the metadata ``sha256``, from ``--threads`` threads;
* uploads one ``--large-mib`` MiB file: a POST, then ``--chunk-mib`` MiB PATCHes, each with an
  ``Upload-Checksum: sha256`` header.

It reports files/s, MB/s and the server process's CPU seconds (utime + stime from /proc/PID/stat).
``--src DIR`` runs the server from another checkout's ``src`` (e.g. a ``git worktree`` of an older
commit) so before/after runs share the same client and conditions.

    .venv/bin/python bench/server_upload_bench.py --files 2000 --large-mib 1024 --repeat 3
    .venv/bin/python bench/server_upload_bench.py --files 3000 --batch 250 --large-mib 0   # tus vs batch
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from camroll import wire

JPEG_MAGIC = b"\xff\xd8\xff"
MiB = 1024 * 1024
OCTET = "application/offset+octet-stream"
ASSET_ID_HEADER = "Camroll-Asset-Id"


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    token: str

    def cpu_seconds(self) -> float:
        """utime + stime of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    kind: str
    count: int
    bytes: int
    seconds: float
    server_cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    @property
    def mb_per_second(self) -> float:
        return self.bytes / self.seconds / 1e6

    def line(self) -> str:
        cpu_each = self.server_cpu_seconds / self.count * 1000
        return (f"{self.kind}: {self.count} files, {self.bytes / 1e6:.1f} MB in {self.seconds:.2f} s = "
                f"{self.per_second:.1f} files/s, {self.mb_per_second:.1f} MB/s; server CPU "
                f"{self.server_cpu_seconds:.2f} s ({cpu_each:.2f} ms/file)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(src: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve()) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@contextmanager
def server(data: Path, src: Path | None) -> Iterator[Server]:
    env = _env(src)
    password = data.parent / "password"
    password.write_text("bench-password-123\n")
    subprocess.run([sys.executable, "-m", "camroll", "admin", "user", "add", "u", "--password-file",
                    str(password), "--data", str(data)], check=True, env=env, capture_output=True)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "camroll", "serve", "--data", str(data), "--listen",
                             f"127.0.0.1:{port}"], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}{wire.API_PREFIX}/server", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("camroll serve did not start")
            time.sleep(0.1)
        login = httpx.post(f"{base}{wire.API_PREFIX}/auth/login",
                           json={"username": "u", "password": "bench-password-123"})
        login.raise_for_status()
        device = httpx.post(f"{base}{wire.API_PREFIX}/devices", json={"name": "bench"},
                            headers={"Authorization": f"Bearer {login.json()['token']}"})
        device.raise_for_status()
        yield Server(proc, base, device.json()["token"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Tus-Resumable": wire.TUS_VERSION}


def _payloads(count: int, size: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [JPEG_MAGIC + i.to_bytes(8, "big") + rng.randbytes(max(0, size - len(JPEG_MAGIC) - 8))
            for i in range(count)]


def small_files(srv: Server, count: int, size: int, threads: int, checksum: bool, seed: int) -> Result:
    payloads = _payloads(count, size, seed)
    digests = [hashlib.sha256(p).digest() for p in payloads]
    next_index = iter(range(count))
    lock = threading.Lock()
    errors: list[str] = []

    def worker() -> None:
        with httpx.Client(base_url=srv.base, headers=_headers(srv.token), timeout=60) as client:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                meta = {wire.META_FILENAME: f"IMG_{i:05d}.jpg", wire.META_PATH: f"DCIM/IMG_{i:05d}.jpg",
                        wire.META_SHA256: digests[i].hex(), wire.META_SIZE: str(size),
                        wire.META_MTIME_NS: str(1_700_000_000_000_000_000 + i)}
                headers = {"Upload-Length": str(len(payloads[i])), "Content-Type": OCTET,
                           "Upload-Metadata": wire.encode_upload_metadata(meta)}
                if checksum:
                    headers["Upload-Checksum"] = "sha256 " + base64.b64encode(digests[i]).decode()
                r = client.post(wire.UPLOADS_PATH, content=payloads[i], headers=headers)
                if r.status_code != 201 or ASSET_ID_HEADER not in r.headers:
                    with lock:
                        errors.append(f"file {i}: {r.status_code} {r.text[:200]}")
                    return

    cpu0 = srv.cpu_seconds()
    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - t0
    cpu = srv.cpu_seconds() - cpu0
    if errors:
        raise RuntimeError("; ".join(errors[:5]))
    return Result("small", count, sum(len(p) for p in payloads), seconds, cpu)


def batched_files(srv: Server, count: int, size: int, threads: int, per_batch: int, seed: int) -> Result:
    """The same payloads as ``small_files``, ``per_batch`` at a time through POST /uploads/batch."""
    payloads = _payloads(count, size, seed + 1000)
    batches = [list(range(i, min(count, i + per_batch))) for i in range(0, count, per_batch)]
    next_batch = iter(batches)
    lock = threading.Lock()
    errors: list[str] = []

    def worker() -> None:
        with httpx.Client(base_url=srv.base, headers=_headers(srv.token), timeout=300) as client:
            while True:
                with lock:
                    b = next(next_batch, None)
                if b is None:
                    return
                entries = [{"size": len(payloads[i]), "sha256": hashlib.sha256(payloads[i]).hexdigest(),
                            "path": f"DCIM/IMG_{i:05d}.jpg", "filename": f"IMG_{i:05d}.jpg",
                            "mtime_ns": 1_700_000_000_000_000_000 + i} for i in b]
                manifest = json.dumps({"files": entries}).encode()
                body = wire.BATCH_MAGIC + len(manifest).to_bytes(4, "big") + manifest + b"".join(payloads[i] for i in b)
                r = client.post(wire.BATCH_PATH, content=body, headers={"Content-Type": wire.BATCH_CONTENT_TYPE})
                bad = [] if r.status_code != 200 else [x for x in r.json()["results"] if x["status"] != "created"]
                if r.status_code != 200 or bad:
                    with lock:
                        errors.append(f"batch at {b[0]}: {r.status_code} {(bad or r.text)!s:.200}")
                    return

    cpu0 = srv.cpu_seconds()
    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - t0
    cpu = srv.cpu_seconds() - cpu0
    if errors:
        raise RuntimeError("; ".join(errors[:5]))
    return Result(f"batch of {per_batch}", count, sum(len(p) for p in payloads), seconds, cpu)


def large_file(srv: Server, mib: int, chunk_mib: int, seed: int) -> Result:
    block = JPEG_MAGIC + random.Random(seed).randbytes(chunk_mib * MiB - len(JPEG_MAGIC))
    chunks = (mib + chunk_mib - 1) // chunk_mib
    total = mib * MiB

    def chunk(i: int) -> bytes:
        n = min(chunk_mib * MiB, total - i * chunk_mib * MiB)
        # Every chunk differs (index in bytes 3..11), so the whole file is unique per run.
        return block[:3] + i.to_bytes(8, "big") + block[11:n] if i else block[:n]

    whole = hashlib.sha256()
    sums = []
    for i in range(chunks):
        c = chunk(i)
        whole.update(c)
        sums.append("sha256 " + base64.b64encode(hashlib.sha256(c).digest()).decode())
    meta = {wire.META_FILENAME: "big.jpg", wire.META_PATH: "DCIM/big.jpg", wire.META_SHA256: whole.hexdigest(),
            wire.META_SIZE: str(total)}
    cpu0 = srv.cpu_seconds()
    t0 = time.perf_counter()
    with httpx.Client(base_url=srv.base, headers=_headers(srv.token), timeout=600) as client:
        r = client.post(wire.UPLOADS_PATH, headers={"Upload-Length": str(total),
                                                    "Upload-Metadata": wire.encode_upload_metadata(meta)})
        if r.status_code != 201:
            raise RuntimeError(f"create: {r.status_code} {r.text[:200]}")
        location = r.headers["Location"]
        offset = 0
        for i in range(chunks):
            c = chunk(i)
            r = client.patch(location, content=c, headers={
                "Upload-Offset": str(offset), "Content-Type": OCTET, "Upload-Checksum": sums[i]})
            if r.status_code != 204:
                raise RuntimeError(f"PATCH {i}: {r.status_code} {r.text[:200]}")
            offset += len(c)
        if ASSET_ID_HEADER not in r.headers:
            raise RuntimeError("the last PATCH did not answer with an asset id")
    seconds = time.perf_counter() - t0
    return Result("large", 1, total, seconds, srv.cpu_seconds() - cpu0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=2000, help="small files to upload (0 skips; default 2000)")
    p.add_argument("--size", type=int, default=10_000, help="bytes per small file (default 10000)")
    p.add_argument("--threads", type=int, default=3, help="concurrent small uploads (default 3)")
    p.add_argument("--checksum", action="store_true",
                   help="send Upload-Checksum sha256 (the file's SHA-256) with each small file")
    p.add_argument("--batch", type=int, default=0,
                   help="also send the small files through POST /uploads/batch, this many per request (0 skips)")
    p.add_argument("--batch-only", action="store_true",
                   help="with --batch: skip the one-request-per-file (tus) run")
    p.add_argument("--large-mib", type=int, default=1024, help="large file size in MiB (0 skips; default 1024)")
    p.add_argument("--chunk-mib", type=int, default=16, help="PATCH size in MiB (default 16)")
    p.add_argument("--repeat", type=int, default=1, help="runs, each on a fresh server (default 1)")
    p.add_argument("--src", type=Path, default=None,
                   help="run the server from this checkout's src directory instead of the installed one")
    p.add_argument("--tmp", type=Path, default=None, help="where the throw-away data dirs go")
    p.add_argument("--json", action="store_true", help="also print each result as a JSON line")
    args = p.parse_args()

    for run in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="camroll-bench-", dir=args.tmp) as tmp:
            with server(Path(tmp) / "data", args.src) as srv:
                results = []
                if args.files and not args.batch_only:
                    results.append(small_files(srv, args.files, args.size, args.threads, args.checksum,
                                               seed=run))
                if args.files and args.batch:
                    results.append(batched_files(srv, args.files, args.size, args.threads, args.batch, seed=run))
                if args.large_mib:
                    results.append(large_file(srv, args.large_mib, args.chunk_mib, seed=run))
            for res in results:
                print(f"run {run + 1}: {res.line()}", flush=True)
                if args.json:
                    print(json.dumps({"run": run + 1, **asdict(res), "files_per_s": res.per_second,
                                      "mb_per_s": res.mb_per_second}), flush=True)


if __name__ == "__main__":
    main()
