"""Albums through the real API (a real ``camroll serve``), the service importers use, and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from support.server import ServerProcess, run_camroll

from camroll import wire
from camroll.server.context import Context, build
from camroll.server.models import AlbumItem, Asset
from camroll.server.problems import ProblemError
from camroll.server.repositories import assets as asset_repo
from camroll.server.services import albums, trash
from camroll.server.services.accounts import add_user
from camroll.server.settings import Settings

from .conftest import User, assert_problem, jpeg, make_user, upload

API = wire.API_PREFIX


def _uploads(u: User, n: int, seed: int) -> list[int]:
    return [upload(u.client, jpeg(300 + i, seed * 1000 + i), filename=f"p{i}.jpg", path=f"/a/{seed}-{i}.jpg")
            for i in range(n)]


def _items(s: httpx.Client, album_id: int) -> list[int]:
    r = s.get(f"{API}/albums/{album_id}/items")
    assert r.status_code == 200, r.text
    return [i.id for d in wire.TimelinePage.model_validate(r.json()).days for i in d.items]


def test_create_rename_cover_remove_delete(shared_server: ServerProcess, user: User) -> None:
    s = user.session
    ids = _uploads(user, 4, 1)
    r = s.post(f"{API}/albums", json={"name": "  Summer 2024 ", "ids": ids[:3]})
    assert r.status_code == 201, r.text
    album = wire.AlbumInfo.model_validate(r.json())
    assert (album.name, album.item_count, album.cover_chosen) == ("Summer 2024", 3, False)
    assert album.cover_asset_id in ids[:3]
    assert sorted(_items(s, album.id)) == sorted(ids[:3])
    # The same name again is refused; renaming onto another album's name too.
    assert_problem(s.post(f"{API}/albums", json={"name": "Summer 2024"}), 409, "conflict")
    other = s.post(f"{API}/albums", json={"name": "Other"}).json()
    assert_problem(s.patch(f"{API}/albums/{other['id']}", json={"name": "Summer 2024"}), 409, "conflict")

    # Adding counts only what is new; a cover must be an item.
    add = wire.AlbumChange.model_validate(s.post(f"{API}/albums/{album.id}/items", json={"ids": ids}).json())
    assert (add.changed, add.album.item_count) == (1, 4)
    not_item = {"cover_asset_id": other["id"] + 10**9}
    assert_problem(s.patch(f"{API}/albums/{album.id}", json=not_item), 400, "bad_request")
    r = s.patch(f"{API}/albums/{album.id}", json={"name": "Beach", "cover_asset_id": ids[1]})
    info = wire.AlbumInfo.model_validate(r.json())
    assert (info.name, info.cover_asset_id, info.cover_chosen) == ("Beach", ids[1], True)

    # Removing the cover falls back to the newest item; the asset stays in the library.
    rm = wire.AlbumChange.model_validate(s.post(f"{API}/albums/{album.id}/items/remove",
                                                json={"ids": [ids[1], ids[1]]}).json())
    assert (rm.changed, rm.album.item_count, rm.album.cover_chosen) == (1, 3, False)
    assert rm.album.cover_asset_id in set(ids) - {ids[1]}
    assert s.get(f"{API}/assets/{ids[1]}").status_code == 200

    listed = [a["name"] for a in s.get(f"{API}/albums").json()]
    assert listed == ["Beach", "Other"]
    assert s.delete(f"{API}/albums/{album.id}").status_code == 204
    assert_problem(s.get(f"{API}/albums/{album.id}"), 404, "not_found")
    assert all(s.get(f"{API}/assets/{i}").status_code == 200 for i in ids)
    # A device token cannot read or change albums.
    assert_problem(user.client.get(f"{API}/albums"), 403, "forbidden")


def test_another_users_album_is_answered_like_a_missing_one(shared_server: ServerProcess, user: User) -> None:
    bob = make_user(shared_server)
    try:
        mine = _uploads(user, 2, 2)
        album = user.session.post(f"{API}/albums", json={"name": "Private", "ids": mine}).json()
        missing = album["id"] + 10**6
        for method, suffix, body in (("GET", "", None), ("PATCH", "", {"name": "x"}), ("DELETE", "", None),
                                     ("GET", "/items", None), ("POST", "/items", {"ids": mine}),
                                     ("POST", "/items/remove", {"ids": mine})):
            theirs = bob.session.request(method, f"{API}/albums/{album['id']}{suffix}", json=body)
            nothing = bob.session.request(method, f"{API}/albums/{missing}{suffix}", json=body)
            assert theirs.status_code == nothing.status_code == 404, theirs.text
            assert theirs.json()["detail"].replace(str(album["id"]), "N") == \
                nothing.json()["detail"].replace(str(missing), "N")
        assert bob.session.get(f"{API}/albums").json() == []
        # Bob's own album: alice's asset ids are skipped, as unknown ones are.
        his = bob.session.post(f"{API}/albums", json={"name": "Private", "ids": mine}).json()
        assert his["item_count"] == 0
        assert_problem(bob.session.patch(f"{API}/albums/{his['id']}", json={"cover_asset_id": mine[0]}),
                       400, "bad_request")
        assert sorted(_items(user.session, album["id"])) == sorted(mine)
        assert user.session.get(f"{API}/albums/{album['id']}").json()["name"] == "Private"
    finally:
        bob.close()


def test_trash_hides_items_and_the_purge_removes_them(shared_server: ServerProcess, user: User) -> None:
    s = user.session
    ids = _uploads(user, 3, 3)
    album = s.post(f"{API}/albums", json={"name": "Trip", "ids": ids}).json()
    s.patch(f"{API}/albums/{album['id']}", json={"cover_asset_id": ids[0]})
    assert s.post(f"{API}/assets/trash", json={"ids": ids[:2]}).json()["changed"] == 2
    info = s.get(f"{API}/albums/{album['id']}").json()
    assert info["item_count"] == 1 and info["cover_asset_id"] == ids[2] and not info["cover_chosen"]
    assert _items(s, album["id"]) == [ids[2]]
    # A trashed asset cannot be added either.
    assert s.post(f"{API}/albums/{album['id']}/items", json={"ids": ids[:2]}).json()["changed"] == 0
    s.post(f"{API}/assets/restore", json={"ids": [ids[0]]})
    info = s.get(f"{API}/albums/{album['id']}").json()
    assert info["item_count"] == 2 and info["cover_asset_id"] == ids[0] and info["cover_chosen"]

    ctx = build(Settings.for_data_dir(shared_server.data))
    try:
        assert trash.purge(ctx, days=0, now=datetime.now(UTC) + timedelta(seconds=1)) >= 1
        with ctx.db() as db:
            left = set(db.scalars(select(AlbumItem.asset_id).where(AlbumItem.album_id == album["id"])))
    finally:
        ctx.engine.dispose()
    assert left == {ids[0], ids[2]}
    assert s.get(f"{API}/albums/{album['id']}").json()["item_count"] == 2


def test_bounds_are_clear_errors(shared_server: ServerProcess, user: User) -> None:
    s = user.session
    assert s.post(f"{API}/albums", json={"name": "x" * (wire.MAX_ALBUM_NAME + 1)}).status_code == 422
    assert s.post(f"{API}/albums", json={"name": ""}).status_code == 422
    assert "empty" in assert_problem(s.post(f"{API}/albums", json={"name": "   "}), 400, "bad_request")["detail"]
    assert_problem(s.post(f"{API}/albums", json={"name": "a\u0000b"}), 400, "bad_request")
    assert_problem(s.post(f"{API}/albums", json={"name": "a\u202eb"}), 400, "bad_request")
    album = s.post(f"{API}/albums", json={"name": "Bounded"}).json()
    too_many = {"ids": list(range(1, wire.MAX_ASSET_IDS + 2))}
    assert s.post(f"{API}/albums/{album['id']}/items", json=too_many).status_code == 422
    assert s.post(f"{API}/albums/{album['id']}/items", json={"ids": [2**63]}).status_code == 422
    assert s.get(f"{API}/albums/{2**63}").status_code == 422
    assert s.get(f"{API}/albums/{album['id']}/items", params={"limit": 0}).status_code == 422
    assert_problem(s.get(f"{API}/albums/{album['id']}/items", params={"cursor": "nope"}), 400, "bad_request")


def _asset(ctx: Context, user_id: int, n: int) -> int:
    sha = f"{n:064x}"
    with ctx.conn() as conn:
        asset_repo.ensure_blob(conn, sha, 10)
        return asset_repo.get_or_create(conn, user_id, sha, 10, "image/jpeg", f"{n}.jpg",
                                        datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=n))


def test_fill_creates_or_gets_by_name_and_is_idempotent(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    ann = add_user(ctx, "ann", "pw-pw-pw-pw").id
    ben = add_user(ctx, "ben", "pw-pw-pw-pw").id
    mine = [_asset(ctx, ann, n) for n in range(5)]
    his = _asset(ctx, ben, 99)
    first = albums.fill(ctx, ann, " Holidays ", [*mine[:3], his])
    assert first.created and first.added == 3
    again = albums.fill(ctx, ann, "Holidays", mine)
    assert (again.album_id, again.created, again.added) == (first.album_id, False, 2)
    assert albums.fill(ctx, ann, "Holidays", mine).added == 0
    with ctx.db() as db:
        assert db.scalar(select(func.count()).select_from(AlbumItem)) == 5
        assert db.get(Asset, his) is not None
    # The bounds: items per album and albums per user.
    monkeypatch.setattr(wire, "MAX_ALBUM_ITEMS", 6)
    with pytest.raises(ProblemError, match="limit of 6 items"):
        albums.fill(ctx, ann, "Holidays", [_asset(ctx, ann, 10), _asset(ctx, ann, 11)])
    monkeypatch.setattr(wire, "MAX_ALBUMS_PER_USER", 2)
    albums.fill(ctx, ann, "Second", [])
    with pytest.raises(ProblemError, match="the most one user may have"):
        albums.fill(ctx, ann, "Third", [])
    assert albums.fill(ctx, ben, "Third", [his]).added == 1


def test_admin_album_cli(shared_server: ServerProcess, user: User) -> None:
    ids = _uploads(user, 2, 4)
    data = str(shared_server.data)
    out = run_camroll("admin", "album", "create", user.name, "From CLI", str(ids[0]), "--json", "--data", data).stdout
    album = wire.AlbumInfo.model_validate_json(out)
    assert album.item_count == 1
    out = run_camroll("admin", "album", "add", user.name, "From CLI", str(ids[1]), "999999999", "--data", data).stdout
    assert "Added 1 of 2 items" in out and "now 2" in out
    run_camroll("admin", "album", "rename", user.name, str(album.id), "Renamed", "--data", data)
    run_camroll("admin", "album", "cover", user.name, "Renamed", str(ids[1]), "--data", data)
    listed = json.loads(run_camroll("admin", "album", "list", user.name, "--json", "--data", data).stdout)
    assert [(a["name"], a["item_count"], a["cover_asset_id"]) for a in listed] == [("Renamed", 2, ids[1])]
    bad = run_camroll("admin", "album", "create", user.name, " ", "--data", data, check=False)
    assert bad.returncode == 2 and "cannot be empty" in bad.stderr and "Traceback" not in bad.stderr
    gone = run_camroll("admin", "album", "delete", user.name, "Nope", "--data", data, check=False)
    assert gone.returncode == 2 and "no album named 'Nope'" in gone.stderr
    out = run_camroll("admin", "album", "delete", user.name, "Renamed", "--data", data).stdout
    assert "stay in the library" in out
    assert user.session.get(f"{API}/assets/{ids[0]}").status_code == 200
