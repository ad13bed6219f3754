"""Proof "Hostile media": over 40 hostile files made at test time (tests/media/hostile.py) go through
tus uploads into a real ``camroll serve`` whose job workers read and thumbnail them, while

- a health probe (GET /api/v1/server) every 100 ms never waits more than 1 s,
- the server process's RSS stays under RSS_LIMIT (the decoding happens in sandbox children),
- no file reaches another file or a URL through ffmpeg (a loopback HTTP server counts requests),
- every file ends with a reason in words: refused at upload, a job error, or valid metadata, and
  no job is left waiting.

The figures are printed (run with -s) and written to <tmp>/hostile-media.json.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import httpx
import psutil
import pytest
from media import hostile
from support.env import require
from support.server import ServerProcess

from camroll import wire
from camroll.media import tools

from .conftest import TUS, b64digest, make_user

RSS_LIMIT = 256 << 20  # the server alone; a decoded 144 MP bomb would be 576 MB
PROBE_INTERVAL = 0.1
MAX_STALL = 1.0
MEMORY_LIMIT = "512MiB"  # per sandbox child: low enough that the 144 MP bomb meets it
TIMEOUT = "20"


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[int, list[str]]]:
    hits: list[str] = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Recorder,), {"hits": hits}))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1], hits
    finally:
        srv.shutdown()
        srv.server_close()


@dataclass
class _Watch:
    """The probe and the RSS sampler, on threads of their own."""

    url: str
    pid: int
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    peak_rss: int = 0
    peak_children_rss: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def probe(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                start = time.monotonic()
                try:
                    r = client.get(f"{self.url}/api/v1/server")
                    if r.status_code != 200:
                        self.errors.append(f"{r.status_code}")
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                took = time.monotonic() - start
                self.latencies.append(took)
                self.stop.wait(max(0.0, PROBE_INTERVAL - took))

    def sample(self) -> None:
        proc = psutil.Process(self.pid)
        while not self.stop.is_set():
            try:
                self.peak_rss = max(self.peak_rss, proc.memory_info().rss)
                kids = 0
                for child in proc.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        kids += child.memory_info().rss
                self.peak_children_rss = max(self.peak_children_rss, kids)
            except psutil.Error:
                pass
            self.stop.wait(0.05)


def _upload(client: httpx.Client, name: str, data: bytes) -> tuple[int | None, str | None]:
    """(asset id, None) or (None, the server's reason for refusing the file)."""
    fields = {"filename": name, "sha256": hashlib.sha256(data).hexdigest(), "size": str(len(data))}
    r = client.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": str(len(data)),
                                                "Upload-Metadata": wire.encode_upload_metadata(fields)})
    if r.status_code != 201:
        return None, f"{r.status_code} {r.json().get('detail')}"
    r = client.patch(r.headers["Location"], content=data, headers={
        **TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0",
        "Upload-Checksum": b64digest("sha256", data)})
    if r.status_code != 204:
        return None, f"{r.status_code} {r.json().get('detail')}"
    return int(r.headers["Camroll-Asset-Id"]), None


def _sentence(text: str | None) -> bool:
    return bool(text) and len(text or "") > 15 and "Traceback" not in (text or "")


def test_hostile_media_through_a_real_server(tmp_path: Path, recorder: tuple[int, list[str]],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    require(tools.available(), "ffprobe/ffmpeg not found: install ffmpeg (apt-get install ffmpeg)")
    port, hits = recorder
    made = time.monotonic()
    hostile_files = hostile.hostile_set(tmp_path, port)
    made = time.monotonic() - made
    assert len(hostile_files) >= 40

    monkeypatch.setenv("CAMROLL_JOB_MEMORY", MEMORY_LIMIT)
    monkeypatch.setenv("CAMROLL_JOB_TIMEOUT", TIMEOUT)
    srv = ServerProcess(data=tmp_path / "server-data")
    srv.start()
    assert srv.proc is not None
    user = make_user(srv)
    watch = _Watch(srv.url, srv.proc.pid)
    threads = [threading.Thread(target=watch.probe, daemon=True), threading.Thread(target=watch.sample, daemon=True)]
    for t in threads:
        t.start()
    started = time.monotonic()
    ids: dict[str, int] = {}
    refused: dict[str, str] = {}
    details: dict[str, wire.AssetDetail] = {}
    api_errors: list[str] = []  # a server that stops answering (as before the sandbox) still gets its figures
    uploaded = finished = float("nan")
    jobs: dict[str, int] = {}
    try:
        for name, data in hostile_files.items():
            asset_id, reason = _upload(user.client, name, data)
            if asset_id is None:
                refused[name] = reason or ""
            else:
                ids[name] = asset_id
        uploaded = time.monotonic() - started
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            details = {n: wire.AssetDetail.model_validate(user.session.get(f"/api/v1/assets/{i}").json())
                       for n, i in ids.items()}
            if all(d.has_thumbnail or d.job_error for d in details.values()):
                break
            time.sleep(0.2)
        finished = time.monotonic() - started
        jobs = json.loads(srv.run_admin("jobs", "--json").stdout)
    except httpx.HTTPError as exc:
        api_errors.append(repr(exc))
    finally:
        watch.stop.set()
        for t in threads:
            t.join(timeout=5)
        user.client.close()
        srv.stop()

    outcomes: dict[str, str] = {}
    for name, reason in refused.items():
        outcomes[name] = f"refused at upload: {reason}"
    for name, d in details.items():
        m = d.metadata
        if d.job_error:
            outcomes[name] = f"job error: {d.job_error}"
        else:
            outcomes[name] = f"done: {m.width}x{m.height}" + (f" ({m.error})" if m.error else "")
    kinds = {"refused at upload": 0, "job error": 0, "done": 0}
    for text in outcomes.values():
        kinds[text.split(":")[0]] += 1
    figures = {
        "files": len(hostile_files), "made_in_s": round(made, 2), "uploads_in_s": round(uploaded, 2),
        "all_settled_in_s": round(finished, 2), "outcomes": kinds,
        "uploaded_before_any_error": len(ids) + len(refused),
        "probes": len(watch.latencies), "probe_max_s": round(max(watch.latencies), 3),
        "probe_median_s": round(statistics.median(watch.latencies), 4), "probe_errors": len(watch.errors),
        "server_peak_rss_mib": round(watch.peak_rss / 2**20, 1),
        "sandbox_children_peak_rss_mib": round(watch.peak_children_rss / 2**20, 1),
        "job_limits": {"timeout_s": float(TIMEOUT), "memory": MEMORY_LIMIT},
        "http_requests_seen": len(hits), "api_errors": api_errors, "per_file": outcomes,
    }
    (tmp_path / "hostile-media.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))

    assert api_errors == [], figures
    unsettled = [n for n, d in details.items() if not (d.has_thumbnail or d.job_error)]
    assert not unsettled, f"jobs still waiting after 150 s: {unsettled}"
    assert jobs["waiting"] == 0 and jobs["queued"] == 0, jobs
    assert watch.errors == [], watch.errors[:5]
    assert max(watch.latencies) < MAX_STALL, figures
    assert watch.peak_rss < RSS_LIMIT, figures
    assert hits == []
    for name, d in details.items():
        if d.job_error:
            assert _sentence(d.job_error), (name, d.job_error)
        else:
            assert d.has_thumbnail and (d.metadata.width or 0) > 0 and (d.metadata.height or 0) > 0, (name, d)
        assert "/etc/passwd" not in (d.job_error or "") and "root:" not in (d.job_error or "")
    for name, reason in refused.items():
        assert _sentence(reason), (name, reason)
    # The bombs were refused or contained, never decoded in the server.
    for name in ("bomb-png-12000x12000-rgba.png", "bomb-png-20000x20000-rgba.png", "bomb-gif-65535x65535.gif",
                 "bomb-heic-40000x40000.heic", "bomb-webp-16384x16384.webp", "bomb-tiff-16000x16000-deflate.tif"):
        assert name in ids and details[name].job_error, (name, outcomes[name])
