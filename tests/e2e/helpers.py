"""Helpers for end-to-end tests: a logged-in agent home driven through the real CLI in subprocesses."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from support.server import camroll_cmd, run_camroll

from camroll.agent.settings.config import load_config, save_config

# What a device token may call (server/api/deps.py, BackupCaller).
BACKUP_PATHS = ("/me", "/server", "/assets/check", "/devices/current/heartbeat")


@dataclass
class Agent:
    home: Path
    server: Any  # tests/conftest.py's ServerProcess
    password: str
    user: str = "ann"
    _session: str | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"CAMROLL_HOME": str(self.home)}

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_camroll(*args, env=self.env, check=check, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(camroll_cmd(*args), env={**os.environ, **self.env}, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def login(self, url: str | None = None) -> None:
        pw = self.home.parent / f"{self.user}-agent.pw"
        pw.write_text(self.password + "\n")
        self.run("login", url or self.server.url, "--user", self.user, "--password-file", str(pw),
                 "--device-name", "e2e-device")

    def backup(self, *, check: bool = True) -> dict[str, Any]:
        r = self.run("backup", "--json", check=check)
        return dict(json.loads(r.stdout))

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.run("status", "--json").stdout))

    def set_policy(self, **values: int) -> None:
        cfg = load_config(self.home / "config.toml")
        for k, v in values.items():
            setattr(cfg.policy, k, v)
        save_config(self.home / "config.toml", cfg)

    def set_server_url(self, url: str) -> None:
        cfg = load_config(self.home / "config.toml")
        assert cfg.server is not None
        cfg.server.url = url
        save_config(self.home / "config.toml", cfg)

    def token(self) -> str:
        cfg = load_config(self.home / "config.toml")
        assert cfg.server is not None
        return cfg.server.token

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """Call the API as the agent would (its device token) where a device token may, and as the user
        (a login session) everywhere else: the library, devices and alerts need a session."""
        backup = path in BACKUP_PATHS or path.startswith("/uploads")
        token = self.token() if backup else self.session()
        return httpx.request(method, f"{self.server.url}/api/v1{path}",
                             headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw)

    def session(self) -> str:
        if self._session is None:
            self._session = self.server.login(self.user, self.password)
        return self._session

    def server_has(self, data_or_sha: bytes | str) -> int | None:
        sha = data_or_sha if isinstance(data_or_sha, str) else hashlib.sha256(data_or_sha).hexdigest()
        r = self.api("POST", "/assets/check", json={"items": [{"sha256": sha}]})
        r.raise_for_status()
        present = r.json()["present"]
        return int(present[sha]) if sha in present else None


def sha_of_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
