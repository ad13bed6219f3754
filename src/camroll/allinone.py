"""``camroll up``: server and agent on one machine, the first thing a new user runs.

This is the one module that knows both sides.  It talks to the server the way any agent does (a
``camroll serve`` child process on loopback, over HTTP) so that what a new user tries is exactly what
a multi-device set-up runs; it only reaches into the server's library to find the data directory and
to create the first user.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from camroll.agent.errors import AgentError

if TYPE_CHECKING:
    from rich.console import Console

    from camroll.agent.events import Summary
    from camroll.agent.paths import AgentPaths

LAYOUT_NOTE = "server/ (database, blobs/, uploads/), agent/ (config, state), credentials"


class UpError(AgentError):
    """A problem that stops ``camroll up``; the message names the fix."""


@dataclass(frozen=True)
class UpLayout:
    """Where the all-in-one set-up keeps everything, under one root folder."""

    root: Path

    @property
    def server_data(self) -> Path:
        return self.root / "server"

    @property
    def agent_home(self) -> Path:
        return self.root / "agent"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials"

    @property
    def example(self) -> Path:
        return self.root / "example-photos"

    @property
    def server_log(self) -> Path:
        return self.root / "server.log"


def default_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("camroll"))


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _pick_listen(listen: str) -> tuple[str, int, bool]:
    """The host and port to serve on; a busy default port is replaced by a free one."""
    host, _, port_s = listen.rpartition(":")
    if not host or not port_s.isdigit():
        raise UpError(f"--listen {listen!r} is not HOST:PORT. Fix: use e.g. --listen 127.0.0.1:8420")
    port = int(port_s)
    if _port_free(host, port):
        return host, port, False
    with socket.socket() as s:
        s.bind((host, 0))
        return host, int(s.getsockname()[1]), True


@contextlib.contextmanager
def running_server(layout: UpLayout, host: str, port: int) -> Iterator[str]:
    """Run ``camroll serve`` on ``layout``'s data until the block ends; yields its URL."""
    import httpx

    layout.root.mkdir(parents=True, exist_ok=True)
    url = f"http://{host}:{port}"
    with open(layout.server_log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "camroll", "serve", "--data", str(layout.server_data),
             "--listen", f"{host}:{port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise UpError(f"The camroll server stopped at start (exit code {proc.returncode}). "
                              f"Fix: see the last lines of {layout.server_log}.")
            try:
                if httpx.get(f"{url}/api/v1/server", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise UpError(f"The camroll server did not answer within 60 s. Fix: see {layout.server_log}.")
            time.sleep(0.05)
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _add_local_user(layout: UpLayout, username: str, password: str) -> None:
    """Create the all-in-one admin user directly in the server's database (the running server has
    already migrated it)."""
    from camroll.server import migrate
    from camroll.server.context import build
    from camroll.server.services.accounts import UserExists, add_user
    from camroll.server.settings import Settings

    ctx = build(Settings.for_data_dir(layout.server_data))
    try:
        migrate.upgrade(ctx.engine)
        add_user(ctx, username, password, is_admin=True)
    except UserExists:
        raise UpError(f"The server in {layout.server_data} already has a user '{username}', but its password "
                      f"is not in {layout.credentials}. Fix: use another --data folder, or add the "
                      "credentials file back.") from None
    finally:
        ctx.engine.dispose()


def _first_run(layout: UpLayout, url: str) -> str:
    """Create the local user (random password kept in ``credentials``, mode 0600) and register this
    device.  Returns the user name."""
    from camroll.agent.account import register_device
    from camroll.agent.config import load_config, save_config
    from camroll.agent.paths import AgentPaths

    username = "".join(c for c in getpass.getuser() if c.isalnum() or c in "._-") or "me"
    if layout.credentials.exists():
        creds = json.loads(layout.credentials.read_text())
        username, password = creds["username"], creds["password"]
    else:
        password = secrets.token_urlsafe(18)
        fd = os.open(layout.credentials, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"username": username, "password": password, "url": url}, f)
        try:
            _add_local_user(layout, username, password)
        except BaseException:
            layout.credentials.unlink(missing_ok=True)
            raise
    paths = AgentPaths.in_dir(layout.agent_home)
    cfg = load_config(paths.config_file)
    cfg.server = register_device(url, username, password, f"{socket.gethostname()} (camroll up)").server
    save_config(paths.config_file, cfg)
    return username


def _point_agent(layout: UpLayout, url: str, folders: list[Path]) -> None:
    """Make the agent's config name this run's server URL and folders."""
    from camroll.agent.account import add_folder
    from camroll.agent.config import load_config, save_config
    from camroll.agent.paths import AgentPaths

    paths = AgentPaths.in_dir(layout.agent_home)
    cfg = load_config(paths.config_file)
    assert cfg.server is not None
    changed = False
    if cfg.server.url != url:
        # The port may differ between runs; the server (and so the device token) is the same.
        cfg.server.url = url
        changed = True
    for folder in folders:
        changed = add_folder(cfg, folder) or changed
    if changed:
        save_config(paths.config_file, cfg)


def up(
    folders: list[Path] = typer.Argument(None, help="Folders of photos and videos to back up."),
    example: bool = typer.Option(False, "--example", help="Generate an example camera roll and back it up."),
    data: Path | None = typer.Option(None, "--data", help="Where to keep the library (default: the user data dir)."),
    listen: str = typer.Option("127.0.0.1:8420", "--listen", help="Address for the server (loopback by default)."),
    json_out: bool = typer.Option(False, "--json", help="Print the backup summary as JSON on stdout."),
    watch: bool = typer.Option(False, "--watch",
                               help="After the first pass, keep the server running and back up new photos as "
                                    "they appear (like 'camroll agent') until Ctrl-C."),
) -> None:
    """Run a camroll server and back up FOLDERs into it, all on this machine."""
    _up(list(folders or []), example, data, listen, json_out, watch)


def _up(folders: list[Path], example: bool, data: Path | None, listen: str, json_out: bool,
        watch: bool = False) -> None:
    from rich.console import Console

    from camroll.agent.config import load_config
    from camroll.agent.engine import run_backup
    from camroll.agent.paths import AgentPaths
    from camroll.agent.progress import ProgressRenderer

    layout = UpLayout((data or default_root()).expanduser().resolve())
    console = Console(stderr=True)
    paths = AgentPaths.in_dir(layout.agent_home)
    if example:
        from camroll.example import make_example_roll

        with console.status("Writing an example camera roll..."):
            make_example_roll(layout.example)
        folders.append(layout.example)
    if not folders and not load_config(paths.config_file).folders:
        raise UpError("No folder to back up. Fix: give one, e.g. 'camroll up ~/Pictures', "
                      "or try 'camroll up --example'.")
    from camroll.agent.account import checked_folder

    folders = [checked_folder(f) for f in folders]
    host, port, moved = _pick_listen(listen)
    if moved:
        console.print(f"Port {listen.rpartition(':')[2]} is busy; serving on {host}:{port} instead.")
    with running_server(layout, host, port) as url:
        if load_config(paths.config_file).server is None:
            username = _first_run(layout, url)
            console.print(f"Created user '{username}' on the local server; its password is in "
                          f"{layout.credentials}.")
        _point_agent(layout, url, folders)
        cfg = load_config(paths.config_file)
        console.print(f"Backing up {', '.join(cfg.folders)} to {url}")
        renderer = ProgressRenderer(console) if console.is_terminal else None
        try:
            summary = run_backup(paths, cfg, renderer)
        finally:
            if renderer is not None:
                renderer.progress.stop()
        _report(summary, layout, json_out, watch, url)
        if watch:
            _watch(paths, console, json_out)
            return
    if summary.stopped_reason:
        if not json_out:
            typer.echo(summary.stopped_reason, err=True)
        raise typer.Exit(2)
    if summary.files_failed:
        raise typer.Exit(1)


def _report(summary: Summary, layout: UpLayout, json_out: bool, watch: bool, url: str) -> None:
    from camroll.agent.progress import summary_text

    if json_out:
        out = summary.to_json()
        out["library"] = str(layout.server_data)
        typer.echo(json.dumps(out), nl=True)
        return
    typer.echo(summary_text(summary))
    typer.echo(f"Your library: {layout.server_data} (originals under blobs/, named by SHA-256).")
    typer.echo(f"Everything camroll keeps is under {layout.root}: {LAYOUT_NOTE}.")
    if watch:
        typer.echo(f"See it in a browser at {url} (the user name and password are in {layout.credentials}).")
    else:
        typer.echo("Run the same command again any time: only new and changed files are sent. Add --watch to "
                   "keep going and to browse the library in a web browser while it runs.")


def _watch(paths: AgentPaths, console: Console, json_out: bool) -> None:
    """The ``camroll agent`` loop against the server child until Ctrl-C or SIGTERM; the caller's
    ``running_server`` block then stops the server."""
    from camroll.agent.cli_daemon import run_daemon
    from camroll.agent.daemon import DaemonOptions

    console.print("Watching for new photos and videos; Ctrl-C stops (the server stops with it).")
    # The first pass just ran: the loop's own start pass only confirms it, quickly.
    run_daemon(paths, DaemonOptions(), quiet=json_out, verbose=False)
    console.print("Stopped watching; stopping the server.")


def register(app: typer.Typer) -> None:
    from camroll.agent.cli import friendly

    app.command("up")(friendly(up, again="camroll up"))
