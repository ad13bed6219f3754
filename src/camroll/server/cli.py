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
    from camroll.server.settings import Settings

admin_app = typer.Typer(help="Administer the server: users, their backup alerts, background jobs.",
                        no_args_is_help=True)
user_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
notify_app = typer.Typer(
    help="Where each user's backup alerts go (stalled or silent devices, quota at 90% and 100%): "
         "apprise URLs such as ntfy://ntfy.sh/TOPIC or mailto://USER:PASSWORD@gmail.com.",
    no_args_is_help=True)
admin_app.add_typer(user_app, name="user")
admin_app.add_typer(notify_app, name="notify")
# WebDAV app passwords (server/dav/cli.py).
from camroll.server.dav.cli import app_password_app  # noqa: E402

admin_app.add_typer(app_password_app, name="app-password")

replica_app = typer.Typer(
    help="Second copies of every original (3-2-1): S3 buckets (s3://BUCKET[/PREFIX]), local or mounted folders "
         "(file:///PATH) and rclone remotes (rclone:REMOTE:path), copied to in the background by the server.",
    no_args_is_help=True)
admin_app.add_typer(replica_app, name="replica")

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
    try:
        ctx = build(settings)
    except ValueError as exc:  # StorageConfigError: CAMROLL_STORAGE_URL or the AWS_* configuration
        _fail(str(exc))
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
    metrics_listen: str | None = typer.Option(
        None, "--metrics-listen", envvar="CAMROLL_METRICS_LISTEN",
        help="Also serve Prometheus /metrics on this HOST:PORT, with no token (keep it private, e.g. "
             "127.0.0.1:9464). Otherwise /metrics needs $CAMROLL_METRICS_TOKEN as a bearer token."),
    public_url: str | None = typer.Option(
        None, "--public-url", envvar="CAMROLL_PUBLIC_URL",
        help="The URL clients reach this server at (e.g. https://photos.example.org, the TLS proxy in front); "
             "'camroll admin check' warns when it is plain http beyond this machine."),
) -> None:
    """Run the camroll server (health: /healthz, /readyz; metrics: /metrics, see docs/METRICS.md).

    Originals and thumbnails are kept in the data directory unless CAMROLL_STORAGE_URL says otherwise:
    s3://BUCKET[/PREFIX] stores them in any S3-compatible object storage (AWS, Backblaze B2, Wasabi,
    Cloudflare R2, MinIO, Ceph, SeaweedFS...), configured with the standard AWS variables
    (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, or AWS_PROFILE with ~/.aws
    files; AWS_S3_ADDRESSING_STYLE=path for servers on your own host name); file:///PATH keeps them in
    another folder.  The server checks the bucket at start and exits with status 2 and the reason if it
    does not answer.
    """
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
    if metrics_listen:
        try:
            metrics_host, metrics_port = parse_listen(metrics_listen)
        except ValueError as exc:
            _fail(str(exc).replace("--listen", "--metrics-listen").replace(":8420", ":9464"))
        if (metrics_host, metrics_port) == (host, port):
            _fail("--metrics-listen must differ from --listen; pick another port, e.g. 127.0.0.1:9464.")
        overrides["metrics_listen"] = metrics_listen
    if public_url:
        overrides["public_url"] = public_url.strip()
        from camroll.server.checks import Status, check_public_url

        verdict = check_public_url(public_url.strip())
        if verdict.status is Status.FAIL:
            _fail(f"--public-url: {verdict.summary} {verdict.fix}")
        if verdict.status is Status.WARN:
            typer.secho(f"Warning: {verdict.summary} Fix: {verdict.fix}", fg=typer.colors.YELLOW, err=True)
    if min_client_version:
        overrides["min_client_version"] = min_client_version
    data_dir, new = _library(data, "camroll serve", may_create=True)
    try:
        settings = Settings.for_data_dir(data_dir, **overrides)
    except ValueError as exc:
        _fail(f"{exc}.")
    check_environment(settings)
    _check_storage(settings)
    from camroll.server.lock import ServerRunning, hold, local_url

    url = local_url(host, port)
    try:
        with hold(data_dir, url):
            _check_port(host, port)
            if metrics_listen:
                _check_port(metrics_host, metrics_port, "--metrics-listen")
            if new:
                typer.echo(f"No camroll library in {data_dir} yet: starting a new one.", err=True)
            run_server(settings, host, port, access_log=access_log)
    except ServerRunning as exc:
        other = exc.other
        stop = f" (kill {other.pid})" if other.pid is not None else ""
        _fail(f"a camroll server is already running on the library in {data_dir} ({other.describe()}); one "
              f"library is served by one server. Fix: use that one, or stop it first{stop}.")


def check_environment(settings: Settings) -> None:
    """Exit with the variable and the fix when a setting read from the environment is not valid, before
    the server starts (its threads would otherwise fail one by one with a traceback)."""
    from camroll.server import db
    from camroll.server.egress import EgressPolicy
    from camroll.server.jobs.config import JobSettings, sandbox_limits
    from camroll.server.replicas.settings import ReplicaSettings

    try:
        JobSettings.from_env()
        sandbox_limits()
        ReplicaSettings.from_env()
        EgressPolicy.from_env()
        if settings.database_url.startswith("postgresql"):  # read only there
            db.pool_options()
            db.postgres_options()
    except ValueError as exc:
        _fail(str(exc))


def _check_storage(settings: Settings) -> None:
    """Exit with the reason and the fix unless the configured store answers (a bucket listing on S3)."""
    from camroll.server.storage.base import StorageFailure
    from camroll.server.storage.factory import check, open_stores
    from camroll.server.storage.s3config import S3Location, StorageConfigError

    try:
        blobs, _ = open_stores(settings)
        check(blobs)
    except StorageConfigError as exc:
        _fail(str(exc))
    except StorageFailure as exc:
        where = settings.storage.url if isinstance(settings.storage, S3Location) else str(settings.blobs_dir)
        _fail(f"the blob store {where} does not answer: {exc.problem} Fix: {exc.fix}")


def _check_port(host: str, port: int, option: str = "--listen") -> None:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            _fail(f"cannot listen on {host}:{port}: {exc.strerror}. "
                  f"Stop whatever uses it or pick another address with {option} HOST:PORT.")


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
    typer.echo(f"Queue ({rep.backend}): {rep.queued} waiting, {rep.scheduled} {retries} scheduled, "
               f"{rep.running} running")
    typer.echo(f"Assets: {rep.done} done, {rep.waiting} waiting, {rep.failed} failed")
    if rep.disk_full:
        typer.echo(f"Waiting: {rep.disk_full}")
    if rep.recent_failures:
        typer.echo("Recent failures:")
        for f in rep.recent_failures:
            when = f.at.strftime("%Y-%m-%d %H:%M") if f.at else "?"
            typer.echo(f"  {when}  asset {f.asset_id} ({f.user}/{f.filename}): {f.reason}")


@admin_app.command("check")
def check(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document (for scripts) instead of lines."),
    public_url: str | None = typer.Option(
        None, "--public-url", envvar="CAMROLL_PUBLIC_URL",
        help="The URL clients reach the server at, to check (default: $CAMROLL_PUBLIC_URL)."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """Tell what is wrong with this deployment: each check PASS, WARN or FAIL, with the fix.

    Checks the database (reachable, migrations current, connection pool), the blob store (a probe blob
    put, read whole and by range, deleted), the job queue (Redis or the embedded one), clocks (the
    database's, Redis', the S3 endpoint's against this machine's), free space (data dir, part files,
    blobs, thumbnails, temp) and the public URL (a warning when it is plain http beyond this machine).
    Run it where the server runs, with the same environment (CAMROLL_DATABASE_URL, CAMROLL_STORAGE_URL,
    CAMROLL_REDIS_URL, AWS_*).  Changes nothing (it never migrates).  Exit status: 0 when nothing
    failed (warnings included), 1 when a check failed, 2 when the command itself cannot run."""
    from camroll.server import checks
    from camroll.server.settings import Settings

    data_dir, _ = _library(data, "camroll admin check")
    try:
        settings = Settings.for_data_dir(data_dir)
    except ValueError as exc:
        _fail(f"{exc}.")
    colors = {checks.Status.PASS: typer.colors.GREEN, checks.Status.WARN: typer.colors.YELLOW,
              checks.Status.FAIL: typer.colors.RED}

    def show(r: checks.Result) -> None:
        if as_json:
            return
        typer.secho(f"{r.status.value:<5}", fg=colors[r.status], nl=False, bold=True)
        typer.echo(f" {r.name:<16} {r.summary}")
        if r.fix and r.status is not checks.Status.PASS:
            typer.echo(f"{'':<23}Fix: {r.fix}")

    if not as_json:
        typer.echo(f"Checking the camroll library in {data_dir}:")
    results = checks.run_checks(settings, show, public_url=public_url)
    counts = {s: sum(1 for r in results if r.status is s) for s in checks.Status}
    failed = counts[checks.Status.FAIL]
    if as_json:
        import json

        typer.echo(json.dumps({"ok": not failed, "passed": counts[checks.Status.PASS],
                               "warnings": counts[checks.Status.WARN], "failed": failed,
                               "checks": [r.as_json() for r in results]}, indent=2))
    else:
        passed, warned = counts[checks.Status.PASS], counts[checks.Status.WARN]
        typer.echo(f"{plural(passed, 'check')} passed, {plural(warned, 'warning')}, {failed} failed.")
    if failed:
        raise typer.Exit(1)


def worker(
    workers: int = typer.Option(2, "--workers", min=1, help="Worker threads; thumbnails are CPU-bound: ~1 per core."),
    metrics_listen: str | None = typer.Option(
        None, "--metrics-listen", envvar="CAMROLL_WORKER_METRICS_LISTEN",
        help="Serve this worker's Prometheus metrics (job durations by kind and outcome) on HOST:PORT, no token."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """Do the server's background jobs (metadata, thumbnails) in this process.

    Use the server's data dir and database (and $CAMROLL_REDIS_URL if the server uses Redis).
    Run the server with CAMROLL_JOB_WORKERS=0 to leave all the work to workers.
    SIGTERM lets running jobs finish; Ctrl-C stops at once."""
    scrape_at = None
    if metrics_listen:
        from camroll.server.run import parse_listen

        try:
            scrape_at = parse_listen(metrics_listen)
        except ValueError as exc:
            _fail(str(exc).replace("--listen", "--metrics-listen").replace(":8420", ":9465"))
    ctx = _context(data, "camroll worker")
    _check_storage(ctx.settings)
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
               f"{limits.memory_bytes / 2**20:.0f} MiB (CAMROLL_JOB_TIMEOUT, CAMROLL_JOB_MEMORY); it claims "
               f"assets as {queue.leases.holder}.")
    if scrape_at is not None:
        from camroll.server.metrics import ScrapeServer

        _check_port(*scrape_at, "--metrics-listen")
        ScrapeServer(ctx, *scrape_at)
        typer.echo(f"Metrics: http://{scrape_at[0]}:{scrape_at[1]}/metrics")
    queue.work_forever(workers)


# --- replicas and scrub (server/replicas/) ---------------------------------------------------------
def _replica_error(exc: Exception) -> NoReturn:
    from camroll.server.storage.base import StorageFailure

    if isinstance(exc, StorageFailure):
        _fail(f"{exc.problem} Fix: {exc.fix}")
    if isinstance(exc, ValueError):
        _fail(str(exc))
    raise exc


@replica_app.command("add")
def replica_add(
    name: str = typer.Argument(..., help="A short name for it, e.g. b2 or usb-disk."),
    url: str = typer.Argument(..., help="s3://BUCKET[/PREFIX], file:///PATH or rclone:REMOTE:path."),
    endpoint: str | None = typer.Option(None, "--endpoint", help="S3: the provider's endpoint URL, e.g. "
                                        "https://s3.us-west-004.backblazeb2.com (default: AWS_ENDPOINT_URL)."),
    region: str | None = typer.Option(None, "--region", help="S3: the bucket's region (default: AWS_REGION)."),
    profile: str | None = typer.Option(None, "--profile", help="S3: a profile of ~/.aws/config and credentials."),
    access_key_id: str | None = typer.Option(None, "--access-key-id", help="S3: the key id (default: AWS_*)."),
    secret_file: Path | None = typer.Option(
        None, "--secret-access-key-file", help="S3: read the secret key from the first line of this file "
        "(stored in the database, never shown)."),
    addressing_style: str | None = typer.Option(None, "--addressing-style",
                                                help="S3: path, virtual or auto (MinIO/SeaweedFS: path)."),
    rclone_config: Path | None = typer.Option(None, "--rclone-config", help="rclone: the config file holding the "
                                              "remote (default: rclone's own)."),
    rclone_binary: str | None = typer.Option(None, "--rclone-binary", help="rclone: the rclone program to run."),
    no_check: bool = typer.Option(False, "--no-check", help="Add it without writing a probe first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """Add a replica: every original is copied there in the background by the running server.

    A probe file is written, read back and deleted first, so a key without write access or a disk that is
    not mounted is found now."""
    if addressing_style is not None and addressing_style not in ("path", "virtual", "auto"):
        _fail("--addressing-style must be path, virtual or auto.")
    secret = None
    if secret_file is not None:
        try:
            lines = secret_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            _fail(f"cannot read {secret_file}: {exc.strerror}.")
        secret = lines[0].strip() if lines else ""
    if bool(access_key_id) != bool(secret) and (access_key_id or secret_file is not None):
        _fail("give --access-key-id and --secret-access-key-file together (or neither, for the AWS_* settings).")
    options = {"endpoint": endpoint, "region": region, "profile": profile, "access_key_id": access_key_id,
               "secret_access_key": secret, "addressing_style": addressing_style,
               "config": str(rclone_config) if rclone_config else None, "binary": rclone_binary}
    ctx = _context(data, "camroll admin replica add")
    from camroll.server.replicas import admin

    try:
        r = admin.add(ctx, name, url, options, check=not no_check)
    except Exception as exc:
        _replica_error(exc)
    if as_json:
        import json

        typer.echo(json.dumps({"id": r.id, "name": r.name, "url": r.url, "kind": r.kind}))
        return
    typer.echo(f"Added replica {r.name} ({r.url}). The server copies every original there in the background; "
               f"follow it with 'camroll admin replica status {r.name}'.")


def _replica_rows(data: Path | None, command: str, names: list[str] | None = None) -> list[object]:
    ctx = _context(data, command)
    from camroll.server.replicas import status

    with ctx.db() as db:
        rows = status.read(db, names)
    if names and not rows:
        _fail(f"there is no replica named {names[0]!r}; see 'camroll admin replica list'.")
    return list(rows)


@replica_app.command("list")
def replica_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """List the replicas (secrets masked)."""
    from camroll.server.replicas.status import ReplicaStatus

    rows = [r for r in _replica_rows(data, "camroll admin replica list") if isinstance(r, ReplicaStatus)]
    if as_json:
        import json

        typer.echo(json.dumps([{"name": r.name, "url": r.url, "kind": r.kind, "options": r.options,
                                "paused": r.paused} for r in rows], indent=2))
        return
    if not rows:
        typer.echo("No replicas; add one with 'camroll admin replica add NAME URL'.")
        return
    for r in rows:
        opts = ", ".join(f"{k}={v}" for k, v in r.options.items())
        typer.echo(f"{r.name:<16} {r.url}{' (paused)' if r.paused else ''}{'  ' + opts if opts else ''}")


@replica_app.command("status")
def replica_status_cmd(
    name: str | None = typer.Argument(None, help="Only this replica."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """Each replica's copies by state, its backlog (files, bytes, oldest waiting) and its health.

    Exit status 1 when a replica is failing."""
    from camroll.server.replicas.status import ReplicaStatus
    from camroll.units import format_size

    rows = [r for r in _replica_rows(data, "camroll admin replica status", [name] if name else None)
            if isinstance(r, ReplicaStatus)]
    if as_json:
        import json

        typer.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
    elif not rows:
        typer.echo("No replicas; add one with 'camroll admin replica add NAME URL'.")
    for r in rows if not as_json else []:
        copies = ", ".join(f"{n} {s}" for s, n in sorted(r.copies.items())) or "none yet"
        state = "paused" if r.paused else "FAILING" if r.failing_since else "ok"
        typer.echo(f"{r.name} ({r.url}): {state}")
        typer.echo(f"  copies:  {copies}")
        oldest = f", oldest waiting since {r.oldest_pending:%Y-%m-%d %H:%M} UTC" if r.oldest_pending else ""
        typer.echo(f"  backlog: {plural(r.backlog_files, 'file')} ({format_size(r.backlog_bytes)}){oldest}")
        if r.failing_since:
            typer.echo(f"  failing since {r.failing_since:%Y-%m-%d %H:%M} UTC: {r.failure}")
            typer.echo(f"  Fix: {r.fix}")
        if r.last_ok_at:
            typer.echo(f"  last copy: {r.last_ok_at:%Y-%m-%d %H:%M} UTC")
    if any(r.failing_since and not r.paused for r in rows):
        raise typer.Exit(1)


@replica_app.command("remove")
def replica_remove(
    name: str = typer.Argument(..., help="The replica to remove."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """Stop copying to a replica and forget its records.  The copies already there are left alone."""
    ctx = _context(data, "camroll admin replica remove")
    from camroll.server.replicas import admin

    try:
        r = admin.remove(ctx, name)
    except Exception as exc:
        _replica_error(exc)
    if as_json:
        import json

        typer.echo(json.dumps({"name": r.name, "url": r.url, "removed": True}))
        return
    typer.echo(f"Removed replica {r.name} ({r.url}). Its copies are still there; delete them on the replica "
               f"if you no longer want them.")


def _pause(name: str, data: Path | None, paused: bool, as_json: bool = False) -> None:
    ctx = _context(data, f"camroll admin replica {'pause' if paused else 'resume'}")
    from camroll.server.replicas import admin

    try:
        r = admin.set_paused(ctx, name, paused)
    except Exception as exc:
        _replica_error(exc)
    if as_json:
        import json

        typer.echo(json.dumps({"name": r.name, "paused": paused}))
        return
    typer.echo(f"Paused replica {r.name}: nothing is copied to it until 'camroll admin replica resume {r.name}'."
               if paused else f"Resumed replica {r.name}: copying starts again within a minute.")


@replica_app.command("pause")
def replica_pause(name: str = typer.Argument(..., help="The replica to pause (e.g. a USB disk taken away)."),
                  as_json: bool = typer.Option(False, "--json", help="Print JSON."),
                  data: Path | None = typer.Option(None, "--data", help=DATA_HELP)) -> None:
    """Stop copying to a replica for now (its backlog is still reported)."""
    _pause(name, data, True, as_json)


@replica_app.command("resume")
def replica_resume(name: str = typer.Argument(..., help="The replica to resume."),
                   as_json: bool = typer.Option(False, "--json", help="Print JSON."),
                   data: Path | None = typer.Option(None, "--data", help=DATA_HELP)) -> None:
    """Copy to a paused replica again."""
    _pause(name, data, False, as_json)


@admin_app.command("scrub")
def scrub(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    rate: float | None = typer.Option(None, "--rate", min=0.1, help="Read at most this many MB/s (default: "
                                      "as fast as the disks go)."),
    sample: float | None = typer.Option(None, "--sample", min=0.0, max=1.0, help="The share of replica copies "
                                        "without a provider checksum to read back (default: all in folders, "
                                        "$CAMROLL_SCRUB_SAMPLE or 0.1 elsewhere)."),
    read_back: bool = typer.Option(False, "--read-back", help="Read sampled replica copies back even where the "
                                   "provider reports a SHA-256 (costs the provider's egress)."),
    findings: bool = typer.Option(False, "--findings", help="Only list the latest findings, scrub nothing."),
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
) -> None:
    """Re-read every blob and prove it hashes to its SHA-256, on the primary store and on each replica;
    repair the primary from a replica, and a replica from the primary.  Exit 1 if anything is left
    unrepaired.  The server also scrubs by itself: the whole library once a month, throttled."""
    ctx = _context(data, "camroll admin scrub")
    from camroll.server.replicas import scrub as scrubbing

    if findings:
        rows = scrubbing.recent_findings(ctx)
        if as_json:
            import json

            typer.echo(json.dumps([f.model_dump(mode="json") for f in rows], indent=2))
        for f in rows if not as_json else []:
            typer.echo(f"{f.location:<12} {f.sha256}  {f.problem.value:<10} {f.action.value}"
                       f"{' from ' + f.source if f.source else ''}: {f.detail}")
        return
    from sqlalchemy import func, select

    from camroll.server.models import Blob
    from camroll.server.replicas.settings import ReplicaSettings

    with ctx.db() as db:
        total, total_bytes = db.execute(select(func.count(), func.coalesce(func.sum(Blob.size), 0))).one()
    from camroll.server.leases import Leases
    from camroll.units import format_size

    # One scrub at a time across the servers' scheduled ticks and this command (a killed command's lease
    # runs out after ten minutes).
    leases = Leases(ctx)
    if not leases.acquire(scrubbing.SCRUB_LEASE, 600):
        _fail("a scrub is running already (the server's scheduled one, or another 'camroll admin scrub'); "
              "try again in a few minutes.")

    def progress(rep: scrubbing.ScrubReport, _total: int) -> None:
        if rep.blobs % 50 == 0:
            leases.renew(scrubbing.SCRUB_LEASE, 600)
        if not as_json and sys.stderr.isatty() and (rep.blobs % 50 == 0 or rep.blobs == total):
            typer.echo(f"\r{rep.blobs}/{total} blobs, {format_size(rep.bytes)} read, "
                       f"{len(rep.findings)} problems", err=True, nl=False)

    try:
        settings = ReplicaSettings.from_env()
    except ValueError as exc:
        _fail(f"{exc}.")
    try:
        report = scrubbing.Scrubber(ctx, settings, rate=rate * 1e6 if rate else None, sample=sample,
                                    progress=progress, trust_checksums=not read_back).run(total=int(total))
    finally:
        leases.release(scrubbing.SCRUB_LEASE)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        if sys.stderr.isatty():
            typer.echo("", err=True)
        mbs = report.bytes / 1e6 / report.seconds if report.seconds else 0.0
        typer.echo(f"Scrubbed {plural(report.blobs, 'blob')} ({format_size(int(total_bytes))}): "
                   f"{report.primary_ok} intact on the primary, {report.copies_checked} replica copies checked "
                   f"({report.copies_read_back} read back, {report.copies_by_checksum} by provider checksum); "
                   f"{format_size(report.bytes)} read at {mbs:.1f} MB/s.")
        for f in report.findings:
            typer.echo(f"  {f.location}: {f.sha256} {f.problem.value}, {f.action.value}"
                       f"{' from ' + f.source if f.source else ''}. {f.detail}")
        typer.echo(f"{report.repaired} repaired, {report.recopied} copied again, {report.unrepaired} unrepaired.")
        for name, why in report.replicas_skipped.items():
            typer.echo(f"  replica {name} left out: {why}")
        if report.error:
            typer.secho(f"Stopped: {report.error}", fg=typer.colors.RED, err=True)
    if report.unrepaired or report.error:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.add_typer(admin_app, name="admin")
