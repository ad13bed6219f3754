"""``/metrics``: what a real tus upload moves, route templates as labels, who may scrape, the separate
scrape address, and the cache that keeps scrapes off the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from support.env import free_port
from support.media import photo, wait_for_jobs
from support.server import ServerProcess

from camroll import __version__, wire
from camroll.server import metrics
from camroll.server.app import create_app
from camroll.server.context import Context
from camroll.server.db import make_engine
from camroll.server.settings import Settings

from .conftest import TUS, assert_problem, b64digest, create, make_user, patch, upload

TOKEN = "scrape-" + "s3cr3t" * 4
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by (name, sorted labels); parsed by prometheus_client."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    mport = free_port()
    srv = ServerProcess(data=tmp_path_factory.mktemp("metrics") / "server-data",
                        extra_args=("--metrics-listen", f"127.0.0.1:{mport}"),
                        env={"CAMROLL_METRICS_TOKEN": TOKEN, "CAMROLL_METRICS_CACHE_SECONDS": "0"})
    srv.start()
    try:
        yield srv, mport
    finally:
        srv.stop()


def scrape(srv: ServerProcess) -> Samples:
    r = httpx.get(f"{srv.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def test_a_real_upload_moves_the_counters_by_the_right_amounts(server: tuple[ServerProcess, int]) -> None:
    srv, _ = server
    u = make_user(srv)
    before = scrape(srv)
    data = photo(None, color=(11, 22, 33))
    chunk = 64 * 1024
    asset_id = upload(u.client, data, chunk=chunk)  # creation, then PATCHes with sha256 chunk checksums
    patches = -(-len(data) // chunk)

    # A chunk whose checksum is wrong is discarded (chunk verification), and a whole file whose hash is
    # not the declared one is refused (file verification): each counted once.
    url = create(u.client, b"z" * 100, path="/bad/chunk.jpg")
    bad = patch(u.client, url, 0, b"z" * 100, b64digest("sha256", b"not these bytes"))
    assert bad.status_code == wire.STATUS_CHECKSUM_MISMATCH, bad.text
    lying = b"\xff\xd8\xff\xe0" + b"y" * 96
    r = u.client.post(wire.UPLOADS_PATH, content=lying, headers={
        **TUS, "Upload-Length": "100", "Content-Type": "application/offset+octet-stream",
        "Upload-Metadata": wire.encode_upload_metadata({"filename": "l.jpg", "sha256": "ab" * 32, "size": "100"})})
    assert r.status_code == wire.STATUS_CHECKSUM_MISMATCH, r.text

    wait_for_jobs(u.session, [asset_id])
    after = scrape(srv)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("camroll_uploads_started_total") == 3
    assert moved("camroll_uploads_completed_total") == 1
    assert moved("camroll_upload_completed_bytes_total") == len(data)
    assert moved("camroll_upload_verification_failures_total", check="chunk") == 1
    assert moved("camroll_upload_verification_failures_total", check="file") == 1
    assert moved("camroll_upload_received_bytes_total") == len(data) + 100 + 100
    assert moved("camroll_http_requests_total", method="PATCH", route="/api/v1/uploads/{upload_id}",
                 status="204") == patches
    assert moved("camroll_http_requests_total", method="POST", route="/api/v1/uploads/", status="201") == 2
    assert moved("camroll_http_request_duration_seconds_count", method="PATCH",
                 route="/api/v1/uploads/{upload_id}") == patches + 1
    assert moved("camroll_job_duration_seconds_count", kind="process_asset", outcome="done") == 1
    # Library figures, read from the database at scrape time (cache off for this server).
    assert moved("camroll_assets", kind="image") == 1
    assert moved("camroll_storage_used_bytes") == len(data)
    assert value(after, "camroll_library_scrape_ok") == 1
    assert ("camroll_queue_depth", (("state", "queued"),)) in after
    # Route templates only: no upload id, asset id or user name in any label.
    upload_id = url.rsplit("/", 1)[-1]
    labels = {v for _, ls in after for _, v in ls}
    assert not [v for v in labels if upload_id in v or str(asset_id) == v or u.name in v]
    routes = {v for (n, ls) in after for k, v in ls if k == "route"}
    assert "/api/v1/assets/{asset_id}" in routes
    assert not [r for r in routes if r.startswith("/api/v1/uploads/") and r != "/api/v1/uploads/"
                and r != "/api/v1/uploads/{upload_id}"], routes


def test_devices_are_counted_by_health(server: tuple[ServerProcess, int]) -> None:
    srv, _ = server
    before = scrape(srv)
    u = make_user(srv)
    middle = scrape(srv)
    assert value(middle, "camroll_devices", health="never_seen") - value(before, "camroll_devices",
                                                                         health="never_seen") == 1
    beat = wire.Heartbeat(agent_version="0.1.0", state="idle", headline="Up to date.")
    assert u.client.put("/api/v1/devices/current/heartbeat", json=beat.model_dump(mode="json")).status_code == 200
    after = scrape(srv)
    assert value(after, "camroll_devices", health="ok") - value(middle, "camroll_devices", health="ok") == 1
    assert value(after, "camroll_devices", health="never_seen") == value(before, "camroll_devices", health="never_seen")


def test_scraping_needs_the_token_or_the_separate_address(server: tuple[ServerProcess, int]) -> None:
    srv, mport = server
    u = make_user(srv)
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-some-length"},
                    {"Authorization": str(u.session.headers["Authorization"])},
                    {"Authorization": str(u.client.headers["Authorization"])}):
        r = httpx.get(f"{srv.url}/metrics", headers=headers)
        body = assert_problem(r, 401, "unauthorized")
        assert "CAMROLL_METRICS_TOKEN" in str(body["fix"])
        assert "camroll_" not in r.text
    r = httpx.get(f"http://127.0.0.1:{mport}/metrics")
    assert r.status_code == 200
    samples = parse(r.text)
    assert value(samples, "camroll_build_info", version=__version__) == 1
    assert ("camroll_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "401"))) in samples


def test_without_a_token_or_address_metrics_are_not_served(tmp_path: Path) -> None:
    app = create_app(Settings.for_data_dir(tmp_path / "data"))
    r = TestClient(app).get("/metrics")
    body = assert_problem(r, 404, "not_found")
    assert "CAMROLL_METRICS_TOKEN" in str(body["fix"]) and "--metrics-listen" in str(body["fix"])


def test_library_figures_are_cached_between_scrapes(ctx: Context) -> None:
    now = [100.0]
    m = metrics.Metrics(ctx, cache_seconds=10, clock=lambda: now[0])
    for _ in range(5):
        parse(m.exposition().decode())
    assert m.library.reads == 1
    now[0] += 10
    samples = parse(m.exposition().decode())
    assert m.library.reads == 2 and value(samples, "camroll_library_scrape_ok") == 1
    # A database that stops answering fails no scrape: the last figures stay, marked as stale.
    ctx.engine.dispose()
    ctx.engine = make_engine(f"postgresql+psycopg://camroll@127.0.0.1:{free_port()}/camroll")
    now[0] += 10
    samples = parse(m.exposition().decode())
    assert value(samples, "camroll_library_scrape_ok") == 0
    assert ("camroll_assets", (("kind", "image"),)) in samples


def test_job_outcomes_are_labelled(ctx: Context) -> None:
    m = metrics.of(ctx)
    ok = metrics.timed(ctx, "probe", lambda: "done")
    ok()

    def broken() -> str:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        metrics.timed(ctx, "probe", broken)()
    samples = parse(m.exposition().decode())
    assert value(samples, "camroll_job_duration_seconds_count", kind="probe", outcome="done") == 1
    assert value(samples, "camroll_job_duration_seconds_count", kind="probe", outcome="error") == 1
    assert metrics.of(ctx) is m
