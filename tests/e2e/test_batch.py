"""The batch path end to end: the real agent CLI against a real ``camroll serve`` through the loopback
fault proxy.  Small files go in batch requests, large ones through tus; one damaged file in a batch is
the only one sent again; a batch cut mid-request is resumed without re-sending what was committed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from support.media import jpeg_bytes, write, write_mp4

from camroll import wire

from .helpers import Agent
from .proxy import _HEADER_END, Proxy, _Conn

MIB = 1024 * 1024
BATCH_REQUEST = f"POST {wire.BATCH_PATH} ".encode()


class BatchCorrupter(Proxy):
    """Flips one byte near the end of the first batch body (inside its last file)."""

    def _maybe_corrupt(self, conn: _Conn, data: bytes) -> bytes:
        base = conn.sent
        window = conn.tail + data
        wbase = base - len(conn.tail)
        if conn.flip_at is None and self.corrupt_armed:
            i = window.find(BATCH_REQUEST)
            j = window.find(_HEADER_END, i) if i >= 0 else -1
            if j >= 0:
                head = window[i:j].decode("latin-1").lower()
                length = int(head.split("content-length:")[1].split("\r\n")[0])
                conn.flip_at = wbase + j + len(_HEADER_END) + length - 50
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


def _batches(proxy: Proxy) -> list[int]:
    return [n for method, path, n in proxy.requests() if method == "POST" and path == wire.BATCH_PATH]


def _small(photos: Path, n: int, seed: int = 0) -> list[Path]:
    return [write(photos / f"d{i % 4}" / f"{i}.jpg", jpeg_bytes(seed + i, (64 + i % 7, 48))) for i in range(n)]


def test_small_files_go_in_batches_and_large_ones_through_tus(agent: Agent, photos: Path, server: object) -> None:
    proxy = Proxy(server.port, record=True)  # type: ignore[attr-defined]
    try:
        agent.set_server_url(proxy.url)
        files = _small(photos, 40)
        big = write_mp4(photos / "big.mp4", 3 * MIB, seed=3)
        s = agent.backup()
        assert s["ok"] and s["files_uploaded"] == 41, s
        batches = _batches(proxy)
        assert batches and sum(batches) >= sum(f.stat().st_size for f in files)
        tus = [r for r in proxy.requests() if r[1].startswith(wire.UPLOADS_PATH) and r[1] != wire.BATCH_PATH]
        assert tus and sum(n for _, _, n in tus) >= big.stat().st_size
        for f in [*files, big]:
            assert agent.server_has(hashlib.sha256(f.read_bytes()).hexdigest()) is not None
        assert agent.status()["files"]["backed_up"] == 41
    finally:
        proxy.close()


def test_one_damaged_file_in_a_batch_is_the_only_one_sent_again(agent: Agent, photos: Path, server: object) -> None:
    proxy = BatchCorrupter(server.port, record=True)  # type: ignore[attr-defined]
    try:
        agent.set_server_url(proxy.url)
        files = _small(photos, 30, seed=100)
        proxy.arm_corruption()
        s = agent.backup()
        assert proxy.corrupted == 1
        assert s["ok"] and s["files_uploaded"] == 30, s
        batches = _batches(proxy)
        # The damaged file went once more, the others once: the batch bodies hold the files' bytes, one
        # file more, and a manifest entry (under 400 bytes) per file sent.
        assert len(batches) >= 2
        largest = max(f.stat().st_size for f in files)
        sent_once = sum(f.stat().st_size for f in files)
        assert sent_once + largest <= sum(batches) < sent_once + largest + 400 * 31 + 8 * len(batches), batches
        st = agent.status()
        assert st["files"]["backed_up"] == 30
    finally:
        proxy.close()


class CutOnce(Proxy):
    """Cuts the connection of the first batch request once ``after`` of its bytes went through (that
    connection's only: a check or heartbeat on another connection at that moment is left alone)."""

    after = 0
    done = False

    @staticmethod
    def _sending_batch(conn: _Conn, data: bytes) -> bool:
        seen = bytes(conn.log or b"") + data[:4096]
        end = seen.rfind(b" HTTP/1.1\r\n")
        if end < 0:
            return False
        # The line may follow the last request's body with no newline between them.
        return seen[max(0, end - 200):end].endswith(b"POST " + wire.BATCH_PATH.encode())

    def _maybe_corrupt(self, conn: _Conn, data: bytes) -> bytes:
        if not self.done and self.bytes_up + len(data) > self.after and self._sending_batch(conn, data):
            self.done = True
            keep = max(0, self.after - self.bytes_up)
            data = data[:keep]
            conn.close()
        return data


def test_a_batch_cut_mid_request_resumes_without_resending_what_was_committed(agent: Agent, photos: Path,
                                                                            server: object) -> None:
    proxy = CutOnce(server.port, record=True)  # type: ignore[attr-defined]
    try:
        agent.set_server_url(proxy.url)
        files = _small(photos, 120, seed=300)
        total = sum(f.stat().st_size for f in files)
        proxy.after = total // 2
        s = agent.backup()
        assert proxy.done
        assert s["ok"] and s["files_uploaded"] == 120, s
        batches = _batches(proxy)
        assert len(batches) >= 2, batches
        # Everything that arrived whole before the cut was committed and not sent again: what follows the
        # cut batch (the largest: it carried what was ready then; on a loaded machine a first small batch
        # may go before it) is about the half that had not gone (all of it again would be over ``total``).
        cut = batches.index(max(batches))
        assert sum(batches[cut + 1:]) < total * 0.75, (batches, total)
        for f in files:
            assert agent.server_has(hashlib.sha256(f.read_bytes()).hexdigest()) is not None
        assert agent.status()["files"]["backed_up"] == 120
        assert os.environ.get("CAMROLL_BATCH", "1") != "0"
    finally:
        proxy.close()
