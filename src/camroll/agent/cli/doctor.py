"""``camroll doctor`` and ``camroll reset-cache``: thin commands over :mod:`camroll.agent.report.doctor`,
:mod:`camroll.agent.report.bundle` and :mod:`camroll.agent.state.cache`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from camroll.agent.cli.common import agent_paths, friendly

if TYPE_CHECKING:
    from camroll.agent.report.doctor import DoctorReport

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def doctor(
    json_out: bool = typer.Option(False, "--json", help="Print {checks: [{name, status, message, fix}], ok} as JSON."),
    bundle: Path | None = typer.Option(
        None, "--bundle", help="Also write a support zip here (config without secrets, recent log, status and "
                               "doctor output; never photo contents)."),
    timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="Seconds to wait for the server."),
) -> None:
    """Check everything a backup needs and say what to fix (exit 1 if any check fails)."""
    from camroll.agent.report.doctor import run_doctor, summary_line

    paths = agent_paths()
    report = run_doctor(paths, timeout=timeout)
    if json_out:
        typer.echo(json.dumps(report.to_json()))
    else:
        _print_report(report)
        typer.echo(summary_line(report))
    if bundle is not None:
        from camroll.agent.report.bundle import write_bundle

        write_bundle(paths, bundle, report)
        typer.echo(f"Support bundle written to {bundle} (secrets redacted; no photo or video contents).",
                   err=True)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: DoctorReport) -> None:
    """One line per check; on a terminal in colour and wrapped to its width, otherwise plain and unwrapped
    (logs and pipes keep long paths whole)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    width = max(len(c.name) for c in report.checks)
    if not console.is_terminal:
        for c in report.checks:
            typer.echo(f"{c.status.upper():<4}  {c.name:<{width}}  {c.message}")
            if c.fix:
                typer.echo(f"{'':<4}  {'':<{width}}  Fix: {c.fix}")
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for c in report.checks:
        text = Text(c.message)
        if c.fix:
            text.append(f"\nFix: {c.fix}")
        grid.add_row(Text(c.status.upper(), style=_STYLE[c.status]), Text(c.name), text)
    console.print(grid)


def reset_cache(
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    json_out: bool = typer.Option(False, "--json", help="Print the rebuild's summary as JSON."),
) -> None:
    """Rebuild the local state database from your folders and the server, uploading nothing the server has.

    The old database is kept as state.db.bak-<time>. Every file is read and hashed again (slow for big rolls).
    """
    from camroll.agent.backup.reset import reset_cache as run_reset
    from camroll.agent.backup.reset import reset_text
    from camroll.agent.log import setup_file_logging
    from camroll.agent.settings.config import load_config

    paths = agent_paths()
    cfg = load_config(paths.config_file)
    cfg.require_server()
    if not yes:
        typer.confirm("Move the state database aside and rebuild it? Every file is hashed again; nothing already "
                      "on the server is uploaded again.", abort=True, err=True)
    setup_file_logging(paths)
    renderer: Any = None
    if sys.stderr.isatty():
        from rich.console import Console

        from camroll.agent.cli.progress import ProgressRenderer

        renderer = ProgressRenderer(Console(stderr=True))
    try:
        result = run_reset(paths, cfg, renderer)
    finally:
        if renderer is not None:
            renderer.progress.stop()
    if json_out:
        typer.echo(json.dumps({"old_file": str(result.old_file) if result.old_file else None,
                               "summary": result.summary.to_json()}))
    else:
        typer.echo(reset_text(result))
    if result.summary.stopped_reason:
        raise typer.Exit(2)
    if result.summary.files_failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(friendly(doctor))
    app.command("reset-cache")(friendly(reset_cache))
