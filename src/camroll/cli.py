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


def _register() -> None:
    from camroll import allinone
    from camroll.agent.cli import app as agent_cli
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
