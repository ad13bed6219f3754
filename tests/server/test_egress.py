"""Alert URLs cannot reach the server's own network (issue 8, defect 3): the allow-list of schemes, the
address rule when a URL is added and at the socket while it is sent, and failures told without the
service's answer.  Sends go to real loopback sockets; nothing leaves 127.0.0.0/8."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.server import ServerProcess

from camroll.server import egress, migrate
from camroll.server.context import Context
from camroll.server.db import make_engine, make_sessionmaker
from camroll.server.egress import EgressPolicy, EgressRefused
from camroll.server.models import NotifyTarget
from camroll.server.problems import ProblemError
from camroll.server.services import accounts, notify
from camroll.server.services.partfiles import PartFiles
from camroll.server.settings import Settings
from camroll.server.storage.memory import MemoryBlobStore

from .conftest import assert_problem, make_user
from .receiver import Receiver, receiver

__all__ = ["receiver"]

LOOPBACK = EgressPolicy(schemes=egress.DEFAULT_SCHEMES | {"json"},
                        allow_networks=(ipaddress.ip_network("127.0.0.0/8"),))


def ctx_with(tmp: Path, policy: EgressPolicy) -> Context:
    settings = Settings.for_data_dir(tmp, notify_policy=policy, notify_timeout_seconds=20)
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    return Context(settings, engine, make_sessionmaker(engine), MemoryBlobStore(), PartFiles(settings.uploads_dir))


@pytest.mark.parametrize("address, why", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"),
    ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fc00::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("100.64.0.1", "not public"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("2002:7f00:1::", "loopback"),
    ("64:ff9b::a00:1", "private"), ("240.0.0.1", "private"), ("198.18.0.1", "private"),
])
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    assert EgressPolicy().refusal(address) == why


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "2a00:1450:4001::200e"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert EgressPolicy().refusal(address) is None


def test_admins_widen_the_rule_with_environment_variables() -> None:
    p = EgressPolicy.from_env({egress.SCHEMES_ENV: "default, json", egress.NETWORKS_ENV: "192.168.1.0/24,10.0.0.5"})
    assert "json" in p.schemes and "ntfys" in p.schemes
    assert p.refusal("192.168.1.77") is None and p.refusal("10.0.0.5") is None
    assert p.refusal("10.0.0.6") == "private" and p.refusal("127.0.0.1") == "loopback"
    only = EgressPolicy.from_env({egress.SCHEMES_ENV: "ntfys"})
    assert only.schemes == {"ntfys"}
    assert EgressPolicy.from_env({egress.PRIVATE_ENV: "1"}).refusal("127.0.0.1") is None
    assert EgressPolicy.from_env({}) == EgressPolicy()
    with pytest.raises(ValueError, match=r"192\.168\.1/24.* is not a network"):
        EgressPolicy.from_env({egress.NETWORKS_ENV: "192.168.1/24"})


def test_default_schemes_leave_out_plain_http_webhooks() -> None:
    assert {"json", "xml", "form"}.isdisjoint(egress.DEFAULT_SCHEMES)
    assert {"jsons", "xmls", "forms", "ntfys", "mailtos", "tgram", "discord", "slack"} <= egress.DEFAULT_SCHEMES


@pytest.mark.parametrize("url, needle", [
    ("json://127.0.0.1:9/x", "does not send alerts to json://"),
    ("syslog://127.0.0.1", "does not send alerts to syslog://"),
    ("jsons://127.0.0.1/x", "loopback address"),
    ("jsons://localhost:8420/api/v1/me", "loopback address"),
    ("jsons://2130706433/x", "loopback address"),          # 127.0.0.1 written as one number
    ("jsons://[::1]/x", "loopback address"),
    ("jsons://[::ffff:127.0.0.1]/x", "loopback address"),
    ("jsons://169.254.169.254/latest/meta-data", "link-local address"),
    ("ntfys://10.0.0.7/topic", "private address"),
    ("gotifys://192.168.0.2/TOKENTOKENTOKEN", "private address"),
    ("mailtos://user:pw@example.com?smtp=127.0.0.1", "loopback address"),
])
def test_urls_towards_the_servers_network_are_refused_when_added(url: str, needle: str) -> None:
    with pytest.raises(ProblemError) as err:
        notify.check_url(url, EgressPolicy())
    assert err.value.status == 400 and needle in err.value.detail, err.value.detail


def test_services_with_fixed_hosts_are_accepted_without_a_lookup() -> None:
    # The host part of these is a token or an id; apprise posts to the service's own public host.
    for url in ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/1234567", "discord://4174216298/JHMHI8qBe7bk2"):
        assert notify.check_url(url, EgressPolicy()) == url


def test_a_url_with_too_many_recipients_is_refused() -> None:
    url = "mailtos://user:pw@example.com?smtp=127.0.0.1&to=" + ",".join(f"r{i}@example.com" for i in range(11))
    with pytest.raises(ProblemError, match="11 recipients"):
        notify.check_url(url, EgressPolicy(allow_private=True))  # no address lookup at all


def test_the_socket_guard_refuses_what_the_policy_refuses() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        with egress.guarded(EgressPolicy()) as refused, pytest.raises(EgressRefused):
            socket.create_connection(("localhost", port), timeout=2)
        assert [r.why for r in refused] == ["loopback"]
        with egress.guarded(LOOPBACK):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        # Other threads, and this one outside the block, are not affected.
        done: list[bool] = []
        with egress.guarded(EgressPolicy()):
            t = threading.Thread(target=lambda: done.append(bool(socket.create_connection(("127.0.0.1", port), 2))))
            t.start()
            t.join()
        assert done == [True]
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_stored_url_that_now_points_inside_is_refused_at_send_time(tmp_path: Path, receiver: Receiver) -> None:
    """What DNS rebinding does: the URL passed the check when added, and its host now resolves to
    loopback.  Stored directly, as if it had; the send must still never reach the receiver."""
    ctx = ctx_with(tmp_path, EgressPolicy(schemes=egress.DEFAULT_SCHEMES | {"json"}))
    user = accounts.add_user(ctx, "ann", "pw")
    with ctx.db() as db:
        db.add(NotifyTarget(user_id=user.id, url=f"json://localhost:{receiver.port}/rebound"))
    results = notify.send_test(ctx, user.id, "ann")
    assert [r.ok for r in results] == [False]
    assert results[0].error == ("not sent: the service's address is a loopback address, and this server sends "
                                "alerts only to public addresses")
    assert receiver.at("rebound") == []
    assert notify.targets(ctx, user.id)[0].last_error == results[0].error


@pytest.fixture(scope="module")
def secretive() -> Iterator[int]:
    """A loopback service that refuses every message with a body full of internal details."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = b"internal-db-password=hunter2 at 10.0.0.5:5432"
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_failed_send_says_the_status_class_never_the_answer(tmp_path: Path, secretive: int) -> None:
    ctx = ctx_with(tmp_path, LOOPBACK)
    user = accounts.add_user(ctx, "ann", "pw")
    notify.add(ctx, user.id, f"json://127.0.0.1:{secretive}/x")
    results = notify.send_test(ctx, user.id, "ann")
    assert results[0].error == "the service refused the message or could not be reached (HTTP 5xx)"
    listed = notify.targets(ctx, user.id)[0]
    assert listed.last_error == results[0].error and "hunter2" not in str(listed)


def test_over_the_api_a_device_token_adds_nothing_and_a_session_only_public_urls(
        shared_server: ServerProcess) -> None:
    u = make_user(shared_server)
    try:
        for url in ("json://127.0.0.1:8420/api/v1/me", "jsons://127.0.0.1/x", "jsons://169.254.169.254/x"):
            assert_problem(u.client.post("/api/v1/me/notifications", json={"url": url}), 403, "forbidden")
            body = assert_problem(u.session.post("/api/v1/me/notifications", json={"url": url}), 400, "bad_request")
            assert "CAMROLL_NOTIFY" in str(body["fix"])
        assert u.session.get("/api/v1/me/notifications").json() == []
        # Nothing reached: the test endpoint has nothing to send.
        assert u.session.post("/api/v1/me/notifications/test").json() == []
    finally:
        u.close()


def test_the_server_refuses_to_start_with_a_bad_network_setting(tmp_path: Path) -> None:
    from support.server import run_camroll

    r = run_camroll("serve", "--data", str(tmp_path / "d"), "--listen", "127.0.0.1:1",
                    env={egress.NETWORKS_ENV: "not-a-net"}, check=False, timeout=60)
    assert r.returncode != 0 and "not-a-net' is not a network" in r.stderr and "Traceback" not in r.stderr


def test_httpx_is_not_guarded_outside_sends(shared_server: ServerProcess) -> None:
    # The audit hook is process-wide once installed: everything else in the process still connects.
    with egress.guarded(EgressPolicy()):
        pass
    assert httpx.get(shared_server.url + "/api/v1/server").status_code == 200
