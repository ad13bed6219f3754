"""Watch-mode latency: how long from a new photo written into a watched folder until the server holds it,
verified (the promise: within 10 s when nothing blocks it).

A throw-away ``camroll serve`` and a running ``camroll agent`` (default intervals, as users run it);
each trial writes one new JPEG and polls ``POST /assets/check`` with the photo's SHA-256 every 20 ms.

    python bench/watch_bench.py --photos 10
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import CamrollRig, camroll_argv, machine_info


def _jpeg(seed: int, size: tuple[int, int] = (2000, 1500)) -> bytes:
    from PIL import Image

    rng = random.Random(seed)
    img = Image.frombytes("RGB", (size[0] // 8, size[1] // 8), rng.randbytes(size[0] // 8 * size[1] // 8 * 3))
    buf = io.BytesIO()
    img.resize(size).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _present(url: str, token: str, sha: str) -> bool:
    req = urllib.request.Request(f"{url}/api/v1/assets/check", method="POST",
                                 data=json.dumps({"items": [{"sha256": sha}]}).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return sha in json.loads(resp.read())["present"]


def _token(rig: CamrollRig) -> str:
    from camroll.agent.config import load_config

    server = load_config(rig.home / "config.toml").server
    assert server is not None
    return server.token


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=10, help="trials (one new photo each)")
    ap.add_argument("--gap", type=float, default=1.5, help="seconds between trials")
    ap.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="camroll-watch-bench-") as tmp:
        work = Path(tmp)
        photos = work / "photos"
        photos.mkdir()
        rig = CamrollRig(work)
        rig.start([photos])
        agent = subprocess.Popen([*camroll_argv(), "agent", "-q"], env=rig.env)
        try:
            token = _token(rig)
            time.sleep(3)  # the agent's first (empty) pass
            latencies: list[float] = []
            for i in range(args.photos):
                data = _jpeg(i)
                sha = hashlib.sha256(data).hexdigest()
                t0 = time.monotonic()
                (photos / f"IMG_{i:04d}.jpg").write_bytes(data)
                while not _present(rig.url, token, sha):
                    if time.monotonic() - t0 > 60:
                        raise SystemExit(f"photo {i} was not backed up within 60 s")
                    time.sleep(0.02)
                latencies.append(time.monotonic() - t0)
                time.sleep(args.gap)
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
            rig.stop()
    result: dict[str, Any] = {
        "photos": len(latencies), "photo_bytes_approx": len(_jpeg(0)),
        "latency_s": [round(x, 3) for x in latencies],
        "median_s": round(statistics.median(latencies), 3), "max_s": round(max(latencies), 3),
        "target_s": 10.0, "load_average": os.getloadavg(), "machine": machine_info(),
    }
    print(f"new photo -> verified on the server: median {result['median_s']} s, max {result['max_s']} s "
          f"over {len(latencies)} photos (target < 10 s); load {os.getloadavg()[0]:.1f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
