"""``python -m camroll.agent``: the agent's commands alone, without loading the server's CLI (useful on
devices that only back up, and the quickest start-up)."""

from __future__ import annotations

import typer

from camroll.agent.cli import app as agent_cli

app = typer.Typer(name="camroll-agent", help="camroll's backup agent.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def _root() -> None:
    """camroll backup agent: log in, choose folders, back up, see status."""


agent_cli.register(app)

if __name__ == "__main__":
    app()
