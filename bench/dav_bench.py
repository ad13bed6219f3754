"""What the WebDAV door costs against tus on the same server: a big file (300 MiB by default) sent

* ``dav_put``: one WebDAV PUT (wsgidav in a2wsgi's thread, fed to ``receive.receive`` on the loop);
* ``tus``: a tus creation then 64 MiB PATCHes (what the agent sends), the same services underneath;
* ``rclone_nextcloud``: ``rclone copy`` with the ``nextcloud`` vendor (chunking v2, ``--chunk-mib``
  chunks, then MOVE .file), on a second copy of the file with other bytes.

A real ``camroll serve`` on 127.0.0.1 and a throwaway library; the server's peak resident memory
(VmHWM) is read before and after each run, so a body held in memory would show as its size.

    .venv/bin/python bench/dav_bench.py --mib 300 --chunk-mib 32
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
PIECE = 2**20
BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _file(path: Path, mib: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.write(MP4_HEAD)
        for _ in range(mib):
            f.write(rng.randbytes(PIECE))


def _pieces(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(PIECE):
            yield block


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=300)
    ap.add_argument("--chunk-mib", type=int, default=32)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="camroll-dav-bench-") as tmp:
        root = Path(tmp)
        data = root / "lib"
        port = _port()
        url = f"http://127.0.0.1:{port}"
        (root / "pw").write_text("correct horse battery\n")
        cam = str(BIN / "camroll")
        subprocess.run([cam, "admin", "user", "add", "bench", "--password-file", str(root / "pw"), "--data",
                        str(data)], check=True, capture_output=True)
        made = json.loads(subprocess.run([cam, "admin", "app-password", "create", "bench", "bench-dav", "--json",
                                          "--data", str(data)], check=True, capture_output=True, text=True).stdout)
        token = made["app_password"]
        srv = subprocess.Popen([cam, "serve", "--data", str(data), "--listen", f"127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/api/v1/server", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            results: dict[str, dict[str, float]] = {}
            for name, seed in (("dav_put", 1), ("tus", 2), ("rclone_nextcloud", 3)):
                src = root / f"{name}.mp4"
                _file(src, args.mib, seed)
                size = src.stat().st_size
                before = _hwm(srv.pid)
                t0 = time.monotonic()
                if name == "dav_put":
                    r = httpx.put(f"{url}/dav/files/bench/{src.name}", content=_pieces(src), auth=("bench", token),
                                  headers={"Content-Length": str(size)}, timeout=600)
                    assert r.status_code == 201, r.text
                elif name == "tus":
                    h = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"}
                    meta = "filename " + base64.b64encode(src.name.encode()).decode()
                    r = httpx.post(f"{url}/api/v1/uploads/", headers={**h, "Upload-Length": str(size),
                                                                       "Upload-Metadata": meta})
                    loc = url + r.headers["Location"]
                    offset = 0
                    with open(src, "rb") as f:
                        while offset < size:
                            chunk = f.read(64 * PIECE)
                            r = httpx.patch(loc, content=chunk, timeout=600, headers={
                                **h, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
                            assert r.status_code == 204, r.text
                            offset = int(r.headers["Upload-Offset"])
                else:
                    obscured = subprocess.run([str(BIN / "rclone"), "obscure", token], capture_output=True,
                                              text=True, check=True).stdout.strip()
                    env = {**os.environ, "RCLONE_CONFIG": "/dev/null", "RCLONE_WEBDAV_URL": f"{url}/dav/files/bench/",
                           "RCLONE_WEBDAV_VENDOR": "nextcloud", "RCLONE_WEBDAV_USER": "bench",
                           "RCLONE_WEBDAV_PASS": obscured, "RCLONE_WEBDAV_NEXTCLOUD_CHUNK_SIZE": f"{args.chunk_mib}M"}
                    subprocess.run([str(BIN / "rclone"), "copyto", str(src), f":webdav:{src.name}"], env=env,
                                   check=True, capture_output=True)
                took = time.monotonic() - t0
                results[name] = {"seconds": round(took, 2), "mib_per_s": round(size / 2**20 / took, 1),
                                 "server_peak_rss_mib": round(_hwm(srv.pid) / 2**20, 1),
                                 "peak_rss_growth_mib": round((_hwm(srv.pid) - before) / 2**20, 1)}
                src.unlink()
            print(json.dumps({"mib": args.mib, "chunk_mib": args.chunk_mib, "results": results}, indent=2))
        finally:
            srv.terminate()
            srv.wait(30)


if __name__ == "__main__":
    main()
