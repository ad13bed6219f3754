"""Server probes against real loopback servers: camroll itself, a closed port, an unresolvable name, a
self-signed TLS server, a socket that never answers, plain HTTP servers that are not camroll."""

from __future__ import annotations

import http.server
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.env import free_port
from support.server import ServerProcess

from camroll import __version__, wire
from camroll.agent.report.reach import (
    check_version,
    clock_skew,
    disk_level,
    probe_account,
    probe_disk,
    probe_server,
    quota_headroom,
)


def test_good_server(server: ServerProcess) -> None:
    r = probe_server(server.url)
    assert (r.level, r.kind) == ("ok", "ok"), r.text
    assert r.info is not None and r.info.min_client_version
    assert "answered in" in r.sentence and r.fix == ""
    # uvicorn sends Date; this machine's clock is the server's clock.
    skew = clock_skew(r.server_date, r.local_time)
    assert skew.level == "ok" and skew.seconds is not None and abs(skew.seconds) < 3
    assert check_version(r.info).level == "ok"


def test_account_and_quota(server: ServerProcess) -> None:
    pw = server.add_user("ann", quota="15GB")
    token = server.device_token("ann", pw)
    a = probe_account(server.url, token)
    assert a.kind == "ok" and a.user is not None and a.user.quota_bytes == 15 * 10**9
    q = quota_headroom(a.user)
    assert q.level == "ok" and q.sentence == "0.0 of 15.0 GB used (0%)."
    bad = probe_account(server.url, "not-a-token")
    assert (bad.level, bad.kind) == ("fail", "unauthorized")
    assert "camroll login" in bad.fix


def test_refused() -> None:
    port = free_port()  # bound then closed: nothing listens there
    r = probe_server(f"http://127.0.0.1:{port}")
    assert (r.level, r.kind) == ("fail", "refused")
    assert r.sentence == f"Nothing is listening at 127.0.0.1:{port} (connection refused)."
    assert "camroll serve" in r.fix


def test_dns_failure() -> None:
    r = probe_server("http://camroll-test.invalid:8420", timeout=5)
    assert (r.level, r.kind) == ("fail", "dns"), r.text
    assert "camroll-test.invalid could not be resolved" in r.sentence


def test_bad_url() -> None:
    r = probe_server("ftp://example.test")
    assert r.kind == "bad_url" and r.level == "fail"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A socket that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def test_timeout(silent_port: int) -> None:
    r = probe_server(f"http://127.0.0.1:{silent_port}", timeout=0.3)
    assert (r.level, r.kind) == ("fail", "timeout"), r.text
    assert "did not answer within 0.3 s" in r.sentence


def _serve_forever(sock: socket.socket, handle: object) -> threading.Thread:
    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            try:
                handle(conn)  # type: ignore[operator]
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


@pytest.fixture
def self_signed_tls(tmp_path: Path) -> Iterator[int]:
    from support.env import require

    # ca-certificates, which .ci/run installs, depends on openssl.
    require(shutil.which("openssl") is not None, "the openssl command is needed to make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    def handshake(conn: socket.socket) -> None:
        conn.settimeout(5)
        with ctx.wrap_socket(conn, server_side=True):
            pass

    _serve_forever(sock, handshake)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def test_self_signed_certificate(self_signed_tls: int) -> None:
    r = probe_server(f"https://127.0.0.1:{self_signed_tls}")
    assert (r.level, r.kind) == ("fail", "tls"), r.text
    assert "self-signed certificate" in r.sentence and "does not trust" in r.sentence
    assert "trusted" in r.fix


def test_plain_http_to_a_tls_server(self_signed_tls: int) -> None:
    r = probe_server(f"http://127.0.0.1:{self_signed_tls}")
    assert r.level == "fail" and r.kind in ("protocol", "network"), r.text


def test_not_http_at_all() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    def ssh_like(conn: socket.socket) -> None:
        # Like sshd: banner first, then read what the client sent.  Closing with the request unread
        # would reset the connection instead, and the probe would rightly call that a network error.
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data and (chunk := conn.recv(4096)):
            data += chunk

    _serve_forever(sock, ssh_like)
    try:
        r = probe_server(f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        sock.close()
    assert (r.level, r.kind) == ("fail", "protocol"), r.text


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = int(self.server.answer)  # type: ignore[attr-defined]
        self.send_response(code)
        if code == 302:
            self.send_header("Location", "https://photos.example/")
        body = b'{"hello": "world"}' if code == 200 else b"no"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize(("answer", "kind", "words"), [
    (404, "not_camroll", "does not look like a camroll server"),
    (500, "http", "is up but failing (HTTP 500"),
    (302, "http", "redirects to https://photos.example/"),
    (200, "not_camroll", "not like a camroll server"),
])
def test_http_answers(answer: int, kind: str, words: str) -> None:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    httpd.answer = answer  # type: ignore[attr-defined]
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        r = probe_server(f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert (r.level, r.kind) == ("fail", kind), r.text
    assert words in r.sentence and r.fix


def test_server_that_needs_a_newer_client(tmp_path: Path) -> None:
    srv = ServerProcess(data=tmp_path / "server-data", extra_args=("--min-client-version", "9.0.0"))
    srv.start()
    try:
        pw = srv.add_user("ann")
        # Registering the device does not send the client header, so it works for any version.
        token = srv.device_token("ann", pw)
        r = probe_server(srv.url)
        assert r.level == "ok" and r.info is not None
        c = check_version(r.info)
        assert c.level == "fail"
        assert c.text == (f"This camroll ({__version__}) is too old for the server, which needs 9.0.0 or later. "
                          "Fix: update camroll (pip install -U camroll).")
        a = probe_account(srv.url, token)
        assert (a.level, a.kind) == ("fail", "client_too_old")
    finally:
        srv.stop()


def _info(min_client: str, api: int = 1) -> wire.ServerInfo:
    return wire.ServerInfo(name="s", version="0.3.0", api_version=api, min_client_version=min_client,
                           upload=wire.UploadLimits(max_file_size=1, chunk_size=1, expiry_seconds=1), media_types=[])


def test_version_rules() -> None:
    assert check_version(_info("0.3.0"), "0.1.0").sentence == (
        "This camroll (0.1.0) is too old for the server, which needs 0.3.0 or later.")
    assert check_version(_info("0.1"), "0.1.0").level == "ok"  # "0.1" and "0.1.0" are the same release
    assert check_version(_info("0.1.0"), "0.1.1rc1").level == "ok"
    assert check_version(_info("1.0.0"), "0.10.0").level == "fail"
    newer_api = check_version(_info("0.1.0", api=2), "0.1.0")
    assert newer_api.level == "fail" and "update camroll" in newer_api.fix


def _user(used: int, quota: int | None) -> wire.UserInfo:
    return wire.UserInfo(id=1, username="ann", is_admin=False, quota_bytes=quota, used_bytes=used)


def test_quota_levels() -> None:
    gb = 10**9
    assert quota_headroom(_user(14_900_000_000, 15 * gb)).level == "warn"
    assert quota_headroom(_user(14_900_000_000, 15 * gb)).sentence == "Storage almost full: 14.9 of 15.0 GB used (99%)."
    full = quota_headroom(_user(15 * gb, 15 * gb))
    assert full.level == "fail" and full.sentence == "Storage full: 15.0 of 15.0 GB used."
    assert "quota" in full.fix and "resumes by itself" in full.fix
    assert quota_headroom(_user(13 * gb, 15 * gb)).level == "ok"
    assert quota_headroom(_user(5, None)).sentence == "No storage quota; 5 B used."
    assert quota_headroom(_user(900_000, 1_000_000)).sentence == "Storage almost full: 0.9 of 1.0 MB used (90%)."


def test_clock_skew_levels() -> None:
    now = datetime(2026, 11, 24, 21, 40, tzinfo=UTC)
    assert clock_skew(now + timedelta(seconds=299), now).level == "ok"
    behind = clock_skew(now + timedelta(minutes=7), now)
    assert behind.level == "warn" and behind.sentence == "This device's clock is 7 min behind the server's."
    ahead = clock_skew(now - timedelta(hours=3), now)
    assert ahead.sentence == "This device's clock is 3.0 h ahead of the server's." and "NTP" in ahead.fix
    assert clock_skew(None, now).level == "unknown"


def test_disk_levels(tmp_path: Path) -> None:
    assert disk_level(40 * 10**6, "/x").level == "fail"
    assert disk_level(400 * 10**6, "/x").sentence == "Only 400.0 MB free on the disk holding /x."
    assert disk_level(10**9, "/x").level == "ok"
    real = probe_disk(tmp_path / "not" / "yet")  # measured on the nearest folder that exists
    assert real.free_bytes is not None and real.free_bytes > 0
    assert probe_disk(tmp_path, usage=lambda p: 10 * 10**6).level == "fail"

    def broken(p: Path) -> int:
        raise PermissionError(13, "Permission denied")

    assert probe_disk(tmp_path, usage=broken).level == "unknown"
