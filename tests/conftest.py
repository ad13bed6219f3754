"""Shared fixtures: a real ``camroll serve`` process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Agent commands without $CAMROLL_HOME use the platform's config and state dirs, and ``camroll up``
    leaves a pointer there: every test (and every CLI it runs) gets throwaway ones instead of the user's."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="camroll-tests-xdg-"))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
        os.environ[var] = str(base / var.lower())
    os.environ.pop("CAMROLL_HOME", None)
    os.environ.pop("CAMROLL_DATA", None)


def require(ok: bool, message: str) -> None:
    """Skip a test whose outside program or package is missing on a developer machine, but fail it in CI
    (``CI`` set), where .ci/run installs everything: a broken CI image must not pass by skipping."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def camroll_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "camroll", *args]


def run_camroll(*args: str, env: dict[str, str] | None = None, check: bool = True,
                input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess and return its result (stdout/stderr as text)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(camroll_cmd(*args), env=full_env, capture_output=True, text=True,
                          input=input, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"camroll {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@dataclass
class ServerProcess:
    """A ``camroll serve`` subprocess that a test can stop, kill and restart on the same data."""

    data: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    # Added to the environment the server starts with (e.g. CAMROLL_NOTIFY_* to reach loopback receivers).
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log_path = self.data.parent / f"{self.data.name}-server.log"
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                camroll_cmd("serve", "--data", str(self.data), "--listen", f"127.0.0.1:{self.port}",
                            *self.extra_args),
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"camroll serve exited {self.proc.returncode}; see {log_path}")
            try:
                if httpx.get(f"{self.url}/api/v1/server", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("camroll serve did not become ready in 30 s")

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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh, running ``camroll serve`` with its own data directory."""
    srv = ServerProcess(data=tmp_path / "server-data")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
