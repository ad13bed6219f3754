"""``/healthz``, ``/readyz`` and ``camroll admin check``: ready and passing on a fresh library; not ready,
failing fast and naming the fix when the database hangs, is behind on migrations, or the storage cannot
be written; Redis as the queue; the JSON shape and the exit codes."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.env import free_port, require
from support.server import ON_POSTGRES, database_env
from typer.testing import CliRunner

from camroll.cli import app as cli_app
from camroll.server import checks, migrate
from camroll.server import settings as settings_module
from camroll.server.app import create_app
from camroll.server.context import Context, build
from camroll.server.db import make_engine
from camroll.server.settings import Settings

from .conftest import assert_problem

NAMES = ["database", "migrations", "connection pool", "storage", "queue", "clock", "free space", "public URL"]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server on loopback (Debian's), nothing saved to disk."""
    binary = shutil.which("redis-server")
    require(binary is not None, "redis-server is not installed: apt-get install redis-server")
    assert binary is not None
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path_factory.mktemp("redis"))], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a database that hangs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


def client(ctx: Context) -> TestClient:
    # No lifespan: the context is migrated already and no job workers are needed.
    return TestClient(create_app(ctx.settings, ctx))


def test_healthz_and_readyz_on_a_fresh_library(ctx: Context) -> None:
    # A server has its queue from the start; this app has none, and importing huey and the sandbox on a
    # loaded test machine can take longer than the probe's 2 s.
    checks.probe_queue(ctx)
    c = client(ctx)
    r = c.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = c.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok", "queue": "ok"}}
    assert r.headers["cache-control"] == "no-store"


def test_readyz_fails_fast_when_the_database_hangs(ctx: Context, hung_port: int) -> None:
    ctx.engine = make_engine(f"postgresql+psycopg://camroll:hunter22@127.0.0.1:{hung_port}/camroll")
    c = client(ctx)
    assert c.get("/healthz").status_code == 200  # alive needs no database
    start = time.monotonic()
    r = c.get("/readyz")
    took = time.monotonic() - start
    body = assert_problem(r, 503, "not_ready")
    assert took < checks.READY_TIMEOUT_SECONDS + 1.5, took
    assert "the database does not answer" in str(body["detail"]) and "camroll admin check" in str(body["fix"])
    # Nothing a stranger could use: no address, port, user or password.
    for secret in ("127.0.0.1", str(hung_port), "hunter22", "postgresql", "camroll:"):
        assert secret not in r.text
    # A second call within READY_CACHE_SECONDS gets the same answer without probing again.
    start = time.monotonic()
    assert c.get("/readyz").status_code == 503
    assert time.monotonic() - start < 1.0
    # The hung probe is never started again: a probe after its time is up fails at once.
    start = time.monotonic()
    result = checks._probe_readiness(ctx, timeout=0.2)[0]
    assert result.status is checks.Status.FAIL and "has not answered the check started" in result.summary
    assert time.monotonic() - start < 1.0


class _NotingLock:
    """checks' registry lock, noting which threads have been through it (the decision to join or to
    start a probe is made inside it), so a test can wait for that decision instead of guessing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.through: set[int] = set()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.through.add(threading.get_ident())
        self._lock.release()


def test_probes_that_overlap_share_one_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two load balancers probing at the same moment both get the running probe's answer: neither
    fails because the other's probe is still running, and the dependency is asked once."""
    noting = _NotingLock()
    monkeypatch.setattr(checks, "_running_lock", noting)
    gate = threading.Event()
    calls: list[int] = []
    owner = object()

    def probe() -> checks.Result:
        calls.append(1)
        gate.wait(10)
        return checks.Result("storage", checks.Status.PASS, "fine")

    answers: list[checks.Result] = []

    def ask() -> None:
        answers.append(checks.bounded("storage", probe, 5, what="The blob store", fix="f", owner=owner))

    first = threading.Thread(target=ask)
    first.start()
    deadline = time.monotonic() + 5
    while not calls:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    second = threading.Thread(target=ask)
    second.start()
    # The first probe is still held at the gate until the second call has decided to join it.
    while second.ident not in noting.through:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    gate.set()
    first.join(5)
    second.join(5)
    assert [a.status for a in answers] == [checks.Status.PASS, checks.Status.PASS]
    assert len(calls) == 1


def _after_0005() -> str:
    return ", ".join(f"{n:04d}" for n in range(6, int(migrate.HEAD) + 1))


def test_readyz_is_not_ready_while_migrations_are_behind(tmp_path: Path) -> None:
    ctx = build(Settings.for_data_dir(tmp_path / "data"))
    migrate.upgrade(ctx.engine, "0005")
    r = client(ctx).get("/readyz")
    assert_problem(r, 503, "not_ready")
    assert r.json()["detail"].startswith("This server is not ready: the database schema is not this camroll")
    db = checks.probe_database(ctx)
    assert db.status is checks.Status.FAIL
    assert f"migrations {_after_0005()} are pending" in db.summary and "camroll serve" in str(db.fix)


def test_the_queue_probe_on_redis(ctx: Context, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMROLL_REDIS_URL", redis_url)
    ok = checks.probe_queue(ctx)
    assert ok.status is checks.Status.PASS and ok.details["backend"] == "redis", ok
    monkeypatch.setenv("CAMROLL_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    down = checks.probe_queue(ctx)
    assert down.status is checks.Status.FAIL and "CAMROLL_REDIS_URL" in str(down.fix), down


def run(data: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    r = CliRunner().invoke(cli_app, ["admin", "check", "--data", str(data), *args],
                           env={**database_env(data), **(env or {})})
    assert "Traceback" not in r.output, r.output
    return r.exit_code, r.output


def test_admin_check_passes_on_a_fresh_library(ctx: Context) -> None:
    data = ctx.settings.data_dir
    code, out = run(data)
    assert code == 0, out
    # On PostgreSQL the test cluster's connection limit may deserve a warning about the pool.
    assert out.count("PASS ") == len(NAMES) or (ON_POSTGRES and "FAIL" not in out), out
    code, out = run(data, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True and doc["failed"] == 0
    assert [c["name"] for c in doc["checks"]] == NAMES
    for c in doc["checks"]:
        assert set(c) == {"name", "status", "summary", "fix", "seconds", "details"}
        assert c["status"] == "PASS" or (ON_POSTGRES and c["name"] == "connection pool"), c
    storage = next(c for c in doc["checks"] if c["name"] == "storage")
    assert set(storage["details"]) == {"put", "stat", "get", "range", "delete"}
    # The probe blob is gone again.
    assert not [p for p in (data / "blobs").rglob("*") if p.is_file()]


def test_admin_check_names_unwritable_storage(ctx: Context) -> None:
    blobs = ctx.settings.blobs_dir
    shutil.rmtree(blobs)
    blobs.write_text("not a directory")
    code, out = run(ctx.settings.data_dir, "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    storage = next(c for c in doc["checks"] if c["name"] == "storage")
    assert storage["status"] == "FAIL" and "blob store" in storage["summary"], storage
    assert str(blobs) in storage["fix"] and "writ" in storage["fix"]
    assert next(c for c in doc["checks"] if c["name"] == "database")["status"] == "PASS"


def test_admin_check_names_a_wrong_database_url(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql+psycopg://camroll:hunter22@127.0.0.1:{free_port()}/camroll"
    # What $CAMROLL_DATABASE_URL gives the library (the PostgreSQL pass replaces the lookup itself).
    monkeypatch.setattr(settings_module, "database_url", lambda data_dir: url)
    code, out = run(ctx.settings.data_dir, env={"CAMROLL_DATABASE_URL": url})
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith("FAIL  database"))
    assert "Cannot reach the database postgresql+psycopg://camroll:***@127.0.0.1" in line, out
    assert "hunter22" not in out and "CAMROLL_DATABASE_URL" in out
    monkeypatch.setattr(settings_module, "database_url", lambda data_dir: "nonsense")
    code, out = run(ctx.settings.data_dir, env={"CAMROLL_DATABASE_URL": "nonsense"})
    assert code == 1 and "is not a database URL camroll can use" in out, out


def test_admin_check_names_pending_migrations_and_migrates_nothing(tmp_path: Path) -> None:
    ctx = build(Settings.for_data_dir(tmp_path / "data"))
    migrate.upgrade(ctx.engine, "0005")
    code, out = run(ctx.settings.data_dir)
    assert code == 1
    assert "FAIL  migrations" in out and f"{_after_0005()} are pending" in out, out
    assert migrate.current_revision(ctx.engine) == "0005"


def test_admin_check_with_redis_and_a_plain_http_public_url(ctx: Context, redis_url: str) -> None:
    code, out = run(ctx.settings.data_dir, "--json", "--public-url", "http://photos.example.org",
                    env={"CAMROLL_REDIS_URL": redis_url})
    doc = json.loads(out)
    assert code == 0 and doc["warnings"] == 1, out  # a warning fails nothing
    by = {c["name"]: c for c in doc["checks"]}
    assert by["queue"]["status"] == "PASS" and by["queue"]["details"]["backend"] == "redis"
    assert by["clock"]["status"] == "PASS" and "redis" in by["clock"]["details"]
    assert by["public URL"]["status"] == "WARN" and "TLS" in by["public URL"]["fix"]


def test_public_url_verdicts() -> None:
    verdicts = {url: checks.check_public_url(url).status for url in (
        None, "https://photos.example.org", "http://127.0.0.1:8420", "http://localhost:8420", "http://[::1]:8420",
        "http://192.168.1.20:8420", "http://photos.example.org", "ftp://photos.example.org", "photos")}
    S = checks.Status
    assert verdicts == {None: S.PASS, "https://photos.example.org": S.PASS, "http://127.0.0.1:8420": S.PASS,
                        "http://localhost:8420": S.PASS, "http://[::1]:8420": S.PASS,
                        "http://192.168.1.20:8420": S.WARN, "http://photos.example.org": S.WARN,
                        "ftp://photos.example.org": S.FAIL, "photos": S.FAIL}


def test_serve_refuses_a_public_url_that_is_no_url(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli_app, ["serve", "--data", str(tmp_path / "data"), "--public-url", "ftp://photos"])
    assert r.exit_code == 2 and "is not an http(s) URL" in r.output, r.output
