"""The agent's commands on the root ``camroll`` app: login, folder, backup, status, settings.

Imports of anything heavy (httpx, rich, the engine) happen inside the commands: ``camroll backup``
with nothing to do must start, scan and exit quickly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from camroll.agent.cli.common import agent_paths, friendly, read_password
from camroll.agent.errors import AgentError
from camroll.agent.paths import AgentPaths


def login(
    url: str = typer.Argument(..., help="The camroll server, e.g. https://photos.example.org"),
    user: str = typer.Option(..., "--user", "-u", help="Your user name on the server."),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="Read the password from this file."),
    device_name: str | None = typer.Option(
        None, "--device-name", help="Name of this device (default: host name)."),
) -> None:
    """Log in to a camroll server and register this device for backups."""
    from camroll.agent.settings.account import register_device, server_url
    from camroll.agent.settings.config import load_config, save_config

    url = server_url(url)
    # This device's own agent, never the all-in-one one that ``camroll up`` points at: logging that one
    # in elsewhere would take it away from its library.
    paths = AgentPaths.default(follow_up=False)
    cfg = load_config(paths.config_file)
    password = read_password(password_file)
    reg = register_device(url, user, password, device_name)
    cfg.server = reg.server
    save_config(paths.config_file, cfg)
    typer.echo(f"Logged in to {reg.server.url} ({reg.info.name} {reg.info.version}) as {user}; this device "
               f"is '{reg.server.device_name}'. Config saved to {paths.config_file}.")
    if not cfg.folders:
        typer.echo("Next: camroll folder add PATH")


folder_app = typer.Typer(help="Choose the folders to back up.", no_args_is_help=True)


@folder_app.command("add")
@friendly
def folder_add(path: Path = typer.Argument(..., help="A folder of photos and videos.")) -> None:
    """Back up this folder (and everything under it)."""
    from camroll.agent.settings.account import add_folder, checked_folder
    from camroll.agent.settings.config import load_config, save_config

    paths = agent_paths()
    cfg = load_config(paths.config_file)
    folder = checked_folder(path)
    if not add_folder(cfg, folder):
        typer.echo(f"{folder} is already backed up.")
        return
    save_config(paths.config_file, cfg)
    typer.echo(f"Added {folder}.")


@folder_app.command("remove")
@friendly
def folder_remove(path: Path = typer.Argument(..., help="A folder added earlier.")) -> None:
    """Stop backing up this folder (files already on the server stay there)."""
    from camroll.agent.settings.config import load_config, save_config

    paths = agent_paths()
    cfg = load_config(paths.config_file)
    s = str(path.expanduser().resolve())
    candidates = [s, str(path)]
    match = next((f for f in cfg.folders if f in candidates), None)
    if match is None:
        listed = ", ".join(cfg.folders) or "none"
        raise AgentError(f"{s} is not one of the backed-up folders ({listed}). "
                         "Fix: see 'camroll folder list'.")
    cfg.folders = [f for f in cfg.folders if f != match]
    save_config(paths.config_file, cfg)
    typer.echo(f"Removed {match}; its files already on the server stay there.")


@folder_app.command("list")
@friendly
def folder_list(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the folders being backed up."""
    import os

    from camroll.agent.settings.config import load_config

    cfg = load_config(agent_paths().config_file)
    if json_out:
        typer.echo(json.dumps(cfg.folders))
        return
    if not cfg.folders:
        typer.echo("No folders yet. Run: camroll folder add PATH")
    for f in cfg.folders:
        typer.echo(f if os.path.isdir(f) else f"{f}  (missing)")


def backup(
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="Retry failed files now instead of at their retry time."),
) -> None:
    """Back up new and changed photos and videos now."""
    from camroll.agent.backup.run import run_backup
    from camroll.agent.log import setup_file_logging
    from camroll.agent.settings.config import load_config

    paths = agent_paths()
    cfg = load_config(paths.config_file)
    cfg.require_server()
    setup_file_logging(paths)
    renderer: Any = None
    if sys.stderr.isatty():
        from rich.console import Console

        from camroll.agent.cli.progress import ProgressRenderer

        renderer = ProgressRenderer(Console(stderr=True))
    try:
        summary = run_backup(paths, cfg, renderer, retry_failed_now=retry_failed)
    finally:
        if renderer is not None:
            renderer.progress.stop()
    if json_out:
        typer.echo(json.dumps(summary.to_json()))
    else:
        from camroll.agent.events import summary_text

        typer.echo(summary_text(summary))
    if summary.stopped_reason:
        if json_out:  # stdout holds the JSON; say why on stderr too
            typer.echo(summary.stopped_reason, err=True)
        raise typer.Exit(2)
    if summary.files_failed:
        raise typer.Exit(1)


def status(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show what is backed up, waiting or failed (from local state; works offline)."""
    from camroll.agent.report.status import get_status, status_text
    from camroll.agent.settings.config import load_config

    paths = agent_paths()
    cfg = load_config(paths.config_file)
    st = get_status(paths, cfg)
    if json_out:
        typer.echo(json.dumps(st.to_json()))
    else:
        typer.echo(status_text(st))
    if not st.logged_in:
        raise typer.Exit(1)


settings_app = typer.Typer(help="Show and change the backup policy.", invoke_without_command=True)


@settings_app.callback()
@friendly
def settings_show(ctx: typer.Context,
                  json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show every backup-policy setting (value, default, meaning), the server, folders and recent changes."""
    if ctx.invoked_subcommand is not None:
        return
    from camroll.agent.settings.config import load_config
    from camroll.agent.settings.user_settings import summary_json

    paths = agent_paths()
    cfg = load_config(paths.config_file)
    data = summary_json(paths, cfg)
    if json_out:
        typer.echo(json.dumps(data))
        return
    from rich.console import Console
    from rich.table import Table

    from camroll.agent.settings.user_settings import describe, format_value, recent_changes

    console = Console(highlight=False)
    s = cfg.server
    console.print(f"Config: {paths.config_file}", markup=False)
    if s is None:
        console.print("Server: not logged in (camroll login URL --user NAME)", markup=False)
    else:
        console.print(f"Server: {s.url} as {s.username or '?'}; this device is '{s.device_name}' "
                      f"(id {s.device_id})", markup=False)
    console.print("Folders: " + (", ".join(cfg.folders) or "none (camroll folder add PATH)"), markup=False)
    table = Table(title="Backup policy (change with: camroll settings set KEY VALUE)", title_justify="left")
    table.add_column("Key", no_wrap=True)
    table.add_column("Value", no_wrap=True)
    table.add_column("Default", no_wrap=True)
    table.add_column("Meaning")
    from rich.text import Text

    for st in describe(cfg):
        changed = st.value != st.default
        table.add_row(Text(st.key), Text(format_value(st.value), style="bold" if changed else ""),
                      Text(format_value(st.default)), Text(st.description))
    console.print(table)
    changes = recent_changes(paths, 5)
    if changes:
        console.print("Recent changes:", markup=False)
        for c in changes:
            when = c.time.astimezone().strftime("%d %b %Y %H:%M")
            console.print(f"  {when}  {c.key}: {format_value(c.old)} -> {format_value(c.new)}", markup=False)


# ignore_unknown_options: "-1" is a (bad) value to explain, not an unknown option.
@settings_app.command("set", context_settings={"ignore_unknown_options": True})
@friendly
def settings_set(key: str = typer.Argument(..., metavar="KEY", help="A policy key (see 'camroll settings')."),
                 value: str = typer.Argument(..., metavar="VALUE",
                                             help="The new value, e.g. true, 20, 2GB, *.jpg,*.heic.")) -> None:
    """Change one backup-policy setting; the change is logged."""
    from camroll.agent.settings.user_settings import format_value, set_setting

    change = set_setting(agent_paths(), key, value)
    if change is None:
        typer.echo(f"{key} is already {value}; nothing changed.")
    else:
        typer.echo(f"{key}: {format_value(change.old)} -> {format_value(change.new)}.")


def register(app: typer.Typer) -> None:
    """login, folder, backup, status and settings."""
    app.command("login")(friendly(login))
    app.add_typer(folder_app, name="folder")
    app.command("backup")(friendly(backup))
    app.command("status")(friendly(status))
    app.add_typer(settings_app, name="settings")
