"""A real TCP proxy on loopback between the agent and the server, for fault tests.

It forwards bytes both ways and can throttle the client-to-server direction, count what it forwarded,
cut every open connection, and flip one byte of the next PATCH body (after its HTTP headers) once.
With a :class:`FaultPlan` it also cuts the connection carrying the byte at each of a seeded list of
offsets of the client-to-server stream, and stalls the whole link at others: faults of timing only,
never of order (bytes that get through arrive in order, as TCP delivers them).
The byte count is how tests prove what was, or was not, sent again.
"""

from __future__ import annotations

import bisect
import contextlib
import random
import socket
import threading
import time
from dataclasses import dataclass, field

_HEADER_END = b"\r\n\r\n"


@dataclass
class FaultPlan:
    """Where the link fails, as offsets of the client-to-server byte stream: gaps drawn from an
    exponential distribution (a memoryless link), so any byte is as likely as any other to be cut."""

    seed: int
    cut_every: float  # mean bytes between cuts
    stall_every: float  # mean bytes between stalls
    stall_seconds: tuple[float, float] = (0.2, 2.0)  # each stall lasts uniformly between these
    horizon: int = 1 << 40  # plan faults up to this offset
    cuts: list[int] = field(default_factory=list)
    stalls: list[tuple[int, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        at = 0.0
        while self.cut_every and len(self.cuts) < 100_000:
            at += rng.expovariate(1 / self.cut_every)
            if at >= self.horizon:
                break
            self.cuts.append(int(at))
        at = 0.0
        while self.stall_every and len(self.stalls) < 100_000:
            at += rng.expovariate(1 / self.stall_every)
            if at >= self.horizon:
                break
            self.stalls.append((int(at), round(rng.uniform(*self.stall_seconds), 3)))


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
    def __init__(self, upstream_port: int, *, rate: float | None = None, faults: FaultPlan | None = None,
                 record: bool = False, down_rate: float | None = None) -> None:
        self.upstream_port = upstream_port
        # With ``record``, each connection's client -> server bytes are kept for ``requests()``.
        self.record = record
        self.streams: list[bytearray] = []
        self.rate = rate  # bytes/s, client -> server, shared by all connections
        self.down_rate = down_rate  # bytes/s, server -> client (downloads), shared by all connections
        self._next_free_down = 0.0
        self.faults = faults
        self.lock = threading.Lock()
        self.bytes_up = 0
        self.bytes_in = 0  # client -> server bytes received from clients, forwarded or not (wire bytes)
        self.cuts_done = 0
        self.stalls_done = 0
        self.stalled_s = 0.0
        self._offset = 0  # where the fault plan's stream is: bytes up to the cuts, from every connection
        self._next_cut = 0  # index into faults.cuts
        self._next_stall = 0
        self._stalled_until = 0.0
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
            until = self._next_free
        delay = until - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _throttle_down(self, n: int) -> None:
        rate = self.down_rate
        if not rate:
            return
        with self.lock:
            start = max(time.monotonic(), self._next_free_down)
            self._next_free_down = until = start + n / rate
        delay = until - time.monotonic()
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

    def _plan(self, n: int) -> tuple[int, float, bool]:
        """For ``n`` bytes just received: how many to forward, a stall to make first, and whether to
        cut the connection after them.  Claims the stream offsets under the lock, so concurrent
        connections see one stream."""
        with self.lock:
            self.bytes_in += n
            start = self._offset
            self._offset += n
            plan = self.faults
            if plan is None:
                return n, 0.0, False
            stall = 0.0
            i = bisect.bisect_left(plan.stalls, (start, -1.0), lo=self._next_stall)
            j = bisect.bisect_left(plan.stalls, (start + n, -1.0), lo=i)
            if j > i:
                stall = sum(s for _, s in plan.stalls[i:j])
                self.stalls_done += j - i
                self.stalled_s += stall
                self._next_stall = j
            k = bisect.bisect_left(plan.cuts, start, lo=self._next_cut)
            if k < len(plan.cuts) and plan.cuts[k] < start + n:
                # Claim only the bytes up to the cut: the rest were never sent as far as the stream
                # offsets go (the next connection's bytes continue from here).
                self._next_cut = k + 1
                self.cuts_done += 1
                keep = plan.cuts[k] - start
                self._offset = start + keep
                return keep, stall, True
            self._next_cut = k
            return n, stall, False

    def _wait_stall(self, extra: float) -> None:
        if extra:
            with self.lock:
                self._stalled_until = max(self._stalled_until, time.monotonic()) + extra
        while (left := self._stalled_until - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))

    def _pump_up(self, conn: _Conn) -> None:
        try:
            while True:
                size = 65536 if not self.rate else max(1024, min(65536, int(self.rate / 50)))
                data = conn.client.recv(size)
                if not data:
                    break
                keep, stall, cut = self._plan(len(data))
                data = data[:keep]
                self._wait_stall(stall)
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
                if cut:
                    break
        except OSError:
            pass
        finally:
            conn.close()

    def _pump_down(self, conn: _Conn) -> None:
        try:
            while True:
                data = conn.upstream.recv(16384 if self.down_rate else 65536)
                if not data:
                    break
                self._wait_stall(0.0)  # a stalled link holds both directions
                self._throttle_down(len(data))
                conn.client.sendall(data)
                with self.lock:
                    self.bytes_down += len(data)
        except OSError:
            pass
        finally:
            conn.close()
