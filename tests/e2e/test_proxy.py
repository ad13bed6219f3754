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
