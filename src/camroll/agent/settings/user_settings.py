"""`camroll settings`: list, describe and change the [policy] keys of the agent's config.

Every change is validated by :class:`~camroll.agent.settings.config.PolicyConfig` itself (so a value that
``settings set`` accepts is one the config file accepts), written atomically with ``save_config`` and
appended to a change log: JSON lines next to the config file (``settings-log.jsonl``), one
``{"time", "key", "old", "new"}`` object per change, so "backup was turned off on 3 Nov at 14:02" can be
shown later.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from camroll.agent.errors import AgentError
from camroll.agent.paths import AgentPaths
from camroll.agent.settings.config import AgentConfig, PolicyConfig, load_config, save_config

LOG_NAME = "settings-log.jsonl"

_TRUE = {"true", "on", "yes", "1"}
_FALSE = {"false", "off", "no", "0"}
# Words that clear a key that may be unset (sizes, rates, the time window).
_UNSET = {"", "none", "unset", "unlimited", "no limit"}

# How each key's VALUE is written on the command line, and a good example for error messages.
_KINDS: dict[str, tuple[str, str]] = {
    "upload_concurrency": ("int", "5"),
    "hash_workers": ("int", "2"),
    "chunk_size_mib": ("int", "64"),
    "enabled": ("bool", "true"),
    "wifi_only": ("bool", "true"),
    "allow_metered": ("bool", "false"),
    "metered_daily_cap_mb": ("int", "30"),
    "min_battery": ("int", "20"),
    "only_while_charging": ("bool", "true"),
    "pause_on_power_saver": ("bool", "true"),
    "max_file_size": ("size", "2GB"),
    "include": ("globs", "*.jpg,*.heic"),
    "exclude": ("globs", "*/.trash/*,*.tmp"),
    "bandwidth_limit": ("rate", "5MB/s"),
    "time_window": ("time_window", "22:00-07:00"),
}


class SettingError(AgentError):
    """A key or value `camroll settings set` cannot accept; the message names the key, the bad value and
    a good example."""


@dataclass(frozen=True)
class Setting:
    key: str
    value: Any  # JSON form: bool, int, str, list[str] or None
    default: Any
    description: str
    kind: str
    example: str

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "default": self.default, "description": self.description,
                "kind": self.kind}


@dataclass(frozen=True)
class Change:
    time: dt.datetime  # aware, UTC
    key: str
    old: Any
    new: Any

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time.isoformat(timespec="seconds"), "key": self.key, "old": self.old,
                "new": self.new}


def keys() -> list[str]:
    """Every policy key, in the order of the model."""
    return list(PolicyConfig.model_fields)


def _defaults() -> dict[str, Any]:
    return PolicyConfig().model_dump(mode="json")


def describe(cfg: AgentConfig) -> list[Setting]:
    """Every policy key with its value, default and meaning."""
    values = cfg.policy.model_dump(mode="json")
    defaults = _defaults()
    out = []
    for key, field in PolicyConfig.model_fields.items():
        kind, example = _KINDS[key]
        out.append(Setting(key=key, value=values[key], default=defaults[key],
                           description=field.description or "", kind=kind, example=example))
    return out


def format_value(value: Any) -> str:
    """A value as it is typed on the command line."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) if value else "(none)"
    return str(value)


def _bounds(key: str) -> tuple[int | None, int | None]:
    lo = hi = None
    for m in PolicyConfig.model_fields[key].metadata:
        lo = getattr(m, "ge", lo)
        hi = getattr(m, "le", hi)
    return lo, hi


def _bad(key: str, text: str, why: str) -> SettingError:
    example = _KINDS[key][1]
    why = why.rstrip(".")
    return SettingError(f"Cannot set {key} to {text!r}: {why}. "
                        f"Fix: give a value like this: camroll settings set {key} {example}")


def _parse_bool(key: str, text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise _bad(key, text, "it is not a yes/no value (write true/false, on/off or yes/no)")


def _parse_int(key: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        lo, hi = _bounds(key)
        rng = f" from {lo} to {hi}" if lo is not None and hi is not None else ""
        raise _bad(key, text, f"it is not a whole number{rng}") from None


def _parse_optional(key: str, text: str) -> str | None:
    return None if text.strip().lower() in _UNSET else text.strip()


def _parse_globs(key: str, text: str) -> list[str]:
    if text.strip().lower() in _UNSET:
        return []
    return [g.strip() for g in text.split(",") if g.strip()]


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "bool": _parse_bool,
    "int": _parse_int,
    "size": _parse_optional,
    "rate": _parse_optional,
    "time_window": _parse_optional,
    "globs": _parse_globs,
}


def _why(err: ValidationError) -> str:
    msgs = []
    for e in err.errors():
        msg = str(e["msg"])
        msg = msg.removeprefix("Value error, ")
        msgs.append(msg[0].lower() + msg[1:] if msg else msg)
    return "; ".join(msgs)


def parse(key: str, text: str) -> Any:
    """``text`` as the value of policy ``key``, validated by the config model; raises
    :class:`SettingError` naming the key, the value and a good example."""
    if key not in _KINDS:
        raise SettingError(f"There is no setting {key!r}. Fix: use one of: {', '.join(keys())}.")
    value = _PARSERS[_KINDS[key][0]](key, text)
    try:
        checked = PolicyConfig.model_validate({key: value})
    except ValidationError as exc:
        raise _bad(key, text, _why(exc)) from None
    return checked.model_dump(mode="json")[key]


def log_path(paths: AgentPaths) -> Path:
    return paths.config_file.parent / LOG_NAME


def set_setting(paths: AgentPaths, key: str, text: str, now: dt.datetime | None = None) -> Change | None:
    """Set policy ``key`` from ``text``, save the config atomically and log the change.  Returns the
    change, or None when the key already had that value (nothing written)."""
    new = parse(key, text)
    cfg = load_config(paths.config_file)
    old = cfg.policy.model_dump(mode="json")[key]
    if old == new:
        return None
    data = cfg.policy.model_dump(mode="json")
    data[key] = new
    cfg.policy = PolicyConfig.model_validate(data)
    save_config(paths.config_file, cfg)
    change = Change(time=(now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC), key=key, old=old, new=new)
    _append(log_path(paths), change)
    return change


def _append(path: Path, change: Change) -> None:
    line = json.dumps(change.to_json(), separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))  # one write of one short line: appends do not interleave
        os.fsync(fd)
    finally:
        os.close(fd)


def recent_changes(paths: AgentPaths, limit: int | None = 10) -> list[Change]:
    """The last ``limit`` changes (all with None), oldest first.  Lines that cannot be read (a torn last
    line, a hand edit) are skipped."""
    try:
        text = log_path(paths).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            d = json.loads(line)
            t = dt.datetime.fromisoformat(d["time"])
            out.append(Change(time=t if t.tzinfo else t.replace(tzinfo=dt.UTC), key=str(d["key"]),
                              old=d.get("old"), new=d.get("new")))
        except (ValueError, KeyError, TypeError):
            continue
    if limit is not None:
        out = out[-limit:] if limit > 0 else []
    return out


def switched_off_at(paths: AgentPaths) -> dt.datetime | None:
    """When backup was last switched off (``enabled`` set to false), from the settings log."""
    off = next((c for c in reversed(recent_changes(paths, None)) if c.key == "enabled" and c.new is False), None)
    return None if off is None else off.time


def summary_json(paths: AgentPaths, cfg: AgentConfig, changes: int = 5) -> dict[str, Any]:
    """Everything `camroll settings --json` prints (never the device token)."""
    s = cfg.server
    return {
        "config_file": str(paths.config_file),
        "server": None if s is None else {"url": s.url, "username": s.username, "device_id": s.device_id,
                                          "device_name": s.device_name},
        "folders": cfg.folders,
        "policy": {st.key: st.to_json() for st in describe(cfg)},
        "recent_changes": [c.to_json() for c in recent_changes(paths, changes)],
    }
