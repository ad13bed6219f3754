"""``camroll up``: server and agent on one machine, the first thing a new user runs.

This is the one module that knows both sides.  It talks to the server the way any agent does (a
``camroll serve`` child process on loopback, over HTTP) so that what a new user tries is exactly what
a multi-device set-up runs; it only reaches into the server's library to find the data directory, to
see whether a server already runs on it (one library, one server), and to create the first user.

One folder, one ``camroll up`` at a time (``uplock``), with one exception: while ``camroll up --watch``
runs, a one-shot ``camroll up`` backs up through the watching run's server.  The agent's config always
names the library's live server, so a running agent reloading it never loses its server.
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
from urllib.parse import urlsplit

import typer

from camroll import uplock
from camroll.agent.errors import AgentError
from camroll.server.settings import DEFAULT_LISTEN

if TYPE_CHECKING:
    from rich.console import Console

    from camroll.agent.events import Summary
    from camroll.agent.paths import AgentPaths
    from camroll.server.lock import RunningServer

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

    @property
    def up_lock(self) -> Path:
        return self.root / "up.lock"


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


def _remembered_port(url: str | None) -> int | None:
    """The port of the loopback URL the agent used last time, to serve on the same one again."""
    if not url:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    return port if parts.hostname in ("127.0.0.1", "localhost") else None


def _pick_listen(listen: str | None, remembered: int | None) -> tuple[str, int, str | None]:
    """The host and port to serve on, and a note when it is not the one asked for.  Without
    ``--listen`` the port of the last run is kept (the agent's URL and the browser's bookmark stay
    right), else the default; a busy port is replaced by a free one."""
    if listen is not None:
        host, _, port_s = listen.rpartition(":")
        if not host or not port_s.isdigit():
            raise UpError(f"--listen {listen!r} is not HOST:PORT. Fix: use e.g. --listen {DEFAULT_LISTEN}")
        wanted = [(int(port_s), f"Port {port_s} is busy")]
    else:
        host = DEFAULT_LISTEN.rpartition(":")[0]
        default_port = int(DEFAULT_LISTEN.rpartition(":")[2])
        wanted = [(remembered, f"Port {remembered} (used last time) is busy")] if remembered else []
        wanted.append((default_port, f"Port {default_port} is busy"))
    for port, _ in wanted:
        if port is not None and _port_free(host, port):
            return host, port, None
    with socket.socket() as s:
        s.bind((host, 0))
        port = int(s.getsockname()[1])
    return host, port, f"{wanted[0][1]}; serving on {host}:{port} instead."


def _server_said(log: Path, since: int) -> str:
    """The server's own reason when it refused to start (its last 'Error:' line after ``since``, where
    this start's output begins in the log it appends to), for the message."""
    try:
        with open(log, "rb") as f:
            f.seek(max(since, os.fstat(f.fileno()).st_size - 8192))
            tail = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line.strip() for line in tail if line.startswith("Error: ")]
    return f": {errors[-1][len('Error: '):].rstrip('.')}" if errors else ""


def _wait_ready(url: str, proc: subprocess.Popen[bytes] | None, log: Path, timeout: float = 60) -> None:
    """Until ``url`` answers as a camroll server; ``proc`` (our child) dying first is an error."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise _ChildExited(proc.returncode)
        try:
            if httpx.get(f"{url}/api/v1/server", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise UpError(f"The camroll server at {url} did not answer within {timeout:g} s. Fix: see {log}.")
        time.sleep(0.05)


class _ChildExited(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


@contextlib.contextmanager
def running_server(layout: UpLayout, host: str, port: int) -> Iterator[str]:
    """Run ``camroll serve`` on ``layout``'s data until the block ends; yields its URL.  A child that stops
    at start because another server took the library meanwhile raises :class:`_LostRace`."""
    from camroll.server import lock

    layout.root.mkdir(parents=True, exist_ok=True)
    url = f"http://{host}:{port}"
    with open(layout.server_log, "ab") as log:
        started_at = log.tell()  # only this start's lines tell why it stopped
        proc = subprocess.Popen(
            [sys.executable, "-m", "camroll", "serve", "--data", str(layout.server_data),
             "--listen", f"{host}:{port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        try:
            _wait_ready(url, proc, layout.server_log)
        except _ChildExited as exc:
            other = lock.running(layout.server_data)
            if other is not None and other.url:
                raise _LostRace(other) from None
            said = _server_said(layout.server_log, started_at)
            raise UpError(f"The camroll server stopped at start (exit code {exc.code}){said}. "
                          f"Fix: see the last lines of {layout.server_log}.") from None
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class _LostRace(Exception):
    def __init__(self, other: RunningServer) -> None:
        self.other = other


@dataclass(frozen=True)
class ServerChoice:
    """The server this run backs up to: ``url``, and ``how`` it came to be used (a sentence, or None when
    this run started it)."""

    url: str
    how: str | None = None


@contextlib.contextmanager
def library_server(layout: UpLayout, listen: str | None, remembered: int | None, console: Console,
                   ) -> Iterator[ServerChoice]:
    """The library's server for this run: the one already running on it (a ``camroll serve`` started
    by hand), else one this run starts and stops.  Never a second server on the same library."""
    from camroll.server import lock

    other = lock.running(layout.server_data)
    if other is None or not other.url:
        host, port, note = _pick_listen(listen, remembered)
        if note:
            console.print(note)
        try:
            with running_server(layout, host, port) as url:
                yield ServerChoice(url)
            return
        except _LostRace as race:
            other = race.other
    assert other.url is not None
    _wait_ready(other.url, None, layout.server_log)
    yield ServerChoice(other.url, f"Using the camroll server already running on this library "
                                  f"(process {other.pid}, {other.url}); it keeps running afterwards.")


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
    from camroll.agent.paths import AgentPaths
    from camroll.agent.settings.account import register_device
    from camroll.agent.settings.config import load_config, save_config

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
    """Make the agent's config name the library's live server and this run's folders."""
    from camroll.agent.paths import AgentPaths
    from camroll.agent.settings.account import add_folder
    from camroll.agent.settings.config import load_config, save_config

    paths = AgentPaths.in_dir(layout.agent_home)
    cfg = load_config(paths.config_file)
    assert cfg.server is not None
    changed = False
    if cfg.server.url != url:
        # Only ever towards the library's one live server (see library_server), so a running agent that
        # reloads the config still reaches its server.  The server, and so the device token, is the same.
        cfg.server.url = url
        changed = True
    for folder in folders:
        changed = add_folder(cfg, folder) or changed
    if changed:
        save_config(paths.config_file, cfg)


def _remember(layout: UpLayout, console: Console) -> None:
    """Mark the agent home as this folder's, and point the agent commands (status, problems, why, doctor)
    at it unless this device has an agent of its own or ``$CAMROLL_HOME`` says otherwise."""
    from camroll.agent.paths import ALLINONE_FILE, HOME_ENV, AgentPaths, AllInOne, pointer_file, write_allinone

    info = AllInOne(layout.root, layout.agent_home)
    write_allinone(layout.agent_home / ALLINONE_FILE, info)
    see = f"CAMROLL_HOME={layout.agent_home} camroll status"
    home = os.environ.get(HOME_ENV)
    if home:
        if Path(home).expanduser().resolve() != layout.agent_home:
            console.print(f"CAMROLL_HOME is set, so camroll status and doctor look at {home}; for this "
                          f"library's backup run: {see}")
        return
    own = AgentPaths.platform()
    if own.config_file.exists():
        console.print(f"camroll status and doctor show this device's own agent ({own.config_file}); for this "
                      f"library's backup run: {see}")
        return
    write_allinone(pointer_file(own), info)


def _refuse_server_layout(layout: UpLayout) -> None:
    from camroll.server.datadir import holds_library

    if holds_library(layout.root):
        raise UpError(
            f"{layout.root} holds a server library made by 'camroll serve --data {layout.root}'; camroll up keeps "
            f"its library in a server/ folder beside its agent, so it will not use this one. Fix: to back up "
            f"this device into that library, run 'camroll serve --data {layout.root}', then 'camroll login URL "
            f"--user NAME' and 'camroll folder add PATH'; or give camroll up another --data folder.")


@dataclass
class _Seat:
    """How this run takes part: ``guest_of`` is the watching ``camroll up`` whose server it uses."""

    held: uplock.Held | None = None
    guest_of: uplock.UpRun | None = None


@contextlib.contextmanager
def _take_seat(layout: UpLayout, watch: bool, console: Console) -> Iterator[_Seat]:
    """One ``camroll up`` per folder at a time, with one exception: while a watching run keeps its server,
    a one-shot run backs up through that server (their passes take turns on the pass lock)."""
    told: set[int | None] = set()
    while True:
        try:
            with uplock.hold(layout.up_lock, watch=watch) as held:
                yield _Seat(held=held)
            return
        except uplock.UpBusy as busy:
            other = busy.other
        if other.watch:
            if watch:
                raise UpError(
                    f"camroll up --watch is already running on {layout.root} (process {other.pid}, serving "
                    f"{other.url or 'soon'}); it backs up new photos by itself. Fix: use that one; to add a "
                    f"folder to it, run 'camroll up FOLDER' without --watch; to restart it, stop it first "
                    f"(kill {other.pid}).")
            if other.url:
                yield _Seat(guest_of=other)
                return
        elif other.pid not in told:
            console.print(f"Waiting for the camroll up in process {other.pid} to finish (it stops its server "
                          "when its backup ends)...")
            told.add(other.pid)
        time.sleep(0.25)


def up(
    folders: list[Path] = typer.Argument(None, help="Folders of photos and videos to back up."),
    example: bool = typer.Option(False, "--example", help="Generate an example camera roll and back it up."),
    data: Path | None = typer.Option(None, "--data", help="Where to keep the library (default: the user data dir)."),
    listen: str | None = typer.Option(
        None, "--listen", help=f"Address for the server (default: the port of the last run, else {DEFAULT_LISTEN})."),
    json_out: bool = typer.Option(False, "--json", help="Print the backup summary as JSON on stdout."),
    watch: bool = typer.Option(False, "--watch",
                               help="After the first pass, keep the server running and back up new photos as "
                                    "they appear (like 'camroll agent') until Ctrl-C."),
) -> None:
    """Run a camroll server and back up FOLDERs into it, all on this machine."""
    _up(list(folders or []), example, data, listen, json_out, watch)


def _up(folders: list[Path], example: bool, data: Path | None, listen: str | None, json_out: bool,
        watch: bool = False) -> None:
    from rich.console import Console

    from camroll.agent.paths import AgentPaths
    from camroll.agent.service.lock import agent_lock
    from camroll.agent.settings.config import load_config

    layout = UpLayout((data or default_root()).expanduser().resolve())
    _refuse_server_layout(layout)
    console = Console(stderr=True)
    paths = AgentPaths.in_dir(layout.agent_home)
    if not folders and not example and not load_config(paths.config_file).folders:
        raise UpError("No folder to back up. Fix: give one, e.g. 'camroll up ~/Pictures', "
                      "or try 'camroll up --example'.")
    from camroll.agent.settings.account import checked_folder

    folders = [checked_folder(f) for f in folders]
    with contextlib.ExitStack() as stack:
        seat = stack.enter_context(_take_seat(layout, watch, console))
        if watch:
            # Taken before anything starts: a `camroll agent` loop on the same state is refused with its pid.
            stack.enter_context(agent_lock(paths.state_db))
        if example:
            from camroll.example import make_example_roll

            with console.status("Writing an example camera roll..."):
                make_example_roll(layout.example)
            folders.append(layout.example)
        if seat.guest_of is not None:
            assert seat.guest_of.url is not None
            _wait_ready(seat.guest_of.url, None, layout.server_log)
            choice = ServerChoice(seat.guest_of.url, f"camroll up --watch is running on this library (process "
                                                     f"{seat.guest_of.pid}); backing up through its server.")
        else:
            cfg = load_config(paths.config_file)
            remembered = _remembered_port(cfg.server.url if cfg.server else None)
            choice = stack.enter_context(library_server(layout, listen, remembered, console))
            assert seat.held is not None
            seat.held.set_url(choice.url)
        if choice.how:
            console.print(choice.how)
        if listen is not None and choice.how:
            console.print(f"(--listen {listen} is not used: one library has one server.)")
        summary = _backup(layout, paths, choice.url, folders, console)
        _report(summary, layout, json_out, watch, choice.url)
        if watch:
            _watch(paths, console, json_out)
            return
    if summary.stopped_reason:
        if not json_out:
            typer.echo(summary.stopped_reason, err=True)
        raise typer.Exit(2)
    if summary.files_failed:
        raise typer.Exit(1)


def _backup(layout: UpLayout, paths: AgentPaths, url: str, folders: list[Path], console: Console) -> Summary:
    """Log in on the first run, point the agent at ``url`` and the folders, and run one pass (after the
    pass another process runs on the same state, if any: passes take turns)."""
    from camroll.agent.backup.run import run_backup
    from camroll.agent.cli.progress import ProgressRenderer
    from camroll.agent.service.lock import PassBusy
    from camroll.agent.settings.config import load_config

    if load_config(paths.config_file).server is None:
        username = _first_run(layout, url)
        console.print(f"Created user '{username}' on the local server; its password is in "
                      f"{layout.credentials}.")
    _point_agent(layout, url, folders)
    _remember(layout, console)
    cfg = load_config(paths.config_file)
    console.print(f"Backing up {', '.join(cfg.folders)} to {url}")
    told: set[int | None] = set()
    while True:
        renderer = ProgressRenderer(console) if console.is_terminal else None
        try:
            return run_backup(paths, cfg, renderer)
        except PassBusy as busy:
            if busy.pid not in told:
                console.print(f"Waiting for the backup pass running in process {busy.pid} to finish...")
                told.add(busy.pid)
        finally:
            if renderer is not None:
                renderer.progress.stop()
        time.sleep(0.5)


def _report(summary: Summary, layout: UpLayout, json_out: bool, watch: bool, url: str) -> None:
    from camroll.agent.cli.progress import summary_text

    if json_out:
        out = summary.to_json()
        out["library"] = str(layout.server_data)
        out["server_url"] = url
        typer.echo(json.dumps(out), nl=True)
        return
    typer.echo(summary_text(summary))
    typer.echo(f"Your library: {layout.server_data} (originals under blobs/, named by SHA-256).")
    typer.echo(f"Everything camroll keeps is under {layout.root}: {LAYOUT_NOTE}.")
    if watch:
        typer.echo(f"See it in a browser at {url} (the user name and password are in {layout.credentials}).")
    else:
        typer.echo("Run the same command again any time: only new and changed files are sent. Add --watch to "
                   "keep going and to browse the library in a web browser while it runs. 'camroll status' and "
                   "'camroll doctor' tell how the backup is doing.")


def _watch(paths: AgentPaths, console: Console, json_out: bool) -> None:
    """The ``camroll agent`` loop against the server child until Ctrl-C or SIGTERM; the caller's
    ``running_server`` block then stops the server."""
    from camroll.agent.cli.daemon import run_daemon
    from camroll.agent.service.daemon import DaemonOptions

    console.print("Watching for new photos and videos; Ctrl-C stops (the server stops with it).")
    # The first pass just ran: the loop's own start pass only confirms it, quickly.
    run_daemon(paths, DaemonOptions(), quiet=json_out, verbose=False)
    console.print("Stopped watching; stopping the server.")


def register(app: typer.Typer) -> None:
    from camroll.agent.cli.common import friendly

    app.command("up")(friendly(up, again="camroll up"))
