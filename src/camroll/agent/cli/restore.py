"""``camroll restore`` (originals back to a folder) and ``camroll verify`` (is this folder backed up?)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from camroll.agent.cli.common import agent_paths, friendly, read_password
from camroll.agent.errors import AgentError
from camroll.units import format_size


def _when(text: str | None, option: str, *, end: bool = False) -> datetime | None:
    """``2024-05-01`` or an ISO 8601 time; a plain date as ``--until`` includes that whole day."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            t = datetime(d.year, d.month, d.day, tzinfo=UTC)
            return t + timedelta(days=1) if end else t
        t = datetime.fromisoformat(text)
    except ValueError:
        raise AgentError(f"{option} {text!r} is not a date. Fix: give it as YYYY-MM-DD "
                         "(or an ISO 8601 time such as 2024-05-01T18:30).") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _pick(items: list[Any], name: str, what: str, listing: str) -> Any:
    found = [i for i in items if i.name == name] or [i for i in items if i.name.casefold() == name.casefold()]
    if len(found) == 1:
        return found[0]
    names = ", ".join(repr(i.name) for i in items[:20]) or "none"
    many = "several" if found else "no"
    raise AgentError(f"The server has {many} {what} named {name!r} (yours: {names}). Fix: use one of those "
                     f"names ({listing}).")


def _allinone_password(paths: Any, name: str) -> str | None:
    """The password ``camroll up`` made for its local user, when this is its agent and ``name`` that user."""
    if paths.allinone is None:
        return None
    try:
        creds = json.loads((paths.allinone.data / "credentials").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(creds, dict) or creds.get("username") != name or not isinstance(creds.get("password"), str):
        return None
    return str(creds["password"])


def _assets(client: Any, params: dict[str, Any]) -> list[Any]:
    from camroll import wire
    from camroll.agent.api import problem_from

    out: list[wire.AssetInfo] = []
    cursor = None
    while True:
        q = {**params, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        resp = client.get(f"{wire.API_PREFIX}/assets", params=q)
        if resp.status_code >= 400:
            raise problem_from(resp)
        page = wire.AssetPage.model_validate_json(resp.content)
        out.extend(page.items)
        cursor = page.next_cursor
        if not cursor:
            return out


def _restore_text(report: Any) -> str:
    from camroll.agent.restore.run import Outcome

    c = {o: report.count(o) for o in Outcome}
    if report.dry_run:
        head = (f"Dry run: {c[Outcome.WOULD_RESTORE]} files ({format_size(report.bytes_of(Outcome.WOULD_RESTORE))}) "
                f"would be restored to {report.dest}. Nothing was written.")
        return head
    lines = [f"Restored {c[Outcome.RESTORED]} files ({format_size(report.bytes_of(Outcome.RESTORED))}) to "
             f"{report.dest}; {c[Outcome.EARLIER_RUN]} were restored by an earlier run, {c[Outcome.ALREADY_THERE]} "
             f"were there already; {c[Outcome.FAILED]} failed."]
    if c[Outcome.RESTORED] + c[Outcome.ALREADY_THERE]:
        lines.append("Every file written was checked against its SHA-256 before it was put in place.")
    from camroll import wire

    for r in report.results:
        if r.outcome is Outcome.FAILED:
            lines.append(f"  failed: {r.entry.shown}: {r.reason}")
        elif r.placed is not None:
            lines.append(f"  {r.entry.shown}: a different file was there; written as {wire.display_name(r.placed)}")
    if c[Outcome.FAILED]:
        lines.append("Run the same command again to retry what failed; what is done is not written again.")
    return "\n".join(lines)


def restore(
    dest: Path = typer.Argument(..., help="The folder to write into (made if missing)."),
    device: str | None = typer.Option(None, "--device", help="Only the files this device backed up."),
    since: str | None = typer.Option(None, "--since", help="Only photos and videos taken on or after this "
                                     "date (YYYY-MM-DD)."),
    until: str | None = typer.Option(None, "--until", help="... taken up to this date, inclusive."),
    album: str | None = typer.Option(None, "--album", help="Only this album's items."),
    from_replica: str | None = typer.Option(None, "--from-replica", help="Read the copies on this replica "
                                            "of the server instead of its primary store."),
    server: str | None = typer.Option(None, "--server", help="The camroll server (default: the one this "
                                      "device logged in to)."),
    user: str | None = typer.Option(None, "--user", "-u", help="Your user name (default: this device's)."),
    password_file: Path | None = typer.Option(None, "--password-file", help="Read the password from this file."),
    workers: int = typer.Option(4, "--workers", min=1, max=32, help="Files downloaded at once."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be restored; write nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Write your originals back under DEST, byte for byte, as DEST/<device>/<the path it recorded>.

    Every file's SHA-256 is checked before it is put in place and its mtime set to the device's.  Nothing
    already under DEST is overwritten, and no link there is followed.  Interrupted?  Run the same command
    again: what is done is not written again, a half-downloaded file resumes.  Restoring needs your
    password (a device's own token can only back up)."""
    from camroll import wire
    from camroll.agent.api import Api, make_client, problem_from
    from camroll.agent.restore.run import Outcome, Restorer, Source, plan
    from camroll.agent.settings.account import server_url
    from camroll.agent.settings.config import load_config

    paths = agent_paths()
    cfg = load_config(paths.config_file)
    url = server or (cfg.server.url if cfg.server else None)
    name = user or (cfg.server.username if cfg.server else None)
    if not url or not name:
        raise AgentError("camroll does not know which server and user to restore from. Fix: camroll restore DEST "
                         "--server URL --user NAME")
    url = server_url(url)
    start, end = _when(since, "--since"), _when(until, "--until", end=True)
    password = _allinone_password(paths, name) if password_file is None and server is None else None
    if password is None:
        password = read_password(password_file)
    with make_client(url, max_connections=workers + 2) as client:
        api = Api(client)
        try:
            session = api.login(name, password)
        except AgentError as exc:
            if getattr(exc, "status", None) in (401, 403):
                raise AgentError(f"The server at {url} did not accept user {name!r} with that password. Fix: "
                                 "check both, or ask the server's admin to reset the password.") from exc
            raise
        client.headers["Authorization"] = f"Bearer {session.token}"
        try:
            params: dict[str, Any] = {"trashed": "false"}
            device_id = None
            if device is not None:
                resp = client.get(f"{wire.API_PREFIX}/devices")
                if resp.status_code >= 400:
                    raise problem_from(resp)
                devices = [wire.DeviceInfo.model_validate(d) for d in resp.json()]
                device_id = params["device_id"] = _pick(devices, device, "device", "see the web UI's devices page").id
            if album is not None:
                resp = client.get(f"{wire.API_PREFIX}/albums")
                if resp.status_code >= 400:
                    raise problem_from(resp)
                albums = [wire.AlbumInfo.model_validate(a) for a in resp.json()]
                params["album_id"] = _pick(albums, album, "album", "see the web UI's albums page").id
            if start is not None:
                params["since"] = start.isoformat()
            if end is not None:
                params["until"] = end.isoformat()
            entries = plan(_assets(client, params), device_id)
            from camroll.agent.cli.files_progress import FileBar, FileLines

            progress: FileBar | FileLines
            if sys.stderr.isatty() and not json_out:
                # The restorer advances the bar itself (bytes as they arrive, a file found done at once).
                progress = FileBar("restoring", lambda r: 0, speed=True)
            else:
                progress = FileLines(lambda n, b: f"{n} files to restore ({format_size(b)})", lambda r: r.entry.shown)
            try:
                report = Restorer(dest, Source(client, from_replica), workers=workers,
                                  progress=progress).run(entries, dry_run=dry_run)
            finally:
                progress.stop()
        finally:
            import contextlib

            import httpx

            with contextlib.suppress(httpx.HTTPError):  # the session expires by itself otherwise
                client.post(f"{wire.API_PREFIX}/auth/logout")
    typer.echo(json.dumps(report.to_json()) if json_out else _restore_text(report))
    if report.count(Outcome.FAILED):
        raise typer.Exit(1)


def verify(
    folders: list[Path] = typer.Argument(None, metavar="[FOLDER]...", help="Folders to check (default: the "
                                         "folders this device backs up)."),
    workers: int = typer.Option(4, "--workers", min=1, max=32, help="Files hashed at once."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Is every photo and video here on the server, byte for byte?

    Hashes every file again (SHA-256; nothing is taken from camroll's cache) and asks the server which
    of those exact contents it holds for you.  Lists what is missing; exits 1 when anything is."""
    from camroll.agent.report.verify import verify_folders
    from camroll.agent.settings.config import load_config

    cfg = load_config(agent_paths().config_file)
    if cfg.server is None:
        cfg.require_server()
    assert cfg.server is not None
    roots = [Path(f) for f in (folders or cfg.folders)]
    if not roots:
        raise AgentError("No folder to verify. Fix: camroll verify FOLDER, or add one with camroll folder add PATH.")
    for r in roots:
        if not r.is_dir():
            raise AgentError(f"{r} is not a folder. Fix: give the folder that holds the photos.")
    progress: Any = None
    if sys.stderr.isatty() and not json_out:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        progress = Progress(TextColumn("verifying"), BarColumn(), MofNCompleteColumn(),
                            console=Console(stderr=True), transient=True)
    result = verify_folders(cfg.server.url, cfg.server.token, roots, cfg.policy, workers=workers, progress=progress)
    if json_out:
        typer.echo(json.dumps(result.to_json()))
    else:
        typer.echo(result.text())
    if result.missing or result.unreadable:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("restore")(friendly(restore, again="camroll restore", work="downloads"))
    app.command("verify")(friendly(verify, again="camroll verify", work="checks"))
