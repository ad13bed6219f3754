"""One user's alerts cannot hold up anyone else's, nor the API (issue 8, defect 4): the fair, bounded
sender pool, at most ``MAX_URLS_PER_USER`` URLs, and one test message per user every few seconds."""

from __future__ import annotations

import concurrent.futures
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from support.server import ServerProcess

from camroll.server.services import notify
from camroll.server.services.notify_sender import FairSender, QueueFull
from camroll.server.throttles import NOTIFY_TEST_INTERVAL

from .conftest import User, assert_problem, make_user
from .receiver import LOOPBACK_ALERTS, Receiver, receiver

__all__ = ["receiver"]


def test_a_user_whose_sends_hang_holds_one_worker_and_others_go_on() -> None:
    pool = FairSender(workers=2)
    release = threading.Event()
    stuck = [pool.submit(1, lambda: release.wait(30)) for _ in range(5)]
    try:
        # Users 2 and 3 each get through, although user 1 queued first and never finishes.
        assert pool.submit(2, lambda: "two").result(timeout=5) == "two"
        assert pool.submit(3, lambda: "three").result(timeout=5) == "three"
        assert sum(f.running() for f in stuck) == 1 and pool.queued(1) == 4
    finally:
        release.set()
    assert all(f.result(timeout=5) for f in stuck)


def test_users_take_turns() -> None:
    pool = FairSender(workers=1)
    gate = threading.Event()
    order: list[str] = []
    first = pool.submit(9, gate.wait)  # holds the only worker while the queues fill
    futures = [pool.submit(user, lambda u=user, i=i: order.append(f"{u}{i}")) for user in (1, 2) for i in range(3)]
    gate.set()
    first.result(timeout=5)
    concurrent.futures.wait(futures, timeout=5)
    assert order == ["10", "20", "11", "21", "12", "22"]


def test_full_queues_refuse_at_once_with_the_reason() -> None:
    pool = FairSender(workers=1, max_per_user=2, max_total=3)
    gate = threading.Event()
    try:
        running = pool.submit(1, gate.wait)  # once running, no longer queued
        deadline = time.monotonic() + 5
        while not running.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        pool.submit(1, gate.wait)
        pool.submit(1, gate.wait)
        started = time.monotonic()
        with pytest.raises(QueueFull, match="2 earlier alerts of this user are still waiting"):
            pool.submit(1, gate.wait)
        pool.submit(2, gate.wait)
        with pytest.raises(QueueFull, match="the server has 3 alerts waiting"):
            pool.submit(3, gate.wait)
        assert time.monotonic() - started < 1
    finally:
        gate.set()


def test_a_job_that_raises_hands_its_error_on_and_the_worker_carries_on() -> None:
    pool = FairSender(workers=1)

    def boom() -> None:
        raise RuntimeError("plugin bug")

    with pytest.raises(RuntimeError, match="plugin bug"):
        pool.submit(1, boom).result(timeout=5)
    assert pool.submit(1, lambda: 42).result(timeout=5) == 42


@pytest.fixture(scope="module")
def hanging() -> Iterator[int]:
    """A loopback service that accepts connections and never answers."""
    conns: list[socket.socket] = []
    stop = threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.settimeout(0.2)

    def accept() -> None:
        while not stop.is_set():
            try:
                conns.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        t.join()
        listener.close()
        for c in conns:
            c.close()


@pytest.fixture(scope="module")
def alerts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(data=tmp_path_factory.mktemp("limits") / "server-data", env=LOOPBACK_ALERTS)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _add(u: User, url: str) -> httpx.Response:
    return u.session.post("/api/v1/me/notifications", json={"url": url})


def test_urls_per_user_are_capped(alerts: ServerProcess, receiver: Receiver) -> None:
    u = make_user(alerts)
    for i in range(notify.MAX_URLS_PER_USER):
        assert _add(u, receiver.url(f"cap-{u.name}-{i}")).status_code == 201
    body = assert_problem(_add(u, receiver.url(f"cap-{u.name}-x")), 409, "conflict")
    assert f"{notify.MAX_URLS_PER_USER} notification URLs" in str(body["detail"]) and body["fix"]
    u.close()


def test_test_messages_are_rate_limited_per_user(alerts: ServerProcess, receiver: Receiver) -> None:
    u, other = make_user(alerts), make_user(alerts)
    assert _add(u, receiver.url(f"rl-{u.name}")).status_code == 201
    assert u.session.post("/api/v1/me/notifications/test").json()[0]["ok"] is True
    again = u.session.post("/api/v1/me/notifications/test")
    assert_problem(again, 429, "rate_limited")
    assert 1 <= int(again.headers["Retry-After"]) <= NOTIFY_TEST_INTERVAL
    assert other.session.post("/api/v1/me/notifications/test").status_code == 200  # per user
    assert len(receiver.at(f"rl-{u.name}")) == 1
    u.close()
    other.close()


def test_hanging_urls_stall_neither_the_api_nor_other_users(alerts: ServerProcess, receiver: Receiver,
                                                           hanging: int) -> None:
    """The measurements of issue 8: 45 concurrent test calls on hanging URLs made GET /me take 22 s."""
    stuck = [make_user(alerts) for _ in range(6)]
    for u in stuck:
        for i in range(3):
            assert _add(u, f"json://127.0.0.1:{hanging}/hang-{i}").status_code == 201
    fine = make_user(alerts)
    assert _add(fine, receiver.url(f"fine-{fine.name}")).status_code == 201
    watcher = make_user(alerts)
    timings: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            started = time.monotonic()
            assert watcher.client.get("/api/v1/me").status_code == 200
            timings.append(time.monotonic() - started)
            time.sleep(0.05)

    w = threading.Thread(target=watch)
    w.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(45) as pool:
            calls = [pool.submit(stuck[i % len(stuck)].session.post, "/api/v1/me/notifications/test")
                     for i in range(45)]
            time.sleep(0.5)
            started = time.monotonic()
            r = fine.session.post("/api/v1/me/notifications/test")
            fine_took = time.monotonic() - started
            statuses = sorted(c.result(timeout=120).status_code for c in calls)
    finally:
        stop.set()
        w.join()
    assert r.status_code == 200 and r.json()[0]["ok"] is True, r.text
    assert fine_took < 5, f"another user's test message took {fine_took:.1f} s"
    assert statuses.count(200) == len(stuck) and statuses.count(429) == 45 - len(stuck)
    print(f"\nGET /me during 45 test calls on hanging URLs: {len(timings)} calls, median "
          f"{statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms; another user's test "
          f"message {fine_took:.2f} s")
    assert max(timings) < 1.0
    for u in (*stuck, fine, watcher):
        u.close()
