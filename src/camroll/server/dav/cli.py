"""``camroll admin app-password create|list|revoke``: app passwords for WebDAV apps (PhotoSync,
FolderSync, rclone...).  An app password is a device token: the app backs files up as that device,
its health and alerts are that device's, and revoking it stops that app only."""

from __future__ import annotations

from pathlib import Path

import typer

app_password_app = typer.Typer(
    help="App passwords for WebDAV apps (/dav/): one per phone or tool, revocable; never the account password.",
    no_args_is_help=True)

NAME_MAX = 200


@app_password_app.command("create")
def create(
    username: str = typer.Argument(..., help="The user the app backs up for."),
    device: str = typer.Argument(..., help="A name for the phone or tool, e.g. 'Pixel PhotoSync'."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (user, device id, app password, URL)."),
    data: Path | None = typer.Option(None, "--data", help="The camroll library folder (as for camroll serve)."),
) -> None:
    """Make an app password: a new device whose token the WebDAV app uses as its password."""
    from camroll.server.cli import _context, _fail, _user_id
    from camroll.server.repositories import users
    from camroll.server.services.auth import Principal, create_device

    if not device.strip() or len(device) > NAME_MAX:
        _fail(f"the device name must be 1 to {NAME_MAX} characters.")
    ctx = _context(data, "camroll admin app-password create")
    user_id = _user_id(ctx, username)
    with ctx.db() as db:
        user = users.by_name(db, username)
        assert user is not None
        real_name = user.username
    from camroll import wire

    made = create_device(ctx, Principal(user_id, real_name, False, None),
                         wire.DeviceCreate(name=device.strip(), platform="webdav"))
    if as_json:
        import json

        typer.echo(json.dumps({"user": real_name, "device_id": made.id, "device": made.name,
                               "app_password": made.token, "path": f"/dav/files/{real_name}/"}))
        return
    typer.echo(f"App password for {real_name} on '{made.name}' (device {made.id}):\n\n  {made.token}\n\n"
               f"In the app: server URL https://YOUR-SERVER/dav/files/{real_name}/ , user {real_name}, "
               "this app password. It is shown once; revoke it with "
               f"`camroll admin app-password revoke {real_name} {made.id}`.")


@app_password_app.command("list")
def list_(
    username: str = typer.Argument(..., help="Whose devices to list."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    data: Path | None = typer.Option(None, "--data", help="The camroll library folder."),
) -> None:
    """List a user's devices (app passwords and agents alike), revoked ones marked."""
    from camroll.server.cli import _context, _user_id
    from camroll.server.repositories import tokens

    ctx = _context(data, "camroll admin app-password list")
    user_id = _user_id(ctx, username)
    with ctx.db() as db:
        rows = [(d.id, d.name, d.platform, d.revoked_at is not None, d.last_seen_at)
                for d in tokens.devices_of(db, user_id)]
    if as_json:
        import json

        typer.echo(json.dumps([{"id": i, "name": n, "platform": p, "revoked": r,
                                "last_seen_at": s.isoformat() if s else None} for i, n, p, r, s in rows]))
        return
    for i, n, p, r, s in rows:
        typer.echo(f"{i:>6}  {n}  [{p or '-'}]  {'revoked' if r else 'active'}  last seen {s or 'never'}")


@app_password_app.command("revoke")
def revoke(
    username: str = typer.Argument(..., help="The device's user."),
    device_id: int = typer.Argument(..., help="The device id (see `camroll admin app-password list`)."),
    data: Path | None = typer.Option(None, "--data", help="The camroll library folder."),
) -> None:
    """Revoke an app password: its app is refused from the next request on (its files stay)."""
    from camroll.server.cli import _context, _fail, _user_id
    from camroll.server.problems import ProblemError
    from camroll.server.repositories import users
    from camroll.server.services.auth import Principal, revoke_device

    ctx = _context(data, "camroll admin app-password revoke")
    user_id = _user_id(ctx, username)
    with ctx.db() as db:
        user = users.by_name(db, username)
        assert user is not None
        name = user.username
    try:
        revoke_device(ctx, Principal(user_id, name, False, None), device_id)
    except ProblemError as exc:
        _fail(f"{username} has no device {device_id}; list them with `camroll admin app-password list {username}`.")
        raise exc
    typer.echo(f"Revoked device {device_id} of {name}; its app password no longer works.")
