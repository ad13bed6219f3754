"""What the media sandbox costs per job: a pool of long-lived children (camroll's choice) against a
fresh process per job, and both against doing the work in-process.

    .venv/bin/python bench/sandbox_overhead.py [--jobs 40]

Prints, per way of running: the round trip of an empty request, and metadata + grid/preview
thumbnails of a 12 MP JPEG.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from camroll.media import metadata, thumbs
from camroll.media.sandbox import CHILD_MODULE, Limits, Sandbox


def _photo(path: Path) -> Path:
    Image.effect_mandelbrot((4000, 3000), (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB").save(path, quality=88)
    return path


def _timed(n: int, fn: Callable[[int], None]) -> tuple[float, float]:
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, max(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photo = _photo(root / "photo.jpg")

        def work_in_process(i: int) -> None:
            metadata.extract(photo, mime="image/jpeg")
            thumbs.make_thumbnails(photo, [(thumbs.PREVIEW, root / f"p{i}.webp"), (thumbs.GRID, root / f"g{i}.webp")])

        pool = Sandbox(Limits())
        pool.ping()  # the first child's start-up is paid once, at the first job

        def work_in_pool(i: int) -> None:
            pool.extract(photo, mime="image/jpeg")
            pool.thumbnails(photo, [(thumbs.PREVIEW, root / f"p{i}.webp"), (thumbs.GRID, root / f"g{i}.webp")])

        def fresh(i: int, work: bool) -> None:
            one = Sandbox(Limits())
            try:
                if work:
                    one.extract(photo, mime="image/jpeg")
                    one.thumbnails(photo, [(thumbs.PREVIEW, root / f"p{i}.webp"), (thumbs.GRID, root / f"g{i}.webp")])
                else:
                    one.ping()
            finally:
                one.close()

        rows = [
            ("empty request, pool", _timed(args.jobs, lambda i: pool.ping())),
            ("empty request, process per job", _timed(args.jobs // 4, lambda i: fresh(i, False))),
            ("12 MP JPEG, in-process", _timed(args.jobs // 4, work_in_process)),
            ("12 MP JPEG, pool", _timed(args.jobs // 4, work_in_pool)),
            ("12 MP JPEG, process per job", _timed(args.jobs // 4, lambda i: fresh(i, True))),
        ]
        pool.close()
        for name, (median, worst) in rows:
            print(f"{name:34s} median {median:8.1f} ms   max {worst:8.1f} ms")
        print(f"(child module: python -m {CHILD_MODULE})")


if __name__ == "__main__":
    main()
