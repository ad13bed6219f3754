from __future__ import annotations

import http.server
import random
import threading
from collections.abc import Iterator

import httpx
import pytest

from camroll import wire
from camroll.agent.api import Api, make_client, with_retries
from camroll.agent.backup.retry import ACROSS_PASSES_CAP, Backoff, next_retry_delay
from camroll.agent.errors import ProblemError, ServerUnreachable


def test_full_jitter_bounds() -> None:
    b = Backoff(base=0.5, cap=8.0, attempts=5)
    rng = random.Random(1)
    for retry in range(10):
        upper = min(8.0, 0.5 * 2**retry)
        samples = [b.delay(retry, rng) for _ in range(200)]
        assert all(0 <= s <= upper for s in samples)
        assert max(samples) > upper * 0.8  # really uses the whole range


def test_across_passes_grows_and_caps() -> None:
    rng = random.Random(2)
    assert 30 <= next_retry_delay(1, rng) <= 60
    assert 120 <= next_retry_delay(3, rng) <= 240
    assert next_retry_delay(50, rng) <= ACROSS_PASSES_CAP


def test_with_retries_transient_then_ok() -> None:
    sleeps: list[float] = []
    calls = iter([ProblemError(503, "internal", "busy"), httpx.ConnectError("refused"), "ok"])

    def fn() -> str:
        v = next(calls)
        if isinstance(v, Exception):
            raise v
        return v

    assert with_retries(fn, base_url="http://x", sleep=sleeps.append) == "ok"
    assert len(sleeps) == 2


def test_with_retries_gives_up() -> None:
    sleeps: list[float] = []

    def down() -> None:
        raise httpx.ConnectError("refused")

    with pytest.raises(ServerUnreachable, match="Cannot reach the camroll server: Cannot connect to x"):
        with_retries(down, base_url="http://x", sleep=sleeps.append, backoff=Backoff(attempts=3))
    assert len(sleeps) == 2


def test_with_retries_not_transient() -> None:
    def quota() -> None:
        raise ProblemError(413, "quota_exceeded", "full", "free space")

    with pytest.raises(ProblemError, match=r"full\. Fix: free space\."):
        with_retries(quota, base_url="http://x", sleep=lambda s: None)


class _Dropper(http.server.BaseHTTPRequestHandler):
    """Answers /assets/check with an empty result, except that it closes the connection without an answer
    for the first ``drops`` checks (a network cut mid-request, as a flaky Wi-Fi or a proxy restart does)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        srv = self.server
        if srv.drops > 0:  # type: ignore[attr-defined]
            srv.drops -= 1  # type: ignore[attr-defined]
            self.close_connection = True
            return
        body = wire.CheckResponse(present={}, missing=[]).model_dump_json().encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def dropper() -> Iterator[http.server.ThreadingHTTPServer]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Dropper)
    httpd.drops = 0  # type: ignore[attr-defined]
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_a_dropped_check_is_retried(dropper: http.server.ThreadingHTTPServer) -> None:
    sleeps: list[float] = []
    dropper.drops = 2  # type: ignore[attr-defined]
    with make_client(f"http://127.0.0.1:{dropper.server_address[1]}") as client:
        api = Api(client)
        resp = with_retries(lambda: api.check([]), base_url=api.base_url, sleep=sleeps.append)
    assert resp.missing == [] and len(sleeps) == 2


def test_a_server_that_answered_then_drops_is_a_network_cut(dropper: http.server.ThreadingHTTPServer) -> None:
    with make_client(f"http://127.0.0.1:{dropper.server_address[1]}") as client:
        api = Api(client)
        api.check([])  # the server answered once: it is camroll, at the right URL
        dropper.drops = 10  # type: ignore[attr-defined]
        with pytest.raises(ServerUnreachable) as caught:
            with_retries(lambda: api.check([]), base_url=api.base_url, sleep=lambda s: None,
                         backoff=Backoff(attempts=3))
    text = str(caught.value)
    assert "closed the connection in the middle of a request" in text, text
    assert "resumes by itself" in text and "points at camroll" not in text, text
    assert dropper.drops == 7  # type: ignore[attr-defined]


def test_a_first_answer_that_is_not_http_still_blames_the_url(dropper: http.server.ThreadingHTTPServer) -> None:
    dropper.drops = 10  # type: ignore[attr-defined]
    with make_client(f"http://127.0.0.1:{dropper.server_address[1]}") as client, \
            pytest.raises(ServerUnreachable, match="points at camroll"):
        with_retries(lambda: Api(client).check([]), base_url=str(client.base_url), sleep=lambda s: None,
                     backoff=Backoff(attempts=2))
