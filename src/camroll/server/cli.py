"""``camroll serve`` and ``camroll admin ...``.  Imports stay inside the commands: ``camroll`` must
start fast for the agent commands that share this CLI."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from camroll.units import plural

if TYPE_CHECKING:
    from camroll.server.context import Context

admin_app = typer.Typer(help="Administer the server: users, their backup alerts, background jobs.",
                        no_args_is_help=True)
user_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
notify_app = typer.Typer(
    help="Where each user's backup alerts go (stalled or silent devices, quota at 90% and 100%): "
         "apprise URLs such as ntfy://ntfy.sh/TOPIC or mailto://USER:PASSWORD@gmail.com.",
    no_args_is_help=True)
admin_app.add_typer(user_app, name="user")
admin_app.add_typer(notify_app, name="notify")

DATA_HELP = ("The folder of the camroll library, as given to 'camroll serve' or 'camroll up' (whose library is in "
             "its server/ part); default: $CAMROLL_DATA, else the per-user data directory.")


def _fail(message: str) -> NoReturn:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _size(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    from camroll.units import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        _fail(f"{option}: {exc}.")


def _library(data: Path | None, command: str, *, may_create: bool = False) -> tuple[Path, bool]:
    """The server data dir that ``--data`` (or $CAMROLL_DATA, or the default) means, and whether it is a
    new library.  Without ``may_create`` a folder with no library is refused with the fix; with it, only a
    new or empty folder may become one (see datadir.py)."""
    from camroll.server.datadir import Found, locate
    from camroll.server.settings import resolve_data_dir

    try:
        where = locate(resolve_data_dir(data))
    except OSError as exc:
        _fail(f"cannot read data directory {exc.filename}: {exc.strerror}. Pass a readable one with --data DIR.")
    if where.found is Found.OTHER or (where.found is Found.NEW and not may_create):
        _fail(where.refusal(command=command))
    try:
        where.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"cannot use data directory {where.data_dir}: {exc.strerror}. Pass a writable one with --data DIR.")
    return where.data_dir, where.found is Found.NEW


def _context(data: Path | None, command: str, *, may_create: bool = False) -> Context:
    from camroll.server import migrate
    from camroll.server.context import build
    from camroll.server.settings import Settings

    data_dir, new = _library(data, command, may_create=may_create)
    if new:
        typer.echo(f"Started a new camroll library in {data_dir}.", err=True)
    try:
        settings = Settings.for_data_dir(data_dir)
    except ValueError as exc:
        _fail(f"{exc}.")
    ctx = build(settings)
    try:
        migrate.upgrade(ctx.engine)
    except Exception as exc:
        _fail(f"cannot open the server database ({settings.database_url}): {exc}. "
              "Check --data / CAMROLL_DATABASE_URL.")
    return ctx


def serve(
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    listen: str = typer.Option("127.0.0.1:8420", "--listen", help="Address to listen on, HOST:PORT."),
    max_file_size: str = typer.Option("100GB", "--max-file-size", help="Largest file accepted, e.g. 100GB."),
    upload_expiry: float = typer.Option(
        24.0, "--upload-expiry", help="Hours an unfinished upload is kept after its last byte."),
    name: str | None = typer.Option(None, "--name", help="Server name shown to clients (default: the hostname)."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request."),
    min_client_version: str | None = typer.Option(
        None, "--min-client-version", hidden=True, help="Refuse agents older than this version (tests)."),
    accept_other_files: bool = typer.Option(
        False, "--accept-other-files", envvar="CAMROLL_ACCEPT_OTHER_FILES",
        help="Also store files that are not a known photo or video type (kept as 'other files', no thumbnail)."),
    stall_minutes: float = typer.Option(
        60.0, "--stall-minutes", envvar="CAMROLL_STALL_MINUTES",
        help="Alert when a device has files waiting and no progress (or is paused by a blocker) this long."),
    silence_hours: float = typer.Option(
        24.0, "--silence-hours", envvar="CAMROLL_SILENCE_HOURS",
        help="Alert when a device that sent heartbeats has sent none for this long."),
    heartbeat_interval: int = typer.Option(
        300, "--heartbeat-interval", envvar="CAMROLL_HEARTBEAT_INTERVAL",
        help="Seconds between heartbeats that agents are told to keep."),
    stall_check_interval: float = typer.Option(
        60.0, "--stall-check-interval", envvar="CAMROLL_STALL_CHECK_INTERVAL",
        help="Seconds between checks for stalled or silent devices and full quotas."),
) -> None:
    """Run the camroll server."""
    from camroll.server.run import parse_listen
    from camroll.server.run import serve as run_server
    from camroll.server.settings import Settings

    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        _fail(str(exc))
    if upload_expiry <= 0:
        _fail("--upload-expiry must be a positive number of hours, e.g. 24.")
    for value, option, example in ((stall_minutes, "--stall-minutes", "60"), (silence_hours, "--silence-hours", "24"),
                                   (heartbeat_interval, "--heartbeat-interval", "300"),
                                   (stall_check_interval, "--stall-check-interval", "60")):
        if value <= 0:
            _fail(f"{option} must be a positive number, e.g. {example}.")
    limit = _size(max_file_size, "--max-file-size")
    assert limit is not None
    overrides: dict[str, object] = {
        "max_file_size": limit, "upload_expiry_seconds": upload_expiry * 3600,
        "stall_seconds": stall_minutes * 60, "silence_seconds": silence_hours * 3600,
        "heartbeat_interval_seconds": heartbeat_interval, "stall_check_seconds": stall_check_interval,
        "accept_other_files": accept_other_files,
    }
    if name:
        overrides["name"] = name
    if min_client_version:
        overrides["min_client_version"] = min_client_version
    data_dir, new = _library(data, "camroll serve", may_create=True)
    try:
        settings = Settings.for_data_dir(data_dir, **overrides)
    except ValueError as exc:
        _fail(f"{exc}.")
    from camroll.server.lock import ServerRunning, hold, local_url

    url = local_url(host, port)
    try:
        with hold(data_dir, url):
            _check_port(host, port)
            if new:
                typer.echo(f"No camroll library in {data_dir} yet: starting a new one.", err=True)
            run_server(settings, host, port, access_log=access_log)
    except ServerRunning as exc:
        other = exc.other
        stop = f" (kill {other.pid})" if other.pid is not None else ""
        _fail(f"a camroll server is already running on the library in {data_dir} ({other.describe()}); one "
              f"library is served by one server. Fix: use that one, or stop it first{stop}.")


def _check_port(host: str, port: int) -> None:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            _fail(f"cannot listen on {host}:{port}: {exc.strerror}. "
                  "Stop whatever uses it or pick another address with --listen HOST:PORT.")


def _read_password(password_file: Path | None) -> str:
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot read password file {password_file}: {exc.strerror}.")
        lines = text.splitlines()
        password = lines[0] if lines else ""
    else:
        if not sys.stdin.isatty():
            _fail("no terminal to ask for a password; pass --password-file FILE.")
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        _fail("the password is empty; choose a non-empty password.")
    return password


@user_app.command("add")
def user_add(
    username: str = typer.Argument(..., help="Login name."),
    admin: bool = typer.Option(False, "--admin", help="Make the user an administrator."),
    quota: str | None = typer.Option(None, "--quota", help="Storage quota, e.g. 15GB (default: unlimited)."),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="Read the password from the first line of this file."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """Create a user account."""
    username = username.strip()
    if not username or len(username) > 100:
        _fail("the username must be 1 to 100 characters.")
    quota_bytes = _size(quota, "--quota")
    ctx = _context(data, "camroll admin user add", may_create=True)
    from camroll.server.repositories import users
    from camroll.server.services.accounts import UserExists, add_user

    with ctx.db() as db:
        if users.by_name(db, username) is not None:
            _fail(f"a user named {username!r} already exists; pick another name.")
    password = _read_password(password_file)
    try:
        user = add_user(ctx, username, password, is_admin=admin, quota_bytes=quota_bytes)
    except UserExists:
        _fail(f"a user named {username!r} already exists; pick another name.")
    from camroll.units import format_size

    limit = format_size(quota_bytes) if quota_bytes is not None else "unlimited"
    typer.echo(f"Added user {user.username} (id {user.id}{', admin' if admin else ''}, quota {limit}).")


@user_app.command("list")
def user_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """List user accounts with their usage."""
    ctx = _context(data, "camroll admin user list")
    from camroll.server.services.accounts import list_users

    people = list_users(ctx)
    if as_json:
        import json

        typer.echo(json.dumps([u.model_dump() for u in people], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    from camroll.units import format_size

    table = Table("id", "username", "admin", "used", "quota")
    for u in people:
        table.add_row(str(u.id), u.username, "yes" if u.is_admin else "", format_size(u.used_bytes),
                      format_size(u.quota_bytes) if u.quota_bytes is not None else "unlimited")
    Console().print(table)


@user_app.command("set")
def user_set(
    username: str = typer.Argument(..., help="Login name."),
    quota: str | None = typer.Option(None, "--quota",
                                     help="New storage quota, e.g. 20GB, or 'unlimited'."),
    admin: bool | None = typer.Option(None, "--admin/--no-admin", help="Grant or remove administrator rights."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """Change a user's quota or administrator flag (works while the server runs)."""
    if quota is None and admin is None:
        _fail("nothing to change; give --quota SIZE|unlimited and/or --admin/--no-admin.")
    ctx = _context(data, "camroll admin user set")
    from camroll.server.services.accounts import update_user
    from camroll.units import format_size

    quota_bytes = None
    if quota is not None and quota.strip().lower() not in ("unlimited", "none"):
        quota_bytes = _size(quota, "--quota")
    info = update_user(ctx, username, set_quota=quota is not None, quota_bytes=quota_bytes, is_admin=admin)
    if info is None:
        _fail(f"there is no user named {username!r}; list them with 'camroll admin user list'.")
    limit = format_size(info.quota_bytes) if info.quota_bytes is not None else "unlimited"
    note = ""
    if info.quota_bytes is not None and info.used_bytes > info.quota_bytes:
        note = " It is below what is already stored: files are kept, new uploads are refused until space is freed."
    typer.echo(f"{info.username}: quota {limit} ({format_size(info.used_bytes)} used)"
               f"{', admin' if info.is_admin else ''}.{note}")


def _user_id(ctx: Context, username: str) -> int:
    from camroll.server.repositories import users

    with ctx.db() as db:
        user = users.by_name(db, username)
        if user is None:
            _fail(f"there is no user named {username!r}; list them with 'camroll admin user list'.")
        return user.id


def _problem(exc: Exception) -> NoReturn:
    from camroll.server.problems import ProblemError

    if isinstance(exc, ProblemError):
        _fail(f"{exc.detail} {exc.fix or ''}".strip())
    raise exc


@notify_app.command("add")
def notify_add(
    username: str = typer.Argument(..., help="The user whose alerts go to URL."),
    url: str = typer.Argument(..., help="An apprise URL, e.g. ntfy://ntfy.sh/TOPIC."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """Send USER's backup alerts to URL as well."""
    ctx = _context(data, "camroll admin notify add")
    from camroll.server.problems import ProblemError
    from camroll.server.services import notify

    try:
        target = notify.add(ctx, _user_id(ctx, username), url)
    except ProblemError as exc:
        _problem(exc)
    typer.echo(f"Added notification URL {target.id} for {username}: {target.url}. "
               f"Check it with 'camroll admin notify test {username}'.")


@notify_app.command("list")
def notify_list(
    username: str | None = typer.Argument(None, help="Only this user's URLs (default: everyone's)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """List notification URLs (secrets masked) and how their last message went."""
    ctx = _context(data, "camroll admin notify list")
    from camroll.server.services import notify

    if username is not None:
        rows = [(username, t) for t in notify.targets(ctx, _user_id(ctx, username))]
    else:
        rows = notify.all_targets(ctx)
    if as_json:
        import json

        typer.echo(json.dumps([{"user": name, **t.model_dump(mode="json")} for name, t in rows], indent=2))
        return
    if not rows:
        typer.echo("No notification URLs; add one with 'camroll admin notify add USER URL'.")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "user", "url", "last sent", "last error")
    for name, t in rows:
        table.add_row(str(t.id), name, t.url, t.last_sent_at.strftime("%Y-%m-%d %H:%M") if t.last_sent_at else "",
                      t.last_error or "")
    Console().print(table)


@notify_app.command("remove")
def notify_remove(
    username: str = typer.Argument(..., help="The user the URL belongs to."),
    which: str = typer.Argument(..., help="The URL, or its id from 'camroll admin notify list'."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """Stop sending USER's alerts to a URL."""
    ctx = _context(data, "camroll admin notify remove")
    from camroll.server.problems import ProblemError
    from camroll.server.services import notify

    try:
        target = notify.remove(ctx, _user_id(ctx, username), which)
    except ProblemError:
        _fail(f"{username} has no notification URL {which!r}; see 'camroll admin notify list {username}'.")
    typer.echo(f"Removed notification URL {target.id} of {username}: {target.url}.")


@notify_app.command("test")
def notify_test(
    username: str = typer.Argument(..., help="Send the test message to this user's URLs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON results."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """Send a test message to each of USER's URLs; exit 1 if any failed."""
    ctx = _context(data, "camroll admin notify test")
    from camroll.server.services import notify

    user_id = _user_id(ctx, username)
    if not notify.targets(ctx, user_id):
        _fail(f"{username} has no notification URLs; add one with 'camroll admin notify add {username} URL'.")
    results = notify.send_test(ctx, user_id, username)
    if as_json:
        import json

        typer.echo(json.dumps([r.model_dump(mode="json") for r in results], indent=2))
    else:
        for r in results:
            typer.echo(f"OK    {r.id}  {r.url}" if r.ok else f"FAIL  {r.id}  {r.url}: {r.error}")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@admin_app.command("jobs")
def jobs(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    retry: bool = typer.Option(False, "--retry", help="Queue the failed assets again (after fixing the cause)."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """Background jobs (metadata, thumbnails): queue depth, done and failed assets, recent failures."""
    ctx = _context(data, "camroll admin jobs")
    from camroll.server.jobs import status

    try:
        retried = status.retry_failed(ctx) if retry else None
        rep = status.report(ctx)
    except ValueError as exc:
        _fail(str(exc))
    except Exception as exc:
        _fail(f"cannot read the job queue: {exc}. Check CAMROLL_REDIS_URL, or unset it to use the embedded queue.")
    if as_json:
        typer.echo(rep.model_dump_json(indent=2))
        return
    if retried is not None:
        typer.echo(f"Queued {plural(retried, 'failed asset')} again.")
    retries = "retry" if rep.scheduled == 1 else "retries"
    typer.echo(f"Queue ({rep.backend}): {rep.queued} waiting, {rep.scheduled} {retries} scheduled")
    typer.echo(f"Assets: {rep.done} done, {rep.waiting} waiting, {rep.failed} failed")
    if rep.disk_full:
        typer.echo(f"Waiting: {rep.disk_full}")
    if rep.recent_failures:
        typer.echo("Recent failures:")
        for f in rep.recent_failures:
            when = f.at.strftime("%Y-%m-%d %H:%M") if f.at else "?"
            typer.echo(f"  {when}  asset {f.asset_id} ({f.user}/{f.filename}): {f.reason}")


def worker(
    workers: int = typer.Option(2, "--workers", min=1, help="Worker threads; thumbnails are CPU-bound: ~1 per core."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """Do the server's background jobs (metadata, thumbnails) in this process.

    Use the server's data dir and database (and $CAMROLL_REDIS_URL if the server uses Redis).
    Run the server with CAMROLL_JOB_WORKERS=0 to leave all the work to workers.
    SIGTERM lets running jobs finish; Ctrl-C stops at once."""
    ctx = _context(data, "camroll worker")
    from camroll.server.jobs.queue import JobQueue

    try:
        queue = JobQueue(ctx)
    except (ValueError, RuntimeError) as exc:
        _fail(str(exc))
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    where = "Redis" if queue.jobs.redis_url else "embedded"
    limits = queue.sandbox.limits
    typer.echo(f"camroll worker: {workers} thread{'s' if workers != 1 else ''} on the {where} queue; each file is "
               f"read in a child process limited to {limits.timeout_seconds:g} s and "
               f"{limits.memory_bytes / 2**20:.0f} MiB (CAMROLL_JOB_TIMEOUT, CAMROLL_JOB_MEMORY).")
    queue.work_forever(workers)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.add_typer(admin_app, name="admin")
