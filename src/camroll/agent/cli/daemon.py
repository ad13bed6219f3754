"""``camroll agent``: run the backup continuously, and install it as a service that starts at login."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

from camroll.agent.cli.common import friendly
from camroll.agent.errors import AgentError
from camroll.agent.paths import HOME_ENV, AgentPaths

if TYPE_CHECKING:
    from camroll.agent.service.daemon import DaemonOptions
    from camroll.agent.service.install import Platform

agent_app = typer.Typer(
    help="Back up new photos and videos as they appear; install that as a service.",
    invoke_without_command=True,
)

_PLATFORMS = ("systemd", "launchd", "termux")


def daemon_options(rescan_interval: float, condition_interval: float, debounce: float, retry_base: float,
                   heartbeat_interval: float) -> DaemonOptions:
    from camroll.agent.service.daemon import DaemonOptions

    for name, v in (("--rescan-interval", rescan_interval), ("--condition-interval", condition_interval),
                    ("--retry-base", retry_base), ("--heartbeat-interval", heartbeat_interval)):
        if v <= 0:
            raise AgentError(f"{name} must be more than 0 seconds (got {v:g}). Fix: give a positive number.")
    if debounce < 0:
        raise AgentError(f"--debounce must be 0 or more seconds (got {debounce:g}). Fix: give e.g. 2.")
    return DaemonOptions(rescan_interval=rescan_interval, condition_interval=condition_interval,
                         debounce=debounce, stable=min(1.0, debounce), retry_base=retry_base,
                         retry_cap=max(retry_base, DaemonOptions.retry_cap), heartbeat_interval=heartbeat_interval,
                         lock_retry=min(DaemonOptions.lock_retry, rescan_interval))


def run_daemon(paths: AgentPaths, options: DaemonOptions, *, quiet: bool, verbose: bool) -> None:
    """Run the loop in the foreground until SIGTERM or Ctrl-C (shared with ``camroll up --watch``).  The
    caller holds ``lock.agent_lock`` on the state database: one loop per state."""
    from camroll.agent.log import setup_file_logging, setup_stderr_logging
    from camroll.agent.service.daemon import Daemon, stop_on_signals

    setup_file_logging(paths)
    setup_stderr_logging(logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING)

    def say(line: str) -> None:
        typer.echo(line)

    daemon = Daemon(paths, options, say=None if quiet else say)
    with stop_on_signals(daemon):
        daemon.run()
    if not quiet:
        typer.echo("Stopped; unfinished uploads resume when the agent runs again.")


@agent_app.callback()
@friendly
def agent(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing per pass (the log file still has it)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print every file's outcome on stderr."),
    rescan_interval: float = typer.Option(
        900.0, "--rescan-interval", metavar="SECONDS",
        help="Rescan every folder this often, in case a change was missed."),
    condition_interval: float = typer.Option(
        60.0, "--condition-interval", metavar="SECONDS", hidden=True,
        help="While paused by the policy, re-check battery, network and power saver this often."),
    debounce: float = typer.Option(
        2.0, "--debounce", metavar="SECONDS", hidden=True,
        help="Start a pass this long after the last change in the folders."),
    retry_base: float = typer.Option(
        30.0, "--retry-base", metavar="SECONDS", hidden=True,
        help="First retry after the server was unreachable or full (doubles up to 15 minutes)."),
    heartbeat_interval: float = typer.Option(
        300.0, "--heartbeat-interval", metavar="SECONDS", hidden=True,
        help="Heartbeat period until the server names its own."),
) -> None:
    """Run the backup continuously: new photos are backed up within seconds, and backup pauses and
    resumes by itself with the policy (battery, network, switched off) and the server.  Stop with
    Ctrl-C or SIGTERM; unfinished uploads resume next time."""
    if ctx.invoked_subcommand is not None:
        return
    paths = AgentPaths.default()
    opts = daemon_options(rescan_interval, condition_interval, debounce, retry_base, heartbeat_interval)
    from camroll.agent.service.lock import agent_lock

    with agent_lock(paths.state_db):
        _announce_and_run(paths, opts, quiet=quiet, verbose=verbose)


def _announce_and_run(paths: AgentPaths, opts: DaemonOptions, *, quiet: bool, verbose: bool) -> None:
    if not quiet:
        from camroll.agent.errors import ConfigError
        from camroll.agent.settings.config import load_config

        try:
            where = ", ".join(load_config(paths.config_file).folders) or "no folders yet"
        except ConfigError:
            # The loop says what is wrong and waits for the file to be fixed (a service must not die).
            where = "the folders in the config once it is fixed"
        typer.echo(f"camroll agent: watching {where}; log in {paths.log_dir / 'agent.log'}. Ctrl-C stops.")
    run_daemon(paths, opts, quiet=quiet, verbose=verbose)


def _platform(forced: str | None) -> Platform:
    from camroll.agent.service.install import detect_platform

    if forced is None:
        return detect_platform()
    if forced not in _PLATFORMS:
        raise AgentError(f"--platform {forced!r} is not one of {', '.join(_PLATFORMS)}. Fix: pick one of them.")
    return cast("Platform", forced)


def _by_hand(commands: list[list[str]]) -> str:
    return " && ".join(" ".join(c) for c in commands)


@agent_app.command("install")
@friendly
def install(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be written and run; change nothing."),
    print_only: bool = typer.Option(False, "--print", help="Print the service file and do nothing else."),
    platform: str | None = typer.Option(None, "--platform", hidden=True,
                                        help="systemd, launchd or termux instead of this machine's."),
    unit_dir: Path | None = typer.Option(None, "--unit-dir", hidden=True,
                                         help="Write the service file here instead of the usual place."),
) -> None:
    """Start 'camroll agent' at login and keep it running (systemd on Linux, launchd on macOS)."""
    from camroll.agent.service.install import install_plan, run_commands, write_service_file

    plan = install_plan(_platform(platform), camroll_home=os.environ.get(HOME_ENV), unit_dir=unit_dir)
    if plan.path is None:
        typer.echo(plan.hint)
        if plan.platform == "unsupported":
            raise typer.Exit(1)
        return
    if print_only:
        typer.echo(plan.content.decode(), nl=False)
        return
    if dry_run:
        typer.echo(f"Would write {plan.path}:")
        typer.echo(plan.content.decode(), nl=False)
        for cmd in plan.commands:
            typer.echo(f"Would run: {' '.join(cmd)}")
        return
    write_service_file(plan)
    typer.echo(f"Wrote {plan.path}.")
    results = run_commands(plan.commands)
    failed = next((r for r in results if not r.ok), None)
    if failed is not None:
        raise AgentError(f"The service file is written, but '{' '.join(failed.command)}' failed ({failed.output}). "
                         f"Fix: run by hand: {_by_hand(plan.commands)}")
    typer.echo("The agent runs now and starts at every login. See what it does with: camroll status")
    if plan.platform == "systemd":
        typer.echo("To keep it running while you are logged out (a server without a desktop): "
                   "loginctl enable-linger $USER")


@agent_app.command("uninstall")
@friendly
def uninstall(
    platform: str | None = typer.Option(None, "--platform", hidden=True),
    unit_dir: Path | None = typer.Option(None, "--unit-dir", hidden=True),
) -> None:
    """Stop the agent service and remove it (the config, state and backups stay)."""
    from camroll.agent.service.install import run_commands, uninstall_plan

    plan = uninstall_plan(_platform(platform), unit_dir=unit_dir)
    if plan.path is None:
        typer.echo(plan.hint)
        return
    if not plan.path.exists():
        typer.echo(f"Not installed ({plan.path} does not exist).")
        return
    results = run_commands(plan.commands[:1])
    plan.path.unlink()
    results += run_commands(plan.commands[1:]) if all(r.ok for r in results) else []
    typer.echo(f"Removed {plan.path}.")
    failed = next((r for r in results if not r.ok), None)
    if failed is not None:
        raise AgentError(f"'{' '.join(failed.command)}' failed ({failed.output}); the agent may still be "
                         f"running until the next login. Fix: run by hand: {_by_hand(plan.commands)}")
    typer.echo("The agent service is stopped and removed.")


@agent_app.command("status")
@friendly
def service_status(
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    platform: str | None = typer.Option(None, "--platform", hidden=True),
    unit_dir: Path | None = typer.Option(None, "--unit-dir", hidden=True),
) -> None:
    """Whether the agent service is installed and running (the backup itself: camroll status)."""
    from camroll.agent.service.install import installed_state

    state = installed_state(_platform(platform), unit_dir=unit_dir)
    if json_out:
        typer.echo(json.dumps(state))
        return
    if state["path"] is None:
        typer.echo("No agent service on this platform ('camroll agent install' says how to run it).")
    elif not state["installed"]:
        typer.echo("The agent service is not installed. Install it with: camroll agent install")
    else:
        extra = ", ".join(f"{k}: {state[k]}" for k in ("enabled", "active") if state[k] is not None)
        typer.echo(f"The agent service is installed ({state['path']}" + (f"; {extra}" if extra else "") + ").")
    typer.echo("What the backup is doing: camroll status")


def register(app: typer.Typer) -> None:
    app.add_typer(agent_app, name="agent")
