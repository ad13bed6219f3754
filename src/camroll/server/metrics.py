"""Prometheus metrics of one camroll server process (``GET /metrics``, docs/METRICS.md).

Two kinds of figures:

* **Events of this process** (requests, uploads, bytes received, jobs): counters and histograms moved
  where the event happens, through the one-line calls of :class:`Metrics` (``metrics.of(ctx).
  upload_completed(size)``).  Each replica and each ``camroll worker`` counts its own; Prometheus sums
  them across instances.
* **The state of the library** (assets, stored bytes, devices by health, queue depth): read from the
  database and the queue when scraped, by one cheap query each, and cached for ``cache_seconds`` so a
  scrape storm (or many replicas scraped at once) cannot load the database.  They are the same on every
  replica: aggregate them with ``max``, never ``sum``.

Each :class:`~camroll.server.context.Context` has a registry of its own (several apps live in one test
process), never prometheus_client's global one.
"""

from __future__ import annotations

import enum
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from camroll import __version__, wire

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from camroll.server.context import Context

log = logging.getLogger("camroll.server.metrics")
# A *_created series per counter doubles the exposition and no dashboard reads it.
disable_created_metrics()  # type: ignore[no-untyped-call]

CACHE_ENV = "CAMROLL_METRICS_CACHE_SECONDS"
DEFAULT_CACHE_SECONDS = 30.0

# Upload PATCHes of 16 MiB over a slow uplink take tens of seconds; API calls take milliseconds.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Metadata and thumbnails of a photo: tens of milliseconds; a long video's poster: seconds.
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Methods outside this set share one label value, so made-up methods cannot create series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "(unmatched)"


class Check(enum.StrEnum):
    """Which verification an upload failed."""

    FILE = "file"    # the whole file's SHA-256 differs from the one the client declared
    CHUNK = "chunk"  # a PATCH's Upload-Checksum differs from its body


class DeviceHealth(enum.StrEnum):
    """One device's verdict from services/health.assess(), as a label value."""

    OK = "ok"
    STALLED = "stalled"
    BLOCKED = "blocked"
    SILENT = "silent"
    NEVER_SEEN = "never_seen"


@dataclass(frozen=True)
class LibraryState:
    """The database- and queue-derived figures of one scrape."""

    assets: dict[str, int]           # live (untrashed) assets by kind
    trashed_assets: int
    stored_bytes: int                # bytes of originals in the blob store, each blob once
    devices: dict[DeviceHealth, int]  # active (unrevoked) devices by health
    queued_jobs: int | None          # None: the queue did not answer
    scheduled_jobs: int | None


class Metrics:
    """The metrics of one server context: the registry ``/metrics`` exposes and the calls that move it."""

    def __init__(self, ctx: Context, *, cache_seconds: float = DEFAULT_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Info("camroll_build", "The camroll version this process runs.", registry=r).info({"version": __version__})
        self.requests = Counter("camroll_http_requests", "HTTP requests answered by this process, by method, "
                                "route template and status.", ["method", "route", "status"], registry=r)
        self.latency = Histogram("camroll_http_request_duration_seconds", "Time from a request's arrival to the "
                                 "end of its answer (a download's whole body included), by method and route "
                                 "template.", ["method", "route"], buckets=REQUEST_BUCKETS, registry=r)
        self.uploads_started = Counter("camroll_uploads_started", "tus uploads created on this process.",
                                       registry=r)
        self.uploads_completed = Counter("camroll_uploads_completed", "Uploads this process verified and turned "
                                         "into an asset (a new asset, or a file of an existing one).", registry=r)
        self.completed_bytes = Counter("camroll_upload_completed_bytes", "Bytes of the uploads this process "
                                       "completed (verified files).", registry=r)
        self.verification_failures = Counter(
            "camroll_upload_verification_failures", "Uploads or chunks whose checksum did not match what the "
            "client declared (check=file: the whole file's SHA-256, nothing stored; check=chunk: a PATCH's "
            "Upload-Checksum, the chunk discarded).", ["check"], registry=r)
        for check in Check:
            self.verification_failures.labels(check.value)
        self.received_bytes = Counter("camroll_upload_received_bytes", "Upload body bytes this process read "
                                      "from clients (tus POST and PATCH bodies), kept or not.", registry=r)
        self.job_duration = Histogram("camroll_job_duration_seconds", "Background jobs run by this process, "
                                      "by kind and outcome (done, already_done, gone, failed, postponed, "
                                      "waiting_for_disk, waiting_for_storage, claimed_elsewhere; "
                                      "error: raised, retried by the queue).",
                                      ["kind", "outcome"], buckets=JOB_BUCKETS, registry=r)
        self._request_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.library = LibraryCollector(ctx, cache_seconds=cache_seconds, clock=clock)
        r.register(self.library)
        from camroll.server.replicas.metrics import ReplicaCollector

        r.register(ReplicaCollector(ctx, cache_seconds=cache_seconds, clock=clock))

    # --- the one-line calls at the events -----------------------------------------------------------
    def upload_started(self) -> None:
        self.uploads_started.inc()

    def upload_completed(self, size: int) -> None:
        self.uploads_completed.inc()
        self.completed_bytes.inc(size)

    def verification_failed(self, check: Check) -> None:
        self.verification_failures.labels(check.value).inc()

    def bytes_received(self, n: int) -> None:
        self.received_bytes.inc(n)

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._request_series.get(key)
        if children is None:
            # labels() costs more than the increment itself; a route template, method and status make
            # few distinct series, so each one's children are looked up once.
            method = method if method in _METHODS else "OTHER"
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            if len(self._request_series) < 10_000:
                self._request_series[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def job_done(self, kind: str, outcome: str, seconds: float) -> None:
        self.job_duration.labels(kind, outcome).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (this reads the library state, maybe from the database)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


_lock = threading.Lock()


def of(ctx: Context) -> Metrics:
    """``ctx``'s metrics, made at the first call."""
    m = ctx.metrics
    if m is None:
        with _lock:
            if ctx.metrics is None:
                ctx.metrics = Metrics(ctx, cache_seconds=cache_seconds_from_env())
            m = ctx.metrics
    return m


def cache_seconds_from_env() -> float:
    import os

    raw = os.environ.get(CACHE_ENV, "").strip()
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_CACHE_SECONDS
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %g", CACHE_ENV, raw, DEFAULT_CACHE_SECONDS)
        return DEFAULT_CACHE_SECONDS


F = TypeVar("F", bound=Callable[..., Any])


def timed(ctx: Context, kind: str, fn: F) -> F:
    """``fn`` (a job's body), observed in ``camroll_job_duration_seconds``: its outcome is the string it
    returns, ``error`` when it raises (the queue retries those), ``ok`` for anything else."""
    metrics = of(ctx)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        outcome = "error"
        try:
            result = fn(*args, **kwargs)
            outcome = result if isinstance(result, str) else "ok"
            return result
        finally:
            metrics.job_done(kind, outcome, time.perf_counter() - start)

    return run  # type: ignore[return-value]


# --- scrape-time figures --------------------------------------------------------------------------
class LibraryCollector(Collector):
    """Gauges read from the database and the queue at scrape time, at most once per ``cache_seconds``.

    Concurrent scrapes wait for the one that is reading instead of reading again; a database that does
    not answer gives ``camroll_library_scrape_ok 0`` and the last figures it gave, never a failed scrape."""

    def __init__(self, ctx: Context, *, cache_seconds: float, clock: Callable[[], float]) -> None:
        self._ctx = ctx
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._state: LibraryState | None = None
        self._read_at: float | None = None
        self._ok = False
        self.reads = 0  # how many times the database was read (tests check the cache)
        self._engine: Engine | None = None
        self._engine_of: Engine | None = None

    def describe(self) -> Iterable[Any]:
        # Describing must not read the database (the registry describes collectors on registration).
        return []

    def state(self) -> tuple[LibraryState | None, bool]:
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._cache_seconds:
                try:
                    if self._engine_of is not self._ctx.engine:
                        # Made once per engine of the context (tests swap it).
                        self._engine, self._engine_of = reader(self._ctx), self._ctx.engine
                    self._state = read_library(self._ctx, self._engine)
                    self._ok = True
                except Exception as exc:
                    log.warning("metrics: reading the library state failed: %s", exc)
                    self._ok = False
                self.reads += 1
                self._read_at = now
            return self._state, self._ok

    def collect(self) -> Iterator[Any]:
        state, ok = self.state()
        same = " Read at scrape time, the same on every replica: aggregate with max, not sum."
        yield _gauge("camroll_library_scrape_ok", "1 if the database answered the last read of the library "
                     "figures below, 0 if not (they are then the last ones read).", [((), ok)])
        if state is None:
            return
        yield _gauge("camroll_assets", "Assets in the library (not in the trash), by kind." + same,
                     [((k,), state.assets.get(k, 0)) for k in ("image", "video", "other")], ["kind"])
        yield _gauge("camroll_assets_trashed", "Assets in the trash, not purged yet." + same,
                     [((), state.trashed_assets)])
        yield _gauge("camroll_storage_used_bytes", "Bytes of originals in the blob store, each distinct file "
                     "once (users sharing a file share its bytes)." + same, [((), state.stored_bytes)])
        yield _gauge("camroll_devices", "Devices whose token works, by backup health (ok, stalled, blocked, "
                     "silent, never_seen: see 'GET /api/v1/devices')." + same,
                     [((h.value,), state.devices.get(h, 0)) for h in DeviceHealth], ["health"])
        if state.queued_jobs is not None and state.scheduled_jobs is not None:
            yield _gauge("camroll_queue_depth", "Background jobs in the queue (state=queued: waiting for a "
                         "worker; scheduled: retries waiting for their delay)." + same,
                         [(("queued",), state.queued_jobs), (("scheduled",), state.scheduled_jobs)], ["state"])


def _gauge(name: str, doc: str, values: list[tuple[tuple[str, ...], float]],
           labels: list[str] | None = None) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=labels or [])
    for label_values, value in values:
        g.add_metric(list(label_values), float(value))
    return g


def read_library(ctx: Context, read_engine: Engine | None = None) -> LibraryState:
    """One read of the library figures: a grouped count of assets, a sum over blobs, the devices with
    their heartbeats, and the queue's two counters; on ``read_engine`` if given (see :func:`reader`)."""
    from sqlalchemy import case, func, select
    from sqlalchemy.orm import Session

    from camroll.server.models import Asset, Blob, utcnow
    from camroll.server.repositories import health as health_repo
    from camroll.server.services.health import assess

    now = utcnow()
    counts: dict[DeviceHealth, int] = {}
    with Session(read_engine or ctx.engine) as db:
        assets: dict[str, int] = {}
        trashed = 0
        in_trash = case((Asset.trashed_at.is_(None), 0), else_=1)
        rows = db.execute(select(Asset.kind, in_trash, func.count()).group_by(Asset.kind, in_trash))
        for kind, is_trashed, n in rows:
            if is_trashed:
                trashed += int(n)
            else:
                assets[str(kind)] = assets.get(str(kind), 0) + int(n)
        stored = int(db.scalar(select(func.coalesce(func.sum(Blob.size), 0))) or 0)
        ids = [d.id for d in health_repo.active_devices(db)]
        beats = health_repo.of_devices(db, ids)
        _, progress = health_repo.server_progress(db, ids)
        for device_id in ids:
            verdict = assess(beats.get(device_id), progress.get(device_id), now, ctx.settings)
            health = (DeviceHealth.NEVER_SEEN if verdict.state == "never_seen" else DeviceHealth.SILENT
                      if verdict.silent else DeviceHealth.STALLED if verdict.stalled else DeviceHealth.BLOCKED
                      if verdict.blocked else DeviceHealth.OK)
            counts[health] = counts.get(health, 0) + 1
    queued = scheduled = None
    try:
        huey = _huey(ctx)
        queued, scheduled = int(huey.pending_count()), int(huey.scheduled_count())
    except Exception as exc:
        log.warning("metrics: the job queue did not answer: %s", exc)
    return LibraryState(assets, trashed, stored, counts, queued, scheduled)


def reader(ctx: Context) -> Engine | None:
    """An engine for the scrape-time reads of an SQLite library: plain deferred transactions, so the
    reads run on a WAL snapshot beside uploads instead of taking the write lock (BEGIN IMMEDIATE) that
    the server's own engine takes for every transaction.  None for other databases (their reads never
    block writers): the server's engine and pool serve them."""
    if ctx.engine.dialect.name != "sqlite":
        return None
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    engine = create_engine(ctx.settings.database_url, poolclass=NullPool)

    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=5000")
        dbapi_conn.execute("PRAGMA query_only=ON")

    event.listen(engine, "connect", _pragmas)
    return engine


def _huey(ctx: Context) -> Any:
    if ctx.jobs is not None:
        return ctx.jobs.huey
    from camroll.server.jobs.config import JobSettings
    from camroll.server.jobs.queue import make_huey

    return make_huey(ctx.settings, JobSettings.from_env())


# --- requests -------------------------------------------------------------------------------------
class RequestMetrics:
    """ASGI middleware: counts and times every HTTP request by its route template (``/api/v1/uploads/
    {upload_id}``, never the raw path: ids would make a series per upload), and counts upload body bytes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._templates: dict[int, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = of(scope["app"].state.ctx)
        start = time.perf_counter()
        status = 500
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        upload = scope["method"] in ("POST", "PATCH") and scope["path"].startswith(wire.UPLOADS_PATH.rstrip("/"))
        try:
            await self.app(scope, counting_receive if upload else receive, send_status)
        finally:
            if received:
                metrics.bytes_received(received)
            metrics.request_done(scope["method"], self._template(scope), status, time.perf_counter() - start)

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED_ROUTE
        if self._templates is None:
            self._templates = _route_templates(scope["app"])
        return self._templates.get(id(route)) or str(getattr(route, "path", UNMATCHED_ROUTE))


def _route_templates(app: Any) -> dict[int, str]:
    """Each route object's full path template (prefixes of included routers included)."""
    try:
        from fastapi.routing import iter_route_contexts  # FastAPI versions that keep included routers nested
    except ImportError:
        return {id(r): str(getattr(r, "path", "")) for r in app.routes}
    templates: dict[int, str] = {}
    for c in iter_route_contexts(app.routes):
        templates.setdefault(id(c.original_route), str(c.path))
        templates.setdefault(id(c), str(c.path))
    return templates


# --- the separate scrape address ------------------------------------------------------------------
class ScrapeServer:
    """``/metrics`` with no token on its own address (``camroll serve --metrics-listen``), served by
    prometheus_client's threaded HTTP server beside the API's event loop: a slow scrape (or a slow
    database read behind it) never holds an API request."""

    def __init__(self, ctx: Context, host: str, port: int) -> None:
        from prometheus_client import start_http_server

        self.server, self.thread = start_http_server(port, host, registry=of(ctx).registry)
        self.port = int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def listen(ctx: Context) -> ScrapeServer | None:
    """Start the scrape address ``ctx.settings.metrics_listen`` names, if any."""
    where = ctx.settings.metrics_listen
    if not where:
        return None
    from camroll.server.run import parse_listen

    host, port = parse_listen(where)
    return ScrapeServer(ctx, host, port)
