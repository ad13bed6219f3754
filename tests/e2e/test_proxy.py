"""The fault proxy itself, against a plain echo-like HTTP sink."""

from __future__ import annotations

import socket
import threading
import time

from .proxy import Proxy


def _sink() -> tuple[int, list[bytes]]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    got: list[bytes] = []

    def run() -> None:
        c, _ = srv.accept()
        buf = b""
        while True:
            d = c.recv(65536)
            if not d:
                break
            buf += d
        got.append(buf)
        c.close()

    threading.Thread(target=run, daemon=True).start()
    return int(srv.getsockname()[1]), got


def test_counts_throttles_and_flips_one_body_byte() -> None:
    port, got = _sink()
    proxy = Proxy(port, rate=2_000_000)
    proxy.arm_corruption()
    body = bytes(200_000)
    req = b"PATCH /api/v1/uploads/x HTTP/1.1\r\nHost: h\r\nContent-Length: 200000\r\n\r\n" + body
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.sendall(req)
        s.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
    elapsed = time.monotonic() - t0
    proxy.close()
    assert proxy.bytes_up == len(req)
    assert elapsed >= 0.08  # 200 kB at 2 MB/s
    (data,) = got
    assert len(data) == len(req)
    diffs = [i for i in range(len(req)) if data[i] != req[i]]
    head = req.index(b"\r\n\r\n") + 4
    assert diffs == [head + 1000] and proxy.corrupted == 1


def test_fault_plan_cuts_at_its_offsets_and_stalls() -> None:
    from .proxy import FaultPlan

    plan = FaultPlan(seed=3, cut_every=50_000, stall_every=80_000, stall_seconds=(0.05, 0.1), horizon=300_000)
    assert plan.cuts == FaultPlan(seed=3, cut_every=50_000, stall_every=80_000, stall_seconds=(0.05, 0.1),
                                  horizon=300_000).cuts  # the seed replays it
    assert plan.cuts and plan.stalls
    received: list[int] = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)

    def sink() -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            n = 0
            while d := c.recv(65536):
                n += len(d)
            received.append(n)
            c.close()

    threading.Thread(target=sink, daemon=True).start()
    proxy = Proxy(int(srv.getsockname()[1]), faults=plan)
    sent = 0
    t0 = time.monotonic()
    while sent < 300_000:
        with socket.create_connection(("127.0.0.1", proxy.port)) as s:
            try:
                while sent < 300_000:
                    s.sendall(bytes(1000))
                    sent += 1000
                    time.sleep(0.0005)
            except OSError:
                pass  # cut: carry on with a new connection, as a client would
    deadline = time.monotonic() + 5
    while sum(received) < proxy.bytes_up and time.monotonic() < deadline:
        time.sleep(0.01)
    proxy.close()
    srv.close()
    cuts_in_range = [c for c in plan.cuts if c <= proxy.bytes_up]
    assert proxy.cuts_done == len(cuts_in_range) >= 1
    # Each connection ended exactly at a cut offset of the forwarded stream: prefix sums are the cuts.
    ends = [sum(received[:i + 1]) for i in range(len(received))]
    assert ends[:len(cuts_in_range)] == cuts_in_range
    assert proxy.stalls_done >= 1 and time.monotonic() - t0 >= proxy.stalled_s
    assert proxy.bytes_in >= proxy.bytes_up == sum(received)
