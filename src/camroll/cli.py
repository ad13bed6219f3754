"""The ``camroll`` command: one Typer app; each command is a thin call into ``agent``, ``server``
or ``allinone``.  Heavy imports happen inside the commands so that ``camroll backup`` with nothing
to do starts fast."""

from __future__ import annotations

import typer

from camroll import __version__

app = typer.Typer(
    name="camroll",
    help="Self-hosted photo and video auto-backup: verified, resumable, never silently stuck.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"camroll {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """camroll backs up every photo and video on this device to your own server, verified."""


# What the server part of camroll needs beyond the agent's own dependencies (pip install 'camroll[server]').
SERVER_MODULES = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "PIL", "huey")
SERVER_FIX = "pip install 'camroll[server]'"


def server_part_missing() -> list[str]:
    """The server's libraries this install lacks: all of them on an agent-only install (a phone, a NAS)."""
    import importlib.util

    return [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]


def _agent_only(missing: list[str]) -> None:
    """``up``, ``serve``, ``worker`` and ``admin`` on an agent-only install: a sentence with the fix."""

    def refuse(ctx: typer.Context) -> None:
        typer.echo(f"'camroll {ctx.info_name}' runs a camroll server; this is an agent-only install (it has no "
                   f"{', '.join(missing)}). Fix: {SERVER_FIX} on the machine that keeps the library; this "
                   "device backs up to it with camroll login URL --user NAME.", err=True)
        raise typer.Exit(1)

    extra = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
    for name, what in (("up", "server and agent on this machine"), ("serve", "the camroll server"),
                       ("worker", "the server's background workers"), ("admin", "server administration")):
        app.command(name, context_settings=extra, help=f"Runs {what} (needs {SERVER_FIX}).")(refuse)


def _register() -> None:
    from camroll.agent.cli import app as agent_cli

    missing = server_part_missing()
    if missing:
        agent_cli.register(app)
        _agent_only(missing)
        return
    from camroll import allinone
    from camroll.server import cli as server_cli

    # Listed in --help in this order: the all-in-one first, then the agent, then the server.
    allinone.register(app)
    agent_cli.register(app)
    server_cli.register(app)
    from camroll.server import cli_albums

    cli_albums.register(server_cli.admin_app)


_register()


def main() -> None:
    app()
