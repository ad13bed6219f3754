"""Fixtures for the server suite: one shared ``camroll serve`` per module plus per-test users."""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from support.clock import FakeClock
from support.server import ServerProcess, database_env

from camroll import wire
from camroll.server import migrate
from camroll.server.clock import SYSTEM_CLOCK, Clock
from camroll.server.context import Context, build
from camroll.server.services.accounts import add_user
from camroll.server.settings import Settings
from camroll.units import parse_size

TUS = {"Tus-Resumable": wire.TUS_VERSION}
OCTET = "application/offset+octet-stream"
_names = itertools.count()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server shared by the tests of one module; each test makes its own user.  It stores "other files"
    too (--accept-other-files), so the library's handling of them is tested; refusing them, the default,
    is tested in test_services.py."""
    srv = ServerProcess(data=tmp_path_factory.mktemp("shared") / "server-data", extra_args=("--accept-other-files",))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@dataclass
class User:
    """``client`` holds a device token (what the agent has: uploads, checks, heartbeats); ``session`` a
    login session (what the web UI has: the library, devices, alerts, trash)."""

    server: ServerProcess
    name: str
    password: str
    client: httpx.Client
    session: httpx.Client

    def close(self) -> None:
        self.client.close()
        self.session.close()

    @property
    def data(self) -> Path:
        return self.server.data


_contexts: dict[Path, Context] = {}


def make_user(srv: ServerProcess, *, quota: str | None = None, device: str = "test-device") -> User:
    """A user with a device token.  Created in-process on the server's database, which is much faster
    than ``srv.add_user`` (a ``camroll admin`` subprocess); test_admin_cli covers that path."""
    name = f"user{next(_names)}"
    pw = "correct horse battery"
    if srv.data not in _contexts:
        _contexts[srv.data] = build(Settings.for_data_dir(srv.data))
    add_user(_contexts[srv.data], name, pw, quota_bytes=parse_size(quota) if quota else None)
    session = srv.login(name, pw)
    token = srv.device_token(name, pw, device, session=session)
    client = httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return User(srv, name, pw, client,
                httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {session}"}, timeout=30))


@pytest.fixture
def user(shared_server: ServerProcess) -> Iterator[User]:
    u = make_user(shared_server)
    try:
        yield u
    finally:
        u.close()


def meta(data: bytes, **extra: str) -> str:
    fields = {"filename": "a.jpg", "sha256": hashlib.sha256(data).hexdigest(), "size": str(len(data)), **extra}
    return wire.encode_upload_metadata(fields)


def b64digest(algorithm: str, data: bytes) -> str:
    return f"{algorithm} " + base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def create(client: httpx.Client, data: bytes, length: int | None = None, **extra: str) -> str:
    r = client.post(wire.UPLOADS_PATH, headers={**TUS, "Upload-Length": str(len(data) if length is None else length),
                                                "Upload-Metadata": meta(data, **extra)})
    assert r.status_code == 201, r.text
    return r.headers["Location"]


def patch(client: httpx.Client, url: str, offset: int, chunk: bytes, checksum: str | None = None,
          **headers: str) -> httpx.Response:
    h = {**TUS, "Content-Type": OCTET, "Upload-Offset": str(offset), **headers}
    if checksum:
        h["Upload-Checksum"] = checksum
    return client.patch(url, headers=h, content=chunk)


def upload(client: httpx.Client, data: bytes, chunk: int = 64 * 1024, **extra: str) -> int:
    """Upload ``data`` in chunks; returns the asset id."""
    url = create(client, data, **extra)
    offset = 0
    while True:
        r = patch(client, url, offset, data[offset:offset + chunk], b64digest("sha256", data[offset:offset + chunk]))
        assert r.status_code == 204, r.text
        offset = int(r.headers["Upload-Offset"])
        if offset == len(data):
            return int(r.headers["Camroll-Asset-Id"])


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(wire.PROBLEM_CONTENT_TYPE)
    body = r.json()
    problem = wire.Problem.model_validate(body)
    assert problem.status == status
    assert problem.code == code
    assert problem.detail
    return dict(body)


def jpeg(n: int, seed: int = 0) -> bytes:
    """``n`` bytes that sniff as JPEG and are unique per ``seed``."""
    body = hashlib.sha256(str(seed).encode()).digest() * (n // 32 + 1)
    return (b"\xff\xd8\xff\xe0" + body)[:n]


def _migrated_context(data: Path, clock: Clock = SYSTEM_CLOCK) -> Context:
    database_env(data)  # made from the migrated template, not migrated step by step here
    c = build(Settings.for_data_dir(data), clock=clock)
    migrate.upgrade(c.engine)
    return c


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    """An in-process server context on a fresh, migrated library (no HTTP, no workers): SQLite, or a
    database of its own on the PostgreSQL pass."""
    c = _migrated_context(tmp_path / "data")
    try:
        yield c
    finally:
        c.engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked_ctx(tmp_path: Path, clock: FakeClock) -> Iterator[Context]:
    """``ctx`` on the ``clock`` fixture: expiry, leases and checks happen when the test advances it."""
    c = _migrated_context(tmp_path / "data", clock)
    try:
        yield c
    finally:
        c.engine.dispose()


@pytest.fixture
def clocked_app(clocked_ctx: Context) -> Iterator[TestClient]:
    """The whole app in-process (Starlette's TestClient, lifespan included) on ``clocked_ctx``."""
    from camroll.server.app import create_app

    with TestClient(create_app(clocked_ctx.settings, clocked_ctx)) as client:
        yield client
