"""A Typer app with only the agent's commands, for CliRunner tests."""

from __future__ import annotations

import typer

from camroll.agent.cli import app as agent_cli


def agent_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    agent_cli.register(app)
    return app
