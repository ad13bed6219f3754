"""``camroll admin album ...``: a user's albums, from the server's machine.

Albums are library actions, which a device token may not take (it can only back up).  So the CLI works
where the other account commands do: on the server's library through ``--data``, as an administrator
acting for a named user, with the same rules and bounds as ``/api/v1/albums`` (services/albums.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from camroll.server.cli import DATA_HELP, _context, _fail, _problem, _user_id

if TYPE_CHECKING:
    from camroll import wire
    from camroll.server.context import Context
    from camroll.server.services.auth import Principal

album_app = typer.Typer(help="A user's albums: list, create, rename, delete, add and remove items, set the cover. "
                             "Photos are never deleted by these commands.", no_args_is_help=True)

_USER = typer.Argument(..., help="The user whose albums these are.")
_ALBUM = typer.Argument(..., help="The album's id or its exact name.")
_IDS = typer.Argument(..., help="Asset ids, e.g. 12 13 14 (from the web UI's viewer or GET /api/v1/timeline).")
_DATA = typer.Option(None, "--data", help=DATA_HELP)
_JSON = typer.Option(False, "--json", help="Print JSON instead of text.")


def register(admin: typer.Typer) -> None:
    admin.add_typer(album_app, name="album")


def _who(ctx: Context, username: str) -> Principal:
    from camroll.server.services.auth import Principal

    return Principal(user_id=_user_id(ctx, username), username=username, is_admin=False, device_id=None)


def _album_id(ctx: Context, who: Principal, album: str) -> int:
    from camroll.server.repositories import albums as repo

    with ctx.db() as db:
        found = repo.by_name(db, who.user_id, album.strip())
        if found is not None:
            return found.id
    if album.strip().isdigit() and len(album.strip()) <= 18:
        return int(album.strip())
    _fail(f"{who.username} has no album named {album!r}; list them with 'camroll admin album list {who.username}'.")


def _show(info: wire.AlbumInfo, as_json: bool, verb: str) -> None:
    if as_json:
        typer.echo(info.model_dump_json(indent=2))
    else:
        cover = f", cover {info.cover_asset_id}" if info.cover_asset_id else ""
        typer.echo(f"{verb} album {info.id} {info.name!r}: {info.item_count} items{cover}.")


@album_app.command("list")
def album_list(username: str = _USER, as_json: bool = _JSON, data: Path | None = _DATA) -> None:
    """The user's albums with their item counts (items in the trash are not counted)."""
    from camroll.server.services import albums

    ctx = _context(data, "camroll admin album list")
    found = albums.list_albums(ctx, _who(ctx, username))
    if as_json:
        typer.echo(json.dumps([a.model_dump(mode="json") for a in found], indent=2))
        return
    if not found:
        typer.echo(f"{username} has no albums; make one with 'camroll admin album create {username} NAME'.")
    for a in found:
        typer.echo(f"{a.id:>6}  {a.item_count:>7} items  {a.name}")


@album_app.command("create")
def album_create(username: str = _USER, name: str = typer.Argument(..., help="The album's name."),
                 ids: list[int] | None = typer.Argument(None, help="Asset ids to put in it."),
                 as_json: bool = _JSON, data: Path | None = _DATA) -> None:
    """A new album, optionally with items."""
    from pydantic import ValidationError

    from camroll import wire
    from camroll.server.services import albums

    ctx = _context(data, "camroll admin album create")
    try:
        body = wire.AlbumCreate(name=name, ids=ids or [])
        _show(albums.create(ctx, _who(ctx, username), body), as_json, "Created")
    except ValidationError as exc:
        _fail(f"{exc.errors()[0]['msg']}: album names are 1-{wire.MAX_ALBUM_NAME} characters, "
              f"at most {wire.MAX_ASSET_IDS:,} ids at once.")
    except Exception as exc:
        _problem(exc)


@album_app.command("rename")
def album_rename(username: str = _USER, album: str = _ALBUM, new_name: str = typer.Argument(..., help="The new name."),
                 as_json: bool = _JSON, data: Path | None = _DATA) -> None:
    """Give an album another name."""
    from camroll import wire
    from camroll.server.services import albums

    ctx = _context(data, "camroll admin album rename")
    who = _who(ctx, username)
    try:
        _show(albums.update(ctx, who, _album_id(ctx, who, album), wire.AlbumUpdate.model_construct(
            name=new_name, cover_asset_id=None, clear_cover=False)), as_json, "Renamed")
    except Exception as exc:
        _problem(exc)


@album_app.command("cover")
def album_cover(username: str = _USER, album: str = _ALBUM,
                asset_id: int | None = typer.Argument(None, help="An item of the album; leave out for the newest."),
                as_json: bool = _JSON, data: Path | None = _DATA) -> None:
    """Choose the album's cover (or go back to its newest item)."""
    from camroll import wire
    from camroll.server.services import albums

    ctx = _context(data, "camroll admin album cover")
    who = _who(ctx, username)
    try:
        _show(albums.update(ctx, who, _album_id(ctx, who, album), wire.AlbumUpdate(
            cover_asset_id=asset_id, clear_cover=asset_id is None)), as_json, "Updated")
    except Exception as exc:
        _problem(exc)


def _change(username: str, album: str, ids: list[int], data: Path | None, as_json: bool, *, add: bool) -> None:
    from camroll import wire
    from camroll.server.services import albums

    ctx = _context(data, f"camroll admin album {'add' if add else 'remove'}")
    who = _who(ctx, username)
    if not 1 <= len(ids) <= wire.MAX_ASSET_IDS or min(ids) < 1 or max(ids) > wire.INT64_MAX:
        _fail(f"give 1 to {wire.MAX_ASSET_IDS:,} asset ids, each a positive number.")
    try:
        album_id = _album_id(ctx, who, album)
        res = (albums.add if add else albums.remove)(ctx, who, album_id, ids)
    except Exception as exc:
        _problem(exc)
    if as_json:
        typer.echo(res.model_dump_json(indent=2))
    else:
        asked = len(set(ids))
        why = "already in it, in the trash or not the user's" if add else "not in it"
        note = f"; {asked - res.changed} were {why}" if asked > res.changed else ""
        typer.echo(f"{'Added' if add else 'Removed'} {res.changed} of {asked} items {'to' if add else 'from'} "
                   f"{res.album.name!r} (now {res.album.item_count}){note}.")


@album_app.command("add")
def album_add(username: str = _USER, album: str = _ALBUM, ids: list[int] = _IDS,
              as_json: bool = _JSON, data: Path | None = _DATA) -> None:
    """Put assets in an album."""
    _change(username, album, ids, data, as_json, add=True)


@album_app.command("remove")
def album_remove(username: str = _USER, album: str = _ALBUM, ids: list[int] = _IDS,
                 as_json: bool = _JSON, data: Path | None = _DATA) -> None:
    """Take assets out of an album (they stay in the library)."""
    _change(username, album, ids, data, as_json, add=False)


@album_app.command("delete")
def album_delete(username: str = _USER, album: str = _ALBUM, data: Path | None = _DATA) -> None:
    """Delete an album; its photos stay in the library."""
    from camroll.server.services import albums

    ctx = _context(data, "camroll admin album delete")
    who = _who(ctx, username)
    try:
        album_id = _album_id(ctx, who, album)
        info = albums.get(ctx, who, album_id)
        albums.delete(ctx, who, album_id)
    except Exception as exc:
        _problem(exc)
    typer.echo(f"Deleted album {info.id} {info.name!r}; its {info.item_count} items stay in the library.")
