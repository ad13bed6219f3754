"""The agent's one TOML config file: server, device token, folders and policy.

Read with ``tomllib``, validated by pydantic (errors name the key and the fix), written atomically with
mode 0600 because it holds the device token.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from camroll.agent.errors import ConfigError, NotLoggedIn

MIB = 1024 * 1024


class _Strict(BaseModel):
    # A typo in the config must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerConfig(_Strict):
    url: str = Field(min_length=1, description="Base URL of the camroll server, e.g. https://photos.example")
    username: str = ""
    device_id: int
    device_name: str
    token: str = Field(min_length=1, description="Device API token from 'camroll login'.")


class PolicyConfig(_Strict):
    """How and when the agent backs up.  The conditions issue adds battery/network keys here; every
    key has a default so old config files stay valid."""

    # 5 measured faster than 3 against a loopback server on 2 cores (fsync waits overlap) without
    # pushing the server's memory near its limit; 8 did.
    upload_concurrency: int = Field(default=5, ge=1, le=16, description="Uploads in flight at once.")
    hash_workers: int = Field(default=2, ge=1, le=32, description="Threads hashing files.")
    # Bodies are streamed in 1 MiB pieces, so this does not drive memory; larger chunks mean fewer
    # requests and server fsyncs, and more files that go in one request with the file's own digest.
    chunk_size_mib: int = Field(default=64, ge=1, le=1024, description="Size of each upload request.")

    @property
    def chunk_size(self) -> int:
        return self.chunk_size_mib * MIB


class AgentConfig(_Strict):
    server: ServerConfig | None = None
    folders: list[str] = Field(default_factory=list)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)

    def require_server(self) -> ServerConfig:
        if self.server is None:
            raise NotLoggedIn()
        return self.server


_FIXES = {
    "extra_forbidden": "remove it or check its spelling",
    "missing": "add it, or run 'camroll login' again to rewrite the [server] table",
}


def _explain(path: Path, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        fix = _FIXES.get(e["type"], "correct the value")
        parts.append(f"key '{key}': {e['msg']} ({fix})")
    return f"The config file {path} is invalid: " + "; ".join(parts) + f". Fix: edit {path}."


def load_config(path: Path) -> AgentConfig:
    """The config at ``path``; a missing file is an empty config (not logged in, no folders)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return AgentConfig()
    except OSError as exc:
        raise ConfigError(
            f"Cannot read the config file {path}: {exc.strerror}. Fix: check its permissions."
        ) from exc
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"The config file {path} is not valid TOML ({exc}). Fix: correct it, or delete it and run "
            "'camroll login' again."
        ) from exc
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(path, exc)) from exc


def save_config(path: Path, config: AgentConfig) -> None:
    """Write ``config`` to ``path`` atomically (temp file, fsync, rename) with mode 0600."""
    import tomli_w

    data = config.model_dump(mode="json", exclude_none=True)
    text = tomli_w.dumps(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
