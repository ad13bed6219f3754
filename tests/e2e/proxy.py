"""A real TCP proxy on loopback between the agent and the server, for fault tests.

It forwards bytes both ways and can throttle the client-to-server direction, count what it forwarded,
cut every open connection, and flip one byte of the next PATCH body (after its HTTP headers) once.
The byte count is how tests prove what was, or was not, sent again.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

_HEADER_END = b"\r\n\r\n"


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.sent = 0  # client -> server bytes on this connection
        self.tail = b""  # last bytes seen, to find a PATCH header split across reads
        self.flip_at: int | None = None
        self.log: bytearray | None = None  # everything sent client -> server, when recording

    def close(self) -> None:
        for s in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


class Proxy:
    def __init__(self, upstream_port: int, *, rate: float | None = None, record: bool = False) -> None:
        self.upstream_port = upstream_port
        # With ``record``, each connection's client -> server bytes are kept for ``requests()``.
        self.record = record
        self.streams: list[bytearray] = []
        self.rate = rate  # bytes/s, client -> server, shared by all connections
        self.lock = threading.Lock()
        self.bytes_up = 0
        self.bytes_down = 0
        self.corrupt_armed = False
        self.corrupted = 0
        self.patches_seen = 0
        self.conns: list[_Conn] = []
        self._next_free = 0.0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        self.cut()

    def cut(self) -> None:
        """Close every open connection abruptly (both sides see a reset or EOF)."""
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            c.close()

    def arm_corruption(self) -> None:
        with self.lock:
            self.corrupt_armed = True

    def wait_for_bytes_up(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.bytes_up < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.bytes_up} of {n} bytes went through the proxy")
            time.sleep(0.01)

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, body bytes) of every request recorded so far, each connection's in order.
        Bodies are delimited by Content-Length (the agent never sends chunked bodies); a body cut
        short counts the bytes that did go through."""
        out: list[tuple[str, str, int]] = []
        with self.lock:
            streams = [bytes(s) for s in self.streams]
        for data in streams:
            pos = 0
            while pos < len(data):
                end = data.find(_HEADER_END, pos)
                if end < 0:
                    break
                head = data[pos:end].decode("latin-1").split("\r\n")
                method, path = [*head[0].split(" "), "", ""][:2]
                length = 0
                for line in head[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                body_start = end + len(_HEADER_END)
                body = min(length, len(data) - body_start)
                out.append((method, path, body))
                pos = body_start + body
        return out

    # --- internals ----------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            conn = _Conn(client, upstream)
            with self.lock:
                self.conns.append(conn)
                if self.record:
                    conn.log = bytearray()
                    self.streams.append(conn.log)
            threading.Thread(target=self._pump_up, args=(conn,), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(conn,), daemon=True).start()

    def _throttle(self, n: int) -> None:
        rate = self.rate
        if not rate:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self._next_free)
            self._next_free = start + n / rate
        delay = self._next_free - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _maybe_corrupt(self, conn: _Conn, data: bytes) -> bytes:
        base = conn.sent  # stream offset of data[0]
        window = conn.tail + data
        wbase = base - len(conn.tail)
        if conn.flip_at is None and self.corrupt_armed:
            i = window.find(b"PATCH /")
            if i >= 0:
                j = window.find(_HEADER_END, i)
                if j >= 0:
                    # Somewhere inside the body, after the headers: the chunk checksum must catch it.
                    conn.flip_at = wbase + j + len(_HEADER_END) + 1000
                    with self.lock:
                        self.corrupt_armed = False
        if conn.flip_at is not None and base <= conn.flip_at < base + len(data):
            k = conn.flip_at - base
            data = data[:k] + bytes([data[k] ^ 0xFF]) + data[k + 1:]
            conn.flip_at = None
            with self.lock:
                self.corrupted += 1
        conn.tail = window[-8192:]
        return data

    def _pump_up(self, conn: _Conn) -> None:
        try:
            while True:
                size = 65536 if not self.rate else max(1024, min(65536, int(self.rate / 50)))
                data = conn.client.recv(size)
                if not data:
                    break
                if b"PATCH /" in conn.tail[-16:] + data[:4096]:
                    with self.lock:
                        self.patches_seen += 1
                data = self._maybe_corrupt(conn, data)
                self._throttle(len(data))
                if conn.log is not None:
                    conn.log += data
                conn.upstream.sendall(data)
                conn.sent += len(data)
                with self.lock:
                    self.bytes_up += len(data)
        except OSError:
            pass
        finally:
            conn.close()

    def _pump_down(self, conn: _Conn) -> None:
        try:
            while True:
                data = conn.upstream.recv(65536)
                if not data:
                    break
                conn.client.sendall(data)
                with self.lock:
                    self.bytes_down += len(data)
        except OSError:
            pass
        finally:
            conn.close()
