"""``camroll import takeout``: bring a Google Takeout export into camroll (see docs/IMPORT.md)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

import_app = typer.Typer(help="Import libraries exported from other services.", no_args_is_help=True)


class _Lines:
    """Progress for a pipe or log: one line a second at most (a terminal gets a Rich bar instead)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.last = -10.0
        self.items = 0
        self.done = 0

    def planned(self, items: int, total_bytes: int) -> None:
        self.items = items
        typer.echo(f"{items} photos and videos to import ({total_bytes / 1e6:.1f} MB)", err=True)

    def sent(self, n: int) -> None:
        pass

    def finished(self, result: Any) -> None:
        self.done += 1
        now = self.clock()
        if now - self.last >= 1.0 or self.done == self.items:
            self.last = now
            typer.echo(f"{self.done}/{self.items} {result.outcome.value}: {result.name}", err=True)


class _Bar:
    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 console=Console(stderr=True), transient=True)
        self.task = self.progress.add_task("importing", total=None)
        self.items = 0
        self.done = 0

    def planned(self, items: int, total_bytes: int) -> None:
        self.items = items
        self.progress.update(self.task, total=total_bytes)
        self.progress.start()

    def sent(self, n: int) -> None:
        pass

    def finished(self, result: Any) -> None:
        self.done += 1
        size = result.item.member.size if result.item else 0
        self.progress.update(self.task, advance=size, description=f"{self.done}/{self.items}")


def _text(report: Any) -> str:
    from camroll.agent.imports.run import Outcome

    c = {o: report.count(o) for o in Outcome}
    p = report.plan
    lines = []
    if report.dry_run:
        lines.append(f"Dry run: {c[Outcome.WOULD_IMPORT]} would be imported, {c[Outcome.ALREADY_THERE]} are "
                     f"already on the server, {c[Outcome.EARLIER_RUN]} were imported by an earlier run. "
                     "Nothing was sent.")
    else:
        lines.append(f"Imported {c[Outcome.IMPORTED]}; {c[Outcome.ALREADY_THERE]} already on the server; "
                     f"{c[Outcome.EARLIER_RUN]} imported by an earlier run; {c[Outcome.FAILED]} failed.")
    for r in report.results:
        if r.outcome in (Outcome.FAILED, Outcome.SKIPPED):
            lines.append(f"  {r.outcome.value}: {r.name}: {r.reason}")
    if p is not None:
        for s in p.skipped:
            lines.append(f"  skipped: {s.member.name}: {s.reason.sentence}")
        if p.without_sidecar:
            lines.append(f"{len(p.without_sidecar)} without a sidecar (their own dates are used):")
            lines.extend(f"  {i.name}" for i in p.without_sidecar[:50])
        if p.unused_json:
            lines.append(f"{len(p.unused_json)} JSON files were not used (see --json for the list).")
    for title, names in report.album_members().items():
        lines.append(f"Album {title!r}: {len(names)} items")
    for r in report.refused:
        lines.append(f"  refused in {r.part}: {r.raw_name!r}: {r.reason.sentence}")
    return "\n".join(lines)


def takeout(
    paths: list[Path] = typer.Argument(..., metavar="ARCHIVE_OR_FOLDER...",
                                       help="The export's .zip or .tgz parts (all of them), or its folder."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Match and hash, ask the server what it has, "
                                 "and report; upload and record nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Import a Google Takeout export: photos and videos with their sidecars' dates and places.

    Reads the parts where they are (nothing is extracted), pairs every file with its JSON sidecar,
    and uploads what the server does not have yet.  Run it again after an interruption: what was
    imported is not sent again, and a cut upload resumes."""
    import fcntl

    from camroll.agent.api import Api, make_client
    from camroll.agent.backup.tus import TusClient
    from camroll.agent.cli.common import agent_paths as _paths
    from camroll.agent.errors import AgentError
    from camroll.agent.imports.run import Importer, Outcome, index
    from camroll.agent.imports.state import ImportState
    from camroll.agent.settings.config import load_config

    agent_paths = _paths()
    cfg = load_config(agent_paths.config_file)
    if cfg.server is None and not dry_run:
        cfg.require_server()
    state_path = agent_paths.state_db.parent / "imports.db"
    state_path.parent.mkdir(parents=True, exist_ok=True)
    with open(state_path.with_suffix(".lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AgentError("Another 'camroll import' is running for this device. Fix: wait for it to "
                             "finish (or stop it); this one would send the same files.") from None
        idx = index(paths)
        client = make_client(cfg.server.url, cfg.server.token) if cfg.server else None
        state = ImportState(state_path)
        progress: Any = _Bar() if sys.stderr.isatty() else _Lines()
        try:
            api = Api(client) if client else None
            tus = TusClient(client) if client else None
            report = Importer(idx, state, api=api, tus=tus, dry_run=dry_run, progress=progress).run()
        finally:
            if isinstance(progress, _Bar):
                progress.progress.stop()
            state.close()
            idx.close()
            if client is not None:
                client.close()
    if json_out:
        typer.echo(json.dumps(report.to_json()))
    else:
        typer.echo(_text(report))
    if report.count(Outcome.FAILED):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    from camroll.agent.cli.common import friendly

    import_app.command("takeout")(friendly(takeout, again="camroll import takeout"))
    app.add_typer(import_app, name="import")
