"""The agent installs alone (a Termux phone, a Raspberry Pi, a NAS): a fresh venv with camroll and none of
the server's libraries backs up to a real server, and the server commands say what to install instead of
failing with a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.media import jpeg_bytes, write
from support.server import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
SERVER_ONLY = {"fastapi", "uvicorn", "sqlalchemy", "alembic", "pillow", "pillow-heif", "huey", "apprise", "boto3",
               "psycopg", "wsgidav", "argon2-cffi"}

pytestmark = pytest.mark.slow


def _run(*argv: str | Path, env: dict[str, str] | None = None, check: bool = True,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})})
    if check and out.returncode != 0:
        raise AssertionError(f"{argv} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


def test_the_agent_alone_installs_and_backs_up(server: ServerProcess, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    # The wheel pip builds from a checkout (in its own build environment, as on a fresh device), from a
    # copy so that no build/ folder of the checkout can leave stale modules in it.
    tree = tmp_path / "checkout"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, tree)
    [wheel] = wheels.glob("camroll-*.whl")
    venv = tmp_path / "agent-venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    installed = {p["name"].lower() for p in json.loads(
        _run(venv / "bin" / "python", "-m", "pip", "list", "--format", "json").stdout)}
    assert "camroll" in installed and "httpx" in installed
    assert not installed & SERVER_ONLY, installed & SERVER_ONLY

    camroll = venv / "bin" / "camroll"
    env = {"CAMROLL_HOME": str(tmp_path / "home"), "PYTHONPATH": ""}
    refused = _run(camroll, "serve", "--data", tmp_path / "x", env=env, check=False)
    assert refused.returncode == 1 and "agent-only install" in refused.stderr, refused.stderr
    assert "pip install 'camroll[server]'" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "x").exists()

    pw = tmp_path / "pw"
    pw.write_text(server.add_user("ann") + "\n")
    _run(camroll, "login", server.url, "--user", "ann", "--password-file", pw, "--device-name", "pi", env=env)
    photos = tmp_path / "photos"
    for i in range(3):
        write(photos / f"IMG_{i}.JPG", jpeg_bytes(900 + i))
    _run(camroll, "folder", "add", photos, env=env)
    summary = json.loads(_run(camroll, "backup", "--json", env=env).stdout)
    assert (summary["files_uploaded"], summary["files_failed"]) == (3, 0), summary
    verified = json.loads(_run(camroll, "verify", "--json", env=env).stdout)
    assert verified["ok"] and verified["backed_up"] == 3, verified
