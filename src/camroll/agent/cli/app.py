"""Every agent command on one Typer app (the root ``camroll`` app or ``python -m camroll.agent``)."""

from __future__ import annotations

import typer

from camroll.agent.cli import commands, daemon, doctor, problems, restore
from camroll.agent.imports import cli as import_cli


def register(app: typer.Typer) -> None:
    commands.register(app)
    daemon.register(app)
    doctor.register(app)
    problems.register(app)
    restore.register(app)
    import_cli.register(app)
