"""The agent's one TOML config file: server, device token, folders and policy.

Read with ``tomllib``, validated by pydantic (errors name the key and the fix), written atomically with
mode 0600 because it holds the device token.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from camroll.agent.errors import ConfigError, NotLoggedIn
from camroll.units import parse_size

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


_TIME_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


def parse_time_window(text: str) -> tuple[dt.time, dt.time]:
    """``"HH:MM-HH:MM"`` as (start, end).  ``end`` before ``start`` means the window wraps past midnight
    ("22:00-07:00").  Raises ``ValueError`` with a message a person can act on."""
    m = _TIME_WINDOW.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a time window; write HH:MM-HH:MM in 24-hour time, e.g. 22:00-07:00")
    start = dt.time(int(m.group(1)), int(m.group(2)))
    end = dt.time(int(m.group(3)), int(m.group(4)))
    if start == end:
        raise ValueError(f"{text!r} starts and ends at the same time; for any time use none (or leave the key "
                         "out of the file)")
    return start, end


def in_time_window(window: tuple[dt.time, dt.time], t: dt.time) -> bool:
    """Whether ``t`` falls in ``window`` (start included, end excluded; wraps past midnight)."""
    start, end = window
    if start < end:
        return start <= t < end
    return t >= start or t < end


def parse_rate(text: str) -> int:
    """Bytes per second in ``"5MB/s"`` (the ``/s`` is optional; units as in :func:`parse_size`)."""
    body = text.strip()
    if body.lower().endswith("/s"):
        body = body[:-2]
    try:
        n = parse_size(body)
    except ValueError:
        raise ValueError(f"{text!r} is not a rate; write a size per second, e.g. 5MB/s or 500kB/s") from None
    if n <= 0:
        raise ValueError(f"{text!r} is not a rate above zero; for no limit use none (or leave the key out of "
                         "the file)")
    return n


class PolicyConfig(_Strict):
    """How and when the agent backs up.  Every key has a default so old config files stay valid.

    Sizes and rates are stored as the human string that was written ("2GB", "5MB/s"), so the file reads
    the way the person wrote it; the ``*_bytes`` properties give the numbers.  ``agent/policy.py``
    enforces enabled, time_window, min_battery, only_while_charging, pause_on_power_saver, wifi_only and
    allow_metered; ``agent/filepolicy.py`` max_file_size and include/exclude; ``agent/metered.py``
    metered_daily_cap_mb; ``agent/throttle.py`` bandwidth_limit."""

    # 5 measured faster than 3 against a loopback server on 2 cores (fsync waits overlap) without
    # pushing the server's memory near its limit; 8 did.
    upload_concurrency: int = Field(default=5, ge=1, le=16, description="Uploads in flight at once.")
    hash_workers: int = Field(default=2, ge=1, le=32, description="Threads hashing files.")
    # Bodies are streamed in 1 MiB pieces, so this does not drive memory; larger chunks mean fewer
    # requests and server fsyncs, and more files that go in one request with the file's own digest.
    chunk_size_mib: int = Field(default=64, ge=1, le=1024, description="Size of each upload request.")

    enabled: bool = Field(default=True, description="Back up at all; false pauses every backup on this device.")
    wifi_only: bool = Field(default=False, description="Upload only on Wi-Fi or wired networks, never on mobile data.")
    allow_metered: bool = Field(
        default=True, description="Upload on metered connections (mobile data, tethering, metered Wi-Fi).")
    metered_daily_cap_mb: int = Field(
        default=0, ge=0, le=1_000_000,
        description="Most MB uploaded per day on a metered connection; 0 = unlimited (Google Photos offers "
                    "5, 10, 30 or unlimited).")
    min_battery: int = Field(
        default=20, ge=0, le=100, description="Pause when the battery is below this percent (unless charging).")
    only_while_charging: bool = Field(default=False, description="Upload only while plugged in.")
    pause_on_power_saver: bool = Field(default=True, description="Pause while the system's power saver is on.")
    max_file_size: str | None = Field(
        default=None,
        description="Skip files larger than this (e.g. 2GB, 500MiB); unset = no limit.")
    include: list[str] = Field(
        default_factory=list,
        description="Back up only files whose path matches one of these globs (e.g. *.jpg); empty = all.")
    exclude: list[str] = Field(
        default_factory=list,
        description="Never back up files whose path matches one of these globs (e.g. */.trash/*).")
    bandwidth_limit: str | None = Field(
        default=None, description="Most upload speed, e.g. 5MB/s; unset = no limit.")
    time_window: str | None = Field(
        default=None,
        description="Upload only between these local times, HH:MM-HH:MM (may wrap past midnight, e.g. "
                    "22:00-07:00); unset = any time.")

    @field_validator("max_file_size", mode="before")
    @classmethod
    def _size_ok(cls, v: object) -> object:
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)  # a bare number of bytes
        if isinstance(v, str):
            if parse_size(v) <= 0:
                raise ValueError(f"{v!r} is not a size above zero; for no limit use none (or leave the key out "
                                 "of the file)")
            return v.strip()
        return v

    @field_validator("bandwidth_limit")
    @classmethod
    def _rate_ok(cls, v: str | None) -> str | None:
        if v is not None:
            parse_rate(v)
            return v.strip()
        return v

    @field_validator("time_window")
    @classmethod
    def _window_ok(cls, v: str | None) -> str | None:
        if v is not None:
            parse_time_window(v)
            return v.strip()
        return v

    @field_validator("include", "exclude")
    @classmethod
    def _globs_ok(cls, v: list[str]) -> list[str]:
        out = [g.strip() for g in v]
        if any(not g for g in out):
            raise ValueError("an empty glob matches nothing; remove it")
        return out

    @property
    def chunk_size(self) -> int:
        return self.chunk_size_mib * MIB

    @property
    def max_file_size_bytes(self) -> int | None:
        return None if self.max_file_size is None else parse_size(self.max_file_size)

    @property
    def bandwidth_limit_bytes(self) -> int | None:
        """Bytes per second, or None for no limit."""
        return None if self.bandwidth_limit is None else parse_rate(self.bandwidth_limit)

    @property
    def time_window_times(self) -> tuple[dt.time, dt.time] | None:
        return None if self.time_window is None else parse_time_window(self.time_window)


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

    # Only what differs from the defaults is written, so a later release's better defaults reach
    # existing installations instead of being frozen into their config files.
    data = config.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
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
