"""``camroll doctor --bundle FILE``: a zip a person can attach to a support request.

It holds what explains a stuck backup and nothing private: the config with every secret replaced by
``[redacted]``, the last lines of the agent log, ``status --json``, the doctor's JSON, the settings change
log and versions.  Never file contents; file *paths* appear (in status and the log) because they are
what the person asks about.  Every text is also scrubbed of the device token itself, wherever it shows.
"""

from __future__ import annotations

import json
import platform
import re
import sqlite3
import sys
import tomllib
import zipfile
from collections import deque
from pathlib import Path
from typing import Any

from camroll import __version__
from camroll.agent.paths import AgentPaths
from camroll.agent.report.doctor import DoctorReport

REDACTED = "[redacted]"
LOG_LINES = 500
_SECRET_KEY = re.compile(r"token|secret|passw|api_?key|auth|cookie|credential|private", re.IGNORECASE)
# "key = value" lines whose key looks secret, for a config that is not valid TOML.
_SECRET_LINE = re.compile(r"^(\s*[\w.\"-]*(?:token|secret|passw|api_?key|auth|cookie|credential|private)"
                          r"[\w.\"-]*\s*=\s*).*$", re.IGNORECASE | re.MULTILINE)
# Bearer tokens and passwords inside URLs (https://user:pass@host), wherever they appear.
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)[^/\s@]+@")


def redact_value(value: Any, key: str = "") -> Any:
    """``value`` with every secret-looking key's value replaced (recursively)."""
    if key and _SECRET_KEY.search(key) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, str):
        return scrub(value, ())
    return value


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` without the given secret strings, bearer tokens or passwords in URLs."""
    for s in secrets:
        if s:
            text = text.replace(s, REDACTED)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", text)


def _secrets(raw: str) -> tuple[str, ...]:
    """Every secret-looking value in the config, to scrub from the other files too."""
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError:
        values = (m.group(0).split("=", 1)[1].strip().strip("\"'") for m in _SECRET_LINE.finditer(raw))
        return tuple(v for v in values if len(v) >= 8)
    found: list[str] = []

    def walk(v: Any, key: str = "") -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, str(k))
        elif isinstance(v, list):
            for x in v:
                walk(x, key)
        elif isinstance(v, str) and key and _SECRET_KEY.search(key) and len(v) >= 8:
            found.append(v)

    walk(data)
    return tuple(found)


def redacted_config(raw: str) -> str:
    """The config text with secrets replaced: re-serialised when it is valid TOML, else line by line."""
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError:
        return scrub(_SECRET_LINE.sub(lambda m: m.group(1) + f'"{REDACTED}"', raw), _secrets(raw))
    import tomli_w

    return tomli_w.dumps(redact_value(data))


def _tail(path: Path, n: int) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=n))
    except OSError as exc:
        return f"(no log: {exc.strerror or exc})\n"


def _versions() -> dict[str, Any]:
    import httpx

    return {"camroll": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "machine": platform.machine(), "sqlite": sqlite3.sqlite_version, "httpx": httpx.__version__}


def _status_json(paths: AgentPaths) -> dict[str, Any]:
    try:
        from camroll.agent.report.status import get_status
        from camroll.agent.settings.config import load_config
        from camroll.agent.state.cache import damage

        # get_status would repair a damaged DB (move it aside); a support bundle only reports.
        why = damage(paths.state_db, force_check=True)
        if why is not None:
            return {"error": f"the state database is damaged ({why}); camroll status was not run"}

        return get_status(paths, load_config(paths.config_file)).to_json()
    except Exception as exc:  # the bundle is most wanted when things are broken: record why, go on
        return {"error": f"{type(exc).__name__}: {exc}"}


_README = """camroll support bundle

config.toml         the agent's config; secrets (the device token) replaced by [redacted]
agent.log           the last {lines} lines of the agent's log
status.json         camroll status --json
doctor.json         camroll doctor --json
settings-log.jsonl  every change made with camroll settings set
versions.json       camroll, Python, SQLite and platform versions

No photo or video contents are included; file paths are.
"""


def write_bundle(paths: AgentPaths, dest: Path, report: DoctorReport) -> list[str]:
    """Write the support zip to ``dest`` and return the names of its members."""
    try:
        raw = paths.config_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        raw = ""
    secrets = _secrets(raw)
    from camroll.agent.settings.user_settings import log_path

    try:
        settings_log = log_path(paths).read_text(encoding="utf-8", errors="replace")
    except OSError:
        settings_log = ""
    members = {
        "README.txt": _README.format(lines=LOG_LINES),
        "config.toml": redacted_config(raw) if raw else "# no config file\n",
        "agent.log": _tail(paths.log_dir / "agent.log", LOG_LINES),
        "status.json": json.dumps(redact_value(_status_json(paths)), indent=2),
        "doctor.json": json.dumps(redact_value(report.to_json()), indent=2),
        "settings-log.jsonl": settings_log,
        "versions.json": json.dumps(_versions(), indent=2),
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, text in members.items():
            z.writestr(f"camroll-support/{name}", scrub(text, secrets))
    tmp.replace(dest)
    return list(members)
