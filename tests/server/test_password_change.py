"""``POST /me/password`` checks the current password like a login: under the argon2 limiter and with no
transaction open (which would hold SQLite's write lock for the whole argon2 check).  Both are watched
from inside the verification, in-process; the limits themselves are tested over a socket in
test_login_limits.py."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from camroll.server import security
from camroll.server.app import create_app
from camroll.server.context import Context
from camroll.server.db import make_engine, make_sessionmaker
from camroll.server.models import User
from camroll.server.services import accounts
from camroll.server.services.partfiles import PartFiles
from camroll.server.settings import Settings
from camroll.server.storage.memory import MemoryBlobStore


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    settings = Settings.for_data_dir(tmp_path / "data")
    engine = make_engine(settings.database_url)
    return Context(settings, engine, make_sessionmaker(engine), MemoryBlobStore(), PartFiles(settings.uploads_dir))


@pytest.fixture
def api(ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(ctx.settings, ctx)) as client:
        accounts.add_user(ctx, "ann", "old password")
        token = client.post("/api/v1/auth/login", json={"username": "ann", "password": "old password"}).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


class _Watched:
    """Wraps the argon2 hasher: ``on_verify`` runs inside every verification."""

    def __init__(self, on_verify: Callable[[], None]) -> None:
        self._real = security._hasher()
        self._on_verify = on_verify

    def verify(self, password_hash: str, password: str) -> bool:
        self._on_verify()
        return bool(self._real.verify(password_hash, password))

    def hash(self, password: str) -> str:
        return str(self._real.hash(password))


@pytest.mark.sqlite_only("probes SQLite's write lock with a second sqlite3 connection")
@pytest.mark.parametrize("old", ["old password", "wrong password"])
def test_the_current_password_is_verified_outside_a_transaction_and_under_the_limiter(
        api: TestClient, ctx: Context, monkeypatch: pytest.MonkeyPatch, old: str) -> None:
    seen: list[tuple[bool, int]] = []
    database = ctx.engine.url.database
    assert database

    def watch() -> None:
        other = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # fails at once if this request holds the write lock
            other.execute("ROLLBACK")
            writable = True
        except sqlite3.OperationalError:
            writable = False
        finally:
            other.close()
        seen.append((writable, int(ctx.throttles.argon2().statistics().borrowed_tokens)))

    watched = _Watched(watch)
    monkeypatch.setattr(security, "_hasher", lambda: watched)
    r = api.post("/api/v1/me/password", json={"old": old, "new": "new password"})
    assert r.status_code == (204 if old == "old password" else 403), r.text
    assert seen == [(True, 1)]


def test_a_password_changed_meanwhile_is_not_overwritten(api: TestClient, ctx: Context,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    reset = security.hash_password("admin reset it")

    def reset_meanwhile() -> None:
        with ctx.db() as db:  # an admin resets it while the old one is being checked
            db.query(User).filter_by(username="ann").one().password_hash = reset

    watched = _Watched(reset_meanwhile)
    monkeypatch.setattr(security, "_hasher", lambda: watched)
    r = api.post("/api/v1/me/password", json={"old": "old password", "new": "new password"})
    assert r.status_code == 409, r.text
    monkeypatch.undo()
    assert api.post("/api/v1/auth/login", json={"username": "ann", "password": "admin reset it"}).status_code == 200
