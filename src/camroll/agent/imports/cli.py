"""``camroll import takeout``: bring a Google Takeout export into camroll (see docs/IMPORT.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

import_app = typer.Typer(help="Import libraries exported from other services.", no_args_is_help=True)


class _ImportProgress:
    """The importer's progress calls (``sent``: bytes of an upload, counted when the item finishes)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def planned(self, items: int, total_bytes: int) -> None:
        self.inner.planned(items, total_bytes)

    def sent(self, n: int) -> None:
        pass

    def finished(self, result: Any) -> None:
        self.inner.finished(result)


def _progress() -> _ImportProgress:
    from camroll.agent.cli.files_progress import FileBar, FileLines

    if sys.stderr.isatty():
        return _ImportProgress(FileBar("importing", lambda r: r.item.member.size if r.item else 0))
    return _ImportProgress(FileLines(lambda n, b: f"{n} photos and videos to import ({b / 1e6:.1f} MB)",
                                     lambda r: r.name))


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
            lines.append(f"{len(p.unused_json)} sidecar files (JSON, XMP) were not used (see --json for the list).")
    for title, names in report.album_members().items():
        lines.append(f"Album {title!r}: {len(names)} items")
    for r in report.refused:
        lines.append(f"  refused in {r.part}: {r.raw_name!r}: {r.reason.sentence}")
    return "\n".join(lines)


def _run(indexer: Any, dry_run: bool, json_out: bool, what: str) -> None:
    """Index, then import under the one-import-at-a-time lock, and report (shared by every import kind)."""
    from camroll.agent.api import Api, make_client
    from camroll.agent.backup.tus import TusClient
    from camroll.agent.cli.common import agent_paths as _paths
    from camroll.agent.errors import AgentError
    from camroll.agent.imports.run import Importer, Outcome
    from camroll.agent.imports.state import ImportState
    from camroll.agent.service.lock import exclusive, holder
    from camroll.agent.settings.config import load_config

    agent_paths = _paths()
    cfg = load_config(agent_paths.config_file)
    if cfg.server is None and not dry_run:
        cfg.require_server()
    state_path = agent_paths.state_db.parent / "imports.db"
    state_path.parent.mkdir(parents=True, exist_ok=True)
    def busy(pid: int | None) -> AgentError:
        return AgentError(f"Another 'camroll import' ({holder(pid)}) is running for this device. Fix: wait for "
                          f"it to finish (or stop it); this one would send the same {what}.")

    with exclusive(state_path.with_suffix(".lock"), busy):
        idx = indexer()
        client = make_client(cfg.server.url, cfg.server.token) if cfg.server else None
        state = ImportState(state_path)
        progress = _progress()
        try:
            api = Api(client) if client else None
            tus = TusClient(client) if client else None
            report = Importer(idx, state, api=api, tus=tus, dry_run=dry_run, progress=progress).run()
        finally:
            progress.inner.stop()
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


def takeout(
    paths: list[Path] = typer.Argument(..., metavar="ARCHIVE_OR_FOLDER...",
                                       help="The export's .zip or .tgz parts (all of them), or its folder."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Match and hash, ask the server what it has, "
                                 "and report; upload and record nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Import a Google Takeout export: photos and videos with their sidecars' dates, places, captions,
    favourites and albums.

    Reads the parts where they are (nothing is extracted), pairs every file with its JSON sidecar,
    and uploads what the server does not have yet.  Run it again after an interruption: what was
    imported is not sent again, and a cut upload resumes."""
    from camroll.agent.imports.run import index

    _run(lambda: index(paths), dry_run, json_out, "files")


def folder(
    paths: list[Path] = typer.Argument(..., metavar="FOLDER_OR_ARCHIVE...",
                                       help="The exported folder(s), or .zip/.tgz files of them."),
    albums_from_folders: bool = typer.Option(False, "--albums-from-folders", help="Make each folder an album "
                                             "of its name (OneDrive, Dropbox and Amazon exports keep albums "
                                             "as folders)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Hash, ask the server what it has, and report; "
                                 "upload and record nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Import a plain export (iCloud, Amazon Photos, OneDrive, Dropbox, Flickr, a photo manager's folder),
    with the capture time, place, caption and rating of XMP sidecars (IMG_1.JPG.xmp or IMG_1.xmp).

    The file's own EXIF wins where it has any; a 5-star rating marks a favourite.  Resumable like
    'camroll import takeout': run it again after an interruption."""
    from camroll.agent.imports.run import index_folder

    _run(lambda: index_folder(paths, albums_from_folders=albums_from_folders), dry_run, json_out, "files")


def register(app: typer.Typer) -> None:
    from camroll.agent.cli.common import friendly

    import_app.command("takeout")(friendly(takeout, again="camroll import takeout"))
    import_app.command("folder")(friendly(folder, again="camroll import folder"))
    app.add_typer(import_app, name="import")
