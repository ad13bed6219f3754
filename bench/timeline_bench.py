"""How fast the timeline answers on a big library: the first page, a page 100 pages deep, a filtered page
and the same first page through a real `camroll serve` over HTTP, on SQLite (default) or PostgreSQL.

    .venv/bin/python bench/timeline_bench.py --assets 50000 [--assets 500000] [--database-url URL] [--out F]

The library is rows, not files: ``--assets`` asset rows (one minute apart, every third a video) for one
user and a tenth as many for a second, so counts and seeks happen among other users' rows as they do on
a shared server.  Each page is timed ``--repeat`` times; the median and the worst are printed beside the
target (a page in under 0.5 s on a 2-core machine; Immich's and Google Photos' timelines answer in a few
hundred milliseconds).  With ``--database-url`` the database must be empty (a new one per run).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
from benchlib import Service, camroll_argv, free_port, machine_info, wait_for_http
from sqlalchemy import Table, insert

from camroll.server import migrate
from camroll.server.context import build
from camroll.server.models import Asset, Blob, utcnow
from camroll.server.repositories import assets as repo
from camroll.server.services import timeline
from camroll.server.services.accounts import add_user
from camroll.server.services.auth import Principal
from camroll.server.settings import Settings

TARGET_S = 0.5
PASSWORD = "correct horse battery"
T0 = datetime(2020, 1, 1, tzinfo=UTC)


def _load(ctx: Any, user_id: int, n: int) -> None:
    now = utcnow()
    for start in range(0, n, 20_000):
        blobs, assets = [], []
        for i in range(start, min(n, start + 20_000)):
            sha = hashlib.sha256(f"{user_id}-{i}".encode()).hexdigest()
            blobs.append({"sha256": sha, "size": 1000 + i, "created_at": now})
            video = i % 3 == 0
            assets.append({"user_id": user_id, "sha256": sha, "size": 1000 + i,
                           "mime": "video/mp4" if video else "image/jpeg", "kind": "video" if video else "image",
                           "filename": f"IMG_{i}.JPG", "created_at": now, "taken_at": T0 + timedelta(minutes=i),
                           "taken_source": "exif", "motion_photo": False,
                           "camera_make": "Canon" if i % 2 else "Apple", "camera_model": "X",
                           "metadata_at": now, "thumbs_at": now})
        with ctx.engine.begin() as conn:
            conn.execute(insert(cast(Table, Blob.__table__)), blobs)
            conn.execute(insert(cast(Table, Asset.__table__)), assets)
    if ctx.engine.dialect.name == "postgresql":
        with ctx.engine.begin() as conn:  # what autovacuum does soon after a bulk load
            conn.exec_driver_sql("ANALYZE blobs, assets")


def _times(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm: the page cache and the statement cache
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def run(n: int, database_url: str | None, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="camroll-timeline-") as tmp:
        data = Path(tmp) / "data"
        settings = Settings.for_data_dir(data)
        if database_url:
            settings = dataclasses.replace(settings, database_url=database_url)
        ctx = build(settings)
        migrate.upgrade(ctx.engine)
        made = add_user(ctx, "ann", PASSWORD)
        other = add_user(ctx, "bob", PASSWORD)
        t = time.perf_counter()
        _load(ctx, made.id, n)
        _load(ctx, other.id, max(1, n // 10))
        load_s = time.perf_counter() - t
        ann = Principal(user_id=made.id, username="ann", is_admin=False, device_id=None)
        everything = repo.Filters()
        first = timeline.page(ctx, ann, everything, None, 200)
        cursor = first.next_cursor
        for _ in range(100):
            assert cursor is not None
            cursor = timeline.page(ctx, ann, everything, cursor, 200).next_cursor
        figures: dict[str, list[float]] = {
            "first page": _times(lambda: timeline.page(ctx, ann, everything, None, 200), repeat),
            "page 101": _times(lambda: timeline.page(ctx, ann, everything, cursor, 200), repeat),
            "videos from one camera": _times(
                lambda: timeline.page(ctx, ann, repo.Filters(kind="video", camera="canon"), None, 200), repeat),
        }
        ctx.engine.dispose()
        env = {**os.environ, **({"CAMROLL_DATABASE_URL": database_url} if database_url else {})}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = Service([*camroll_argv(), "serve", "--data", str(data), "--listen", f"127.0.0.1:{port}"],
                         env=env, log=Path(tmp) / "server.log")
        try:
            wait_for_http(url + "/", server)
            with httpx.Client(base_url=url, timeout=60) as client:
                login = client.post("/api/v1/auth/login", json={"username": "ann", "password": PASSWORD})
                login.raise_for_status()
                client.headers["Authorization"] = f"Bearer {login.json()['token']}"
                figures["first page over HTTP"] = _times(
                    lambda: client.get("/api/v1/timeline", params={"limit": 200}).raise_for_status(), repeat)
        finally:
            server.stop()
    return {"assets": n, "database": "postgresql" if database_url else "sqlite", "load_s": round(load_s, 1),
            "pages": {k: {"median_s": round(statistics.median(v), 4), "max_s": round(max(v), 4)}
                      for k, v in figures.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assets", type=int, action="append", help="library size (repeatable; default 50000)")
    ap.add_argument("--database-url", help="an empty PostgreSQL database (default: SQLite in a temp dir)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    results = [run(n, args.database_url, args.repeat) for n in (args.assets or [50_000])]
    print(f"{'library':>10}  {'db':<10}  {'page':<24}  {'median':>8}  {'worst':>8}  target")
    for r in results:
        for name, f in r["pages"].items():
            ok = "ok" if f["max_s"] < TARGET_S else "SLOW"
            print(f"{r['assets']:>10,}  {r['database']:<10}  {name:<24}  {f['median_s'] * 1000:>6.1f}ms  "
                  f"{f['max_s'] * 1000:>6.1f}ms  < {TARGET_S * 1000:.0f} ms {ok}")
    report = {"machine": machine_info(), "target_s": TARGET_S, "results": results}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    main()
