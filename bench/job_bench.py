#!/usr/bin/env python3
"""Thumbnails per second through the server's job path: files from a camera-roll corpus become blobs
and asset rows in a fresh data directory, then the huey queue and its in-process worker threads
(exactly what ``camroll serve`` starts) extract metadata and write grid + preview thumbnails for
every one.  The clock runs from the first enqueue to the last asset marked done or failed, so the
figure includes queue polling, database writes and the metadata read, not only the decode.

Blobs are hard links to the corpus files (same file system), so setting up costs no copy and the
corpus is never written to.

    python bench/job_bench.py --corpus /work/bench-corpus/full/roll --limit 300 --workers 2 --out jobs.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine_info, walk_files

from camroll.media import types
from camroll.server import migrate
from camroll.server.context import Context, build
from camroll.server.jobs.config import JobSettings
from camroll.server.jobs.queue import JobQueue
from camroll.server.models import User
from camroll.server.repositories import assets as repo
from camroll.server.settings import Settings

DEFAULT_CORPUS = Path("/work/bench-corpus/full/roll")


def _pick(corpus: Path, limit: int) -> list[tuple[Path, str]]:
    """Up to ``limit`` supported files, spread over the corpus (every n-th in path order)."""
    found: list[tuple[Path, str]] = []
    for entry in walk_files(corpus):
        with open(entry.path, "rb") as f:
            mt = types.sniff(f.read(types.SNIFF_BYTES))
        if mt is not None:
            found.append((Path(entry.path), mt.mime))
    found.sort()
    step = max(1, len(found) // limit) if limit else 1
    return found[::step][:limit] if limit else found


def _load(ctx: Context, files: list[tuple[Path, str]]) -> list[int]:
    with ctx.db() as db:
        user = User(username="bench", password_hash="x")
        db.add(user)
        db.flush()
        user_id = user.id
    ids: list[int] = []
    staging = ctx.settings.data_dir / "staging"
    staging.mkdir()
    for path, mime in files:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        sha = h.hexdigest()
        link = staging / sha
        try:
            os.link(path, link)
        except OSError:
            shutil.copyfile(path, link)
        ctx.blobs.put_file(sha, link)
        with ctx.conn() as conn:
            repo.ensure_blob(conn, sha, path.stat().st_size)
            ids.append(repo.get_or_create(conn, user_id, sha, path.stat().st_size, mime, path.name))
    return ids


def run(corpus: Path, limit: int, workers: int) -> dict[str, Any]:
    files = _pick(corpus, limit)
    kinds = Counter(repo.kind_of(m) for _, m in files)
    with tempfile.TemporaryDirectory(prefix="camroll-jobbench-") as tmp:
        ctx = build(Settings.for_data_dir(Path(tmp) / "data"))
        migrate.upgrade(ctx.engine)
        ids = _load(ctx, files)
        queue = JobQueue(ctx, JobSettings(redis_url=None, workers=workers, retries=0, retry_delay_seconds=0,
                                          trash_days=30, purge_interval_seconds=3600))
        ctx.jobs = queue
        queue.huey.flush()
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        queue.start()  # also enqueues every asset: none has metadata or thumbnails yet
        started = time.perf_counter()
        while True:
            with ctx.db() as db:
                counts = repo.job_counts(db)
            if counts["waiting"] == 0:
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        queue.stop()
        with ctx.db() as db:
            failures = [(f[2], f[3]) for f in repo.recent_failures(db, 20)]
        thumb_bytes = sum(p.stat().st_size for p in (Path(tmp) / "data" / "thumbs").rglob("*.webp"))
        ctx.engine.dispose()
    done = counts["done"]
    return {
        "corpus": str(corpus), "assets": len(ids), "kinds": dict(kinds), "workers": workers,
        "seconds": round(elapsed, 2), "assets_per_second": round(len(ids) / elapsed, 2),
        # CPU of this process only (ffmpeg/ffprobe children are not counted): the figure that does
        # not depend on what else the machine was doing.
        "cpu_seconds_per_asset": round((cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime
                                        - cpu_before.ru_stime) / len(ids), 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
        # Peak RSS of this process (queue, workers, database, setup): what jobs add to a server.
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "done": done, "failed": counts["failed"], "failures": failures,
        "thumbnail_bytes": thumb_bytes, "machine": machine_info(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--limit", type=int, default=300, help="How many files (0: all).")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result = run(args.corpus, args.limit, args.workers)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
