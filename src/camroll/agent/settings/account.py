"""Joining a server and choosing folders: the library behind ``camroll login`` and ``camroll folder
add``, also used by ``camroll up`` for its first run."""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass
from pathlib import Path

from camroll import wire
from camroll.agent.errors import AgentError, ProblemError
from camroll.agent.settings.config import AgentConfig, ServerConfig


@dataclass(frozen=True)
class Registration:
    info: wire.ServerInfo
    server: ServerConfig


def server_url(url: str) -> str:
    """``url`` without trailing slash, if it is an http(s) URL; otherwise an error with the fix."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise AgentError(f"'{url}' is not a server URL. Fix: give it with http:// or https://, "
                         "e.g. camroll login https://photos.example.org --user NAME")
    return url


def register_device(url: str, user: str, password: str, device_name: str | None = None,
                    device_platform: str | None = None) -> Registration:
    """Log in as ``user`` at ``url``, check the server is compatible, and register this device.

    Returns the server's description and the ``[server]`` config (holding the new device token)."""
    from camroll.agent.api import Api, check_compatible, make_client

    url = server_url(url)
    name = device_name or socket.gethostname() or "camroll device"
    kind = device_platform or f"{platform.system()} {platform.machine()}".strip()
    with make_client(url) as client:
        api = Api(client)
        info = api.server_info()
        check_compatible(info, url)
        try:
            session = api.login(user, password)
        except ProblemError as exc:
            if exc.status in (401, 403):
                raise AgentError(
                    f"The server at {url} did not accept user '{user}' with that password. "
                    "Fix: check both, or ask the server's admin to reset the password."
                ) from exc
            raise
        device = api.create_device(session.token, name, kind)
    server = ServerConfig(url=url, username=user, device_id=device.id, device_name=device.name,
                          token=device.token)
    return Registration(info, server)


def checked_folder(path: Path) -> Path:
    """``path`` made absolute, if it is a folder camroll can read; otherwise an error with the fix."""
    resolved = path.expanduser().resolve()
    if not resolved.exists():
        raise AgentError(f"The folder {resolved} does not exist. Fix: check the path.")
    if not resolved.is_dir():
        raise AgentError(f"{resolved} is a file, not a folder. Fix: give the folder that holds it.")
    if not os.access(resolved, os.R_OK | os.X_OK):
        raise AgentError(f"camroll cannot read the folder {resolved}. Fix: check its permissions.")
    return resolved


def add_folder(config: AgentConfig, path: Path) -> bool:
    """Add a checked folder to ``config``; False if it was there already."""
    folder = str(checked_folder(path))
    if folder in config.folders:
        return False
    config.folders = [*config.folders, folder]
    return True
