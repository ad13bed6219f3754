"""A loopback HTTP server that records what apprise's ``json://`` URLs post to it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from support.wait import wait_until

# The server sends alerts only to public addresses and to https webhooks unless the admin widens that;
# these tests' receiver is a plain-http json:// endpoint on loopback.
LOOPBACK_ALERTS = {"CAMROLL_NOTIFY_SCHEMES": "default,json", "CAMROLL_NOTIFY_ALLOW_NETWORKS": "127.0.0.0/8"}


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    authorization: str | None


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def at(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [m.body for m in self.messages if m.path == f"/{path}"]

    def wait(self, path: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 15) -> \
            list[dict[str, Any]]:
        def matching() -> list[dict[str, Any]] | None:
            got = self.at(path)
            return got if predicate(got) else None

        found = wait_until(matching, timeout, what=f"matching messages arrive at /{path}",
                           describe=lambda: self.at(path))
        assert found is not None
        return found


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            rec = holder[0]
            with rec.lock:
                rec.messages.append(Received(self.path, json.loads(body), self.headers.get("Authorization")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(httpd))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        httpd.shutdown()
        httpd.server_close()
