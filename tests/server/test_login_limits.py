"""Logins back off, and no request body or field can make the server hold megabytes (issue 8, defect 6).

The back-off rules are tested on a fake clock; against a real server, the issue's own measurements: 30
wrong passwords then the right one, 40 concurrent logins, a 50 MB password."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from support.server import ServerProcess

from camroll import wire
from camroll.server import bodylimit, migrate
from camroll.server.app import create_app
from camroll.server.context import Context
from camroll.server.db import make_engine, make_sessionmaker
from camroll.server.ratelimit import Backoff, Interval
from camroll.server.services import accounts
from camroll.server.services.partfiles import PartFiles
from camroll.server.settings import Settings
from camroll.server.storage.memory import MemoryBlobStore
from camroll.server.throttles import ACCOUNT_FREE_FAILURES, ADDRESS_FREE_FAILURES, Throttles

from .conftest import assert_problem, make_user


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_after_the_free_failures_and_resets_on_success() -> None:
    clock = Clock()
    b = Backoff(free=3, base=1.0, cap=60.0, forget=3600.0, clock=clock)
    assert [b.failed("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.wait("k") == 0.0
    assert [b.failed("k") for _ in range(8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert b.wait("k") == 60.0
    clock.now += 59.5
    assert b.wait("k") == pytest.approx(0.5)
    assert b.wait("other") == 0.0
    b.succeeded("k")
    assert b.wait("k") == 0.0 and b.failed("k") == 0.0


def test_backoff_forgets_old_failures_and_keeps_a_bounded_table() -> None:
    clock = Clock()
    b = Backoff(free=1, base=1.0, cap=60.0, forget=100.0, max_keys=50, clock=clock)
    b.failed("k")
    b.failed("k")
    clock.now += 101
    assert b.wait("k") == 0.0 and b.failed("k") == 0.0  # starts afresh
    for i in range(10_000):
        b.failed(f"name-{i}")
    assert len(b) == 50


def test_interval_allows_one_go_per_period() -> None:
    clock = Clock()
    i = Interval(10.0, max_keys=3, clock=clock)
    assert i.take(1) == 0.0
    assert i.take(1) == 10.0 and i.take(2) == 0.0
    clock.now += 4
    assert i.take(1) == pytest.approx(6.0)
    clock.now += 6
    assert i.take(1) == 0.0
    for k in range(100):
        i.take(("k", k))
    assert len(i) == 3


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Context, Clock]]:
    """The app in-process on real SQLite, with the throttles on a fake clock."""
    settings = Settings.for_data_dir(tmp_path / "data")
    settings.data_dir.mkdir()
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    clock = Clock()
    ctx = Context(settings, engine, make_sessionmaker(engine), MemoryBlobStore(), PartFiles(settings.uploads_dir))
    ctx.throttles = Throttles(clock=clock)
    accounts.add_user(ctx, "ann", "right password")
    with TestClient(create_app(settings, ctx)) as client:
        yield client, ctx, clock


def _login(client: TestClient | httpx.Client, password: str, user: str = "ann") -> httpx.Response:
    return client.post("/api/v1/auth/login", json={"username": user, "password": password})


def test_wrong_passwords_earn_a_wait_that_a_success_clears(app: tuple[TestClient, Context, Clock]) -> None:
    client, ctx, clock = app
    for _ in range(ACCOUNT_FREE_FAILURES):
        assert _login(client, "wrong").status_code == 401
    r = _login(client, "wrong")
    assert r.status_code == 401  # this failure earned the first second of waiting
    r = _login(client, "right password")
    assert_problem(r, 429, "rate_limited")
    assert r.headers["Retry-After"] == "1"
    clock.now += 1
    assert _login(client, "wrong").status_code == 401
    r = _login(client, "right password")
    assert r.headers["Retry-After"] == "2"
    clock.now += 2
    assert _login(client, "right password").status_code == 200
    # The account starts afresh after the success: its free failures are back.
    for _ in range(ACCOUNT_FREE_FAILURES):
        assert _login(client, "wrong").status_code == 401
    assert ctx.throttles.login_accounts.wait("ann") == 0.0


def test_the_account_is_matched_whatever_the_case(app: tuple[TestClient, Context, Clock]) -> None:
    client, _, _ = app
    for name in ["ann", "ANN", "Ann", "aNN", "anN", "AnN"]:
        _login(client, "wrong", user=name)
    assert _login(client, "right password").status_code == 429


def test_an_address_guessing_many_accounts_backs_off(app: tuple[TestClient, Context, Clock]) -> None:
    client, _, clock = app
    for i in range(ADDRESS_FREE_FAILURES):
        assert _login(client, "guess", user=f"user{i}").status_code == 401
    assert _login(client, "guess", user="someone-else").status_code == 401
    r = _login(client, "right password")  # even the right password of an untouched account waits
    assert_problem(r, 429, "rate_limited")
    clock.now += 2
    assert _login(client, "right password").status_code == 200


def test_a_wrong_current_password_counts_like_a_wrong_login(app: tuple[TestClient, Context, Clock]) -> None:
    client, _, _ = app
    token = _login(client, "right password").json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    for _ in range(ACCOUNT_FREE_FAILURES + 1):
        r = client.post("/api/v1/me/password", json={"old": "guess", "new": "another password"}, headers=auth)
        assert r.status_code == 403
    r = client.post("/api/v1/me/password", json={"old": "right password", "new": "another password"}, headers=auth)
    assert_problem(r, 429, "rate_limited")


def test_fields_and_bodies_have_ceilings(app: tuple[TestClient, Context, Clock]) -> None:
    client, _, _ = app
    body = assert_problem(_login(client, "x" * (wire.MAX_PASSWORD_LENGTH + 1)), 422, "bad_request")
    assert "password" in str(body["detail"])
    assert_problem(_login(client, "x", user="u" * (wire.MAX_USERNAME_LENGTH + 1)), 422, "bad_request")
    big = b'{"username": "ann", "password": "' + b"x" * 20_000 + b'"}'
    r = client.post("/api/v1/auth/login", content=big, headers={"Content-Type": "application/json"})
    assert_problem(r, 413, "request_too_large")
    # A body without a length, cut off while it streams in.
    r = client.post("/api/v1/assets/trash", content=iter([b'{"ids": [' + b"1," * (bodylimit.DEFAULT_LIMIT // 2),
                                                          b"1]}"]), headers={"Content-Type": "application/json"})
    assert_problem(r, 413, "request_too_large")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(data=tmp_path_factory.mktemp("login") / "server-data")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_thirty_wrong_passwords_then_the_right_one(server: ServerProcess) -> None:
    u = make_user(server)
    anon = httpx.Client(base_url=server.url, timeout=60)
    started = time.monotonic()
    answers = [_login(anon, "wrong", u.name).status_code for _ in range(30)]
    right = _login(anon, u.password, u.name)
    print(f"\n30 wrong passwords and the right one: {time.monotonic() - started:.2f} s, "
          f"answers {[*answers, right.status_code]}")
    assert answers[:ACCOUNT_FREE_FAILURES + 1] == [401] * (ACCOUNT_FREE_FAILURES + 1)
    assert set(answers[ACCOUNT_FREE_FAILURES + 1:]) == {429}
    assert right.status_code == 429 and int(right.headers["Retry-After"]) >= 1
    u.close()
    anon.close()


def _rss(srv: ServerProcess) -> int:
    assert srv.proc is not None
    return int(psutil.Process(srv.proc.pid).memory_info().rss)


def test_concurrent_logins_and_a_huge_password_do_not_grow_memory(server: ServerProcess) -> None:
    users = [make_user(server) for _ in range(4)]
    before = _rss(server)
    anon = httpx.Client(base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=40))
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(lambda i: _login(anon, users[i % 4].password, users[i % 4].name).status_code,
                              range(40)))
    anon.close()
    after_logins = _rss(server)
    assert set(codes) <= {200, 503} and codes.count(200) >= 30, codes
    started = time.monotonic()
    huge = httpx.post(server.url + "/api/v1/auth/login", content=b'{"username":"a","password":"' + b"x" * 50 * 10**6,
                      headers={"Content-Type": "application/json"}, timeout=60)
    took = time.monotonic() - started
    after_huge = _rss(server)
    print(f"\nserver RSS: {before / 2**20:.0f} MB before, {after_logins / 2**20:.0f} MB after 40 concurrent logins "
          f"({codes.count(200)} answered 200, {codes.count(503)} 503), {after_huge / 2**20:.0f} MB after a 50 MB "
          f"password (answered {huge.status_code} in {took:.2f} s)")
    assert huge.status_code == 413
    assert after_logins - before < 100 * 2**20
    assert after_huge - before < 100 * 2**20
    for u in users:
        u.close()
