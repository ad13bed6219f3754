"""A real ``camroll serve`` on a free loopback port, the real CLI, and the test database they open.

``CAMROLL_TEST_DATABASE=postgresql``: every server library the tests make lives in a database of its own
on the run's throwaway PostgreSQL cluster (tests/services/postgres.py) instead of <data>/camroll.db;
``database_env`` is what a camroll subprocess needs in its environment to open it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from services import postgres

from support.env import free_port, require
from support.wait import wait_until

ON_POSTGRES = postgres.wanted()
# Generous: a loaded 2-core CI machine running several test processes can take tens of seconds.
READY_SECONDS = 90.0


def database_env(data: Path, *, migrated: bool = True) -> dict[str, str]:
    """What a camroll subprocess opening the library at ``data`` needs in its environment: on the
    PostgreSQL pass, ``CAMROLL_DATABASE_URL`` of that library's database (made on first use, migrated
    unless ``migrated`` is false); nothing on SQLite, where the database is ``<data>/camroll.db``."""
    if not ON_POSTGRES:
        return {}
    require(postgres.missing_reason() is None, str(postgres.missing_reason()))
    return {"CAMROLL_DATABASE_URL": postgres.database_url_for(data, migrated=migrated)}


def library_rows(data: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of ``sql`` read straight from the database of the server library at ``data`` (read-only on
    SQLite, so a test can look while the server runs and its disk is full)."""
    if not ON_POSTGRES:
        import sqlite3

        db = sqlite3.connect(f"file:{data / 'camroll.db'}?mode=ro", uri=True)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres.database_url_for(data))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def _data_of(args: tuple[str, ...], env: dict[str, str]) -> Path | None:
    """The ``--data`` (or ``$CAMROLL_DATA``) a camroll command line opens, if any."""
    for i, arg in enumerate(args):
        if arg == "--data" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--data="):
            return Path(arg.split("=", 1)[1])
    return Path(env["CAMROLL_DATA"]) if env.get("CAMROLL_DATA") else None


def camroll_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "camroll", *args]


def run_camroll(*args: str, env: dict[str, str] | None = None, check: bool = True,
                input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess and return its result (stdout/stderr as text)."""
    data = _data_of(args, env or {})
    has_url = "CAMROLL_DATABASE_URL" in (env or {})
    full_env = {**os.environ, **(database_env(data) if data is not None and not has_url else {}), **(env or {})}
    proc = subprocess.run(camroll_cmd(*args), env=full_env, capture_output=True, text=True,
                          input=input, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"camroll {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@dataclass
class ServerProcess:
    """A ``camroll serve`` subprocess that a test can stop, kill and restart on the same data.

    Every test that runs a server process uses this (a cluster's replicas too), so starting, readiness,
    logs and the test database are handled once.  ``start()`` returns when ``ready_path`` answers 200."""

    data: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    # Added to the environment the server starts with (e.g. CAMROLL_NOTIFY_* to reach loopback receivers,
    # or the CAMROLL_DATABASE_URL a cluster's replicas share).
    env: dict[str, str] = field(default_factory=dict)
    # /api/v1/server answers once the app is up; /readyz only once database, storage and queue answer.
    ready_path: str = "/api/v1/server"
    ready_seconds: float = READY_SECONDS
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data.parent / f"{self.data.name}-server.log"

    def _environment(self) -> dict[str, str]:
        own = {} if "CAMROLL_DATABASE_URL" in self.env else database_env(self.data)
        return {**os.environ, **own, **self.env}

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                camroll_cmd("serve", "--data", str(self.data), "--listen", f"127.0.0.1:{self.port}",
                            *self.extra_args),
                stdout=log, stderr=subprocess.STDOUT, env=self._environment(),
            )
        try:
            wait_until(self._ready, self.ready_seconds, what=f"camroll serve answers {self.ready_path}")
        except BaseException as exc:
            # Not left running behind a test that never gets to stop it.
            self.kill()
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"camroll serve did not become ready: {exc}\n{self.log_path}:\n{tail}") from None

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"camroll serve exited {self.proc.returncode}")
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{self.url}{self.ready_path}", timeout=2).status_code == 200
        return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def add_user(self, name: str, password: str = "correct horse battery", *, quota: str | None = None,
                 admin: bool = False) -> str:
        pw = self.data.parent / f"{name}.pw"
        pw.write_text(password + "\n")
        args = ["admin", "user", "add", name, "--password-file", str(pw), "--data", str(self.data)]
        if quota:
            args += ["--quota", quota]
        if admin:
            args.append("--admin")
        run_camroll(*args)
        return password

    def run_admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``camroll admin ARGS --data <this server's data>`` (works while the server runs)."""
        return run_camroll("admin", *args, "--data", str(self.data))

    def login(self, name: str, password: str) -> str:
        """A session token for ``name`` (via the real API)."""
        r = httpx.post(f"{self.url}/api/v1/auth/login", json={"username": name, "password": password})
        r.raise_for_status()
        return str(r.json()["token"])

    def device_token(self, name: str, password: str, device: str = "test-device", *,
                     session: str | None = None) -> str:
        session = session or self.login(name, password)
        r = httpx.post(f"{self.url}/api/v1/devices", json={"name": device, "platform": "test"},
                       headers={"Authorization": f"Bearer {session}"})
        r.raise_for_status()
        return str(r.json()["token"])
