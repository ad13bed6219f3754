"""Every route x every principal, against a real ``camroll serve``.

The operations come from the server's own OpenAPI document (plus the routes it leaves out of it), so a
route nobody classified here fails the test.  Each operation is tried by six principals:

  none      no credentials                       refused (401) unless the route is public
  cookie    alice's media cookie, no bearer      only the media GETs; elsewhere it is no credential
  revoked   alice's revoked device token         refused (401) unless public
  device    alice's device token                 refused (403) on everything but backing up
  other     bob's login session                  refused (404/403) on alice's things; his own data otherwise,
                                                 and nothing of alice's in the answer
  session   alice's login session                allowed

A forbidden cell passes only if the answer is 401/403/404 (never 2xx, never 5xx) and, where it could have
changed something, nothing changed.  An allowed cell passes if it is not refused and not a server error."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from support.env import require
from support.media import photo, wait_for_jobs
from support.server import ServerProcess

from camroll import wire
from camroll.server.web.assets import bundle
from camroll.server.web.media_cookie import COOKIE

from .conftest import TUS, User, create, make_user, upload
from .receiver import LOOPBACK_ALERTS, Receiver, receiver

__all__ = ["receiver"]

# scrape: only the metrics token (CAMROLL_METRICS_TOKEN) opens it; no principal here holds it.
Access = Literal["public", "backup", "device_only", "own_device", "session", "media", "scrape"]
PRINCIPALS = ("none", "cookie", "revoked", "device", "other", "session")
API = wire.API_PREFIX


@dataclass
class World:
    srv: ServerProcess
    alice: User
    bob: User
    rx: Receiver
    asset_id: int
    asset_sha: str
    device_id: int          # alice's own device (the token the "device" principal holds)
    spare_device_id: int    # another device of alice's
    revoked_token: str
    cookie_session: str
    target_id: int
    upload_url: str
    markers: tuple[str, ...]  # strings only alice's data contains
    counter: Iterator[int] = field(default_factory=itertools.count)
    album_id: int = 0  # alice's album holding her asset; its name is a marker too
    album_name: str = ""

    def fresh_session(self, user: User) -> str:
        return self.srv.login(user.name, user.password)

    def new_device(self) -> int:
        r = self.alice.session.post(f"{API}/devices", json={"name": f"spare-{next(self.counter)}"})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def new_target(self) -> int:
        r = self.alice.session.post(f"{API}/me/notifications", json={"url": self.rx.url(f"m-{next(self.counter)}")})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def new_upload(self) -> str:
        # A path of its own: a new upload of the same bytes from the same path supersedes the older one.
        return create(self.alice.client, b"x" * 100, length=100, path=f"/matrix/{next(self.counter)}.jpg")

    def new_album(self) -> int:
        body = {"name": f"spare-{next(self.counter)}", "ids": [self.asset_id]}
        r = self.alice.session.post(f"{API}/albums", json=body)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def device_revoked(self, device_id: int) -> bool:
        return bool(self.alice.session.get(f"{API}/devices/{device_id}").json()["revoked"])


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


# How to call one operation as ``who``; ``allowed`` says the call is expected to get through, so a
# destructive call gets a resource of its own rather than the shared one.
Build = Callable[[World, str, bool], Call]


@dataclass(frozen=True)
class Op:
    access: Access
    build: Build
    # Does the call name something of alice's (path id, ids in the body)?  Then bob is refused.
    alices: bool = False
    # After a refused call, or bob's call: True if alice's resource is untouched.
    untouched: Callable[[World], bool] | None = None
    # Run before each such call (e.g. put alice's asset in the trash before bob tries to restore it).
    setup: Callable[[World], None] | None = None


def simple(method: str, path: str, **kw: Any) -> Build:
    return lambda w, who, allowed: Call(method, path, **kw)


CREATE = {**TUS, "Upload-Length": "10",
          "Upload-Metadata": wire.encode_upload_metadata({"filename": "n.jpg", "sha256": "0" * 64, "size": "10"})}

# A one-file batch (a few JPEG bytes) for POST /uploads/batch.
_BATCH_FILE = b"\xff\xd8\xff\xe0authz-matrix"
_BATCH_MANIFEST = json.dumps({"files": [{"size": len(_BATCH_FILE),
                                         "sha256": hashlib.sha256(_BATCH_FILE).hexdigest()}]}).encode()
BATCH = wire.BATCH_MAGIC + len(_BATCH_MANIFEST).to_bytes(4, "big") + _BATCH_MANIFEST + _BATCH_FILE


def _ids(w: World) -> dict[str, list[int]]:
    return {"ids": [w.asset_id]}


def _heartbeat() -> dict[str, Any]:
    return wire.Heartbeat(agent_version="0.1.0", state="idle", headline="Up to date.").model_dump(mode="json")


def _set_trashed(w: World, trashed: bool) -> None:
    r = w.alice.session.post(f"{API}/assets/{'trash' if trashed else 'restore'}", json=_ids(w))
    assert r.status_code == 200, r.text


def _album_names(w: World) -> set[str]:
    return {a["name"] for a in w.alice.session.get(f"{API}/albums").json()}


def _trashed(w: World) -> bool:
    return w.asset_id in [i["id"] for d in w.alice.session.get(f"{API}/trash").json()["days"] for i in d["items"]]


OPS: dict[tuple[str, str], Op] = {
    ("GET", "/api/v1/server"): Op("public", simple("GET", f"{API}/server")),
    ("GET", "/api/v1/openapi.json"): Op("public", simple("GET", f"{API}/openapi.json")),
    ("GET", "/"): Op("public", simple("GET", "/")),
    ("GET", "/index.html"): Op("public", simple("GET", "/index.html")),
    ("GET", "/static/{version}/{path:path}"): Op("public", simple("GET", f"/static/{bundle().version}/app.css")),
    ("POST", "/api/v1/auth/login"): Op("public", lambda w, who, allowed: Call(
        "POST", f"{API}/auth/login", json={"username": w.alice.name, "password": w.alice.password})),
    ("DELETE", "/api/v1/auth/media-cookie"): Op("public", simple("DELETE", f"{API}/auth/media-cookie")),
    ("OPTIONS", "/api/v1/uploads/"): Op("public", simple("OPTIONS", wire.UPLOADS_PATH)),
    ("OPTIONS", "/api/v1/uploads/{upload_id}"): Op("public", lambda w, who, allowed: Call("OPTIONS", w.upload_url)),
    ("GET", "/healthz"): Op("public", simple("GET", "/healthz")),
    ("GET", "/readyz"): Op("public", simple("GET", "/readyz")),
    ("GET", "/metrics"): Op("scrape", simple("GET", "/metrics")),

    ("GET", "/api/v1/me"): Op("backup", simple("GET", f"{API}/me")),
    ("POST", "/api/v1/assets/check"): Op("backup", lambda w, who, allowed: Call(
        "POST", f"{API}/assets/check", json={"items": [{"sha256": w.asset_sha}]})),
    ("POST", "/api/v1/uploads/"): Op("backup", simple("POST", wire.UPLOADS_PATH, headers=CREATE)),
    ("POST", "/api/v1/uploads"): Op("backup", simple("POST", wire.UPLOADS_PATH.rstrip("/"), headers=CREATE)),
    ("POST", "/api/v1/uploads/batch"): Op("backup", simple("POST", wire.BATCH_PATH, content=BATCH,
                                                          headers={"Content-Type": wire.BATCH_CONTENT_TYPE})),
    ("HEAD", "/api/v1/uploads/{upload_id}"): Op("backup", lambda w, who, allowed: Call(
        "HEAD", w.upload_url, headers=TUS), alices=True),
    ("PATCH", "/api/v1/uploads/{upload_id}"): Op("backup", lambda w, who, allowed: Call(
        "PATCH", w.new_upload() if allowed else w.upload_url, content=b"y" * 10,
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}), alices=True,
        untouched=lambda w: w.alice.client.head(w.upload_url, headers=TUS).headers["Upload-Offset"] == "0"),
    ("DELETE", "/api/v1/uploads/{upload_id}"): Op("backup", lambda w, who, allowed: Call(
        "DELETE", w.new_upload() if allowed else w.upload_url, headers=TUS), alices=True,
        untouched=lambda w: w.alice.client.head(w.upload_url, headers=TUS).status_code == 200),
    ("PUT", "/api/v1/devices/current/heartbeat"): Op("device_only", lambda w, who, allowed: Call(
        "PUT", f"{API}/devices/current/heartbeat", json=_heartbeat())),
    ("GET", "/api/v1/devices/{device_id}"): Op("own_device", lambda w, who, allowed: Call(
        "GET", f"{API}/devices/{w.spare_device_id}"), alices=True),

    ("GET", "/api/v1/assets/{asset_id}/original"): Op("media", lambda w, who, allowed: Call(
        "GET", f"{API}/assets/{w.asset_id}/original"), alices=True),
    ("GET", "/api/v1/assets/{asset_id}/thumbnail"): Op("media", lambda w, who, allowed: Call(
        "GET", f"{API}/assets/{w.asset_id}/thumbnail"), alices=True),
    ("GET", "/api/v1/assets/{asset_id}/motion"): Op("media", lambda w, who, allowed: Call(
        "GET", f"{API}/assets/{w.asset_id}/motion"), alices=True),
    ("GET", "/api/v1/assets/zip"): Op("media", lambda w, who, allowed: Call(
        "GET", f"{API}/assets/zip?ids={w.asset_id}"), alices=True),

    ("POST", "/api/v1/devices"): Op("session", simple("POST", f"{API}/devices", json={"name": "minted"})),
    ("GET", "/api/v1/devices"): Op("session", simple("GET", f"{API}/devices")),
    ("DELETE", "/api/v1/devices/{device_id}"): Op("session", lambda w, who, allowed: Call(
        "DELETE", f"{API}/devices/{w.new_device() if allowed else w.spare_device_id}"), alices=True,
        untouched=lambda w: not w.device_revoked(w.spare_device_id)),
    ("GET", "/api/v1/me/notifications"): Op("session", simple("GET", f"{API}/me/notifications")),
    ("POST", "/api/v1/me/notifications"): Op("session", lambda w, who, allowed: Call(
        "POST", f"{API}/me/notifications", json={"url": w.rx.url(f"add-{next(w.counter)}")}),
        untouched=lambda w: len(w.alice.session.get(f"{API}/me/notifications").json()) == 1),
    ("DELETE", "/api/v1/me/notifications/{target_id}"): Op("session", lambda w, who, allowed: Call(
        "DELETE", f"{API}/me/notifications/{w.new_target() if allowed else w.target_id}"), alices=True,
        untouched=lambda w: w.target_id in [t["id"] for t in w.alice.session.get(f"{API}/me/notifications").json()]),
    ("POST", "/api/v1/me/notifications/test"): Op("session", simple("POST", f"{API}/me/notifications/test")),
    ("GET", "/api/v1/timeline"): Op("session", simple("GET", f"{API}/timeline")),
    ("GET", "/api/v1/trash"): Op("session", simple("GET", f"{API}/trash")),
    # Batch calls change only the caller's own assets and count them ("changed"); ids of someone else's
    # are no different from ids that do not exist: bob's call is answered, changes nothing and tells nothing.
    ("POST", "/api/v1/assets/trash"): Op("session", lambda w, who, allowed: Call(
        "POST", f"{API}/assets/trash", json=_ids(w)), untouched=lambda w: not _trashed(w)),
    ("POST", "/api/v1/assets/restore"): Op("session", lambda w, who, allowed: Call(
        "POST", f"{API}/assets/restore", json=_ids(w)), untouched=_trashed,
        setup=lambda w: _set_trashed(w, True)),
    ("POST", "/api/v1/assets/zip"): Op("session", lambda w, who, allowed: Call(
        "POST", f"{API}/assets/zip", json=_ids(w)), alices=True),
    ("GET", "/api/v1/assets/{asset_id}"): Op("session", lambda w, who, allowed: Call(
        "GET", f"{API}/assets/{w.asset_id}"), alices=True),
    ("GET", "/api/v1/assets"): Op("session", simple("GET", f"{API}/assets")),
    ("GET", "/api/v1/storage"): Op("session", simple("GET", f"{API}/storage")),
    ("GET", "/api/v1/activity/uploads"): Op("session", simple("GET", f"{API}/activity/uploads")),
    # Albums: alice's album id answers bob like a missing one; bob's own list and new albums are his.
    ("GET", "/api/v1/albums"): Op("session", simple("GET", f"{API}/albums")),
    ("POST", "/api/v1/albums"): Op("session", lambda w, who, allowed: Call(
        "POST", f"{API}/albums", json={"name": f"new-{who}-{next(w.counter)}", "ids": [w.asset_id]}),
        untouched=lambda w: not [n for n in _album_names(w) if n.startswith("new-") and "-session-" not in n]),
    ("GET", "/api/v1/albums/{album_id}"): Op("session", lambda w, who, allowed: Call(
        "GET", f"{API}/albums/{w.album_id}"), alices=True),
    ("PATCH", "/api/v1/albums/{album_id}"): Op("session", lambda w, who, allowed: Call(
        "PATCH", f"{API}/albums/{w.album_id}", json={"name": w.album_name}), alices=True,
        untouched=lambda w: w.album_name in _album_names(w)),
    ("DELETE", "/api/v1/albums/{album_id}"): Op("session", lambda w, who, allowed: Call(
        "DELETE", f"{API}/albums/{w.new_album() if allowed else w.album_id}"), alices=True,
        untouched=lambda w: w.album_name in _album_names(w)),
    ("GET", "/api/v1/albums/{album_id}/items"): Op("session", lambda w, who, allowed: Call(
        "GET", f"{API}/albums/{w.album_id}/items"), alices=True),
    ("POST", "/api/v1/albums/{album_id}/items"): Op("session", lambda w, who, allowed: Call(
        "POST", f"{API}/albums/{w.album_id}/items", json=_ids(w)), alices=True),
    ("POST", "/api/v1/albums/{album_id}/items/remove"): Op("session", lambda w, who, allowed: Call(
        "POST", f"{API}/albums/{w.new_album() if allowed else w.album_id}/items/remove", json=_ids(w)), alices=True,
        untouched=lambda w: w.alice.session.get(f"{API}/albums/{w.album_id}").json()["item_count"] == 1),
    ("POST", "/api/v1/auth/media-cookie"): Op("session", simple("POST", f"{API}/auth/media-cookie")),
    ("POST", "/api/v1/auth/logout"): Op("session", simple("POST", f"{API}/auth/logout")),
    # Last: changing the password ends alice's other sessions (the media cookie's too).
    ("POST", "/api/v1/me/password"): Op("session", lambda w, who, allowed: Call(
        "POST", f"{API}/me/password", json={"old": (w.bob if who == "other" else w.alice).password,
                                            "new": (w.bob if who == "other" else w.alice).password}),
        untouched=lambda w: w.srv.login(w.alice.name, w.alice.password) != ""),
}


def operations() -> set[tuple[str, str]]:
    """Every operation of the real app: its OpenAPI document, plus the routes left out of it."""
    import tempfile

    from camroll.server.app import create_app
    from camroll.server.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings.for_data_dir(Path(tmp)))
        ops = {(m.upper(), p) for p, item in app.openapi()["paths"].items() for m in item}
        for path, methods, in_schema in _routes(app):
            if not in_schema:
                ops |= {(m, path) for m in methods if m != "HEAD"}
    return ops


def _routes(app: Any) -> Iterator[tuple[str, set[str], bool]]:
    """(path, methods, in the OpenAPI document?) of every route, included routers' routes too."""
    try:
        from fastapi.routing import iter_route_contexts  # FastAPI versions that keep included routers nested
    except ImportError:
        contexts: Any = [(r, r) for r in app.routes]
    else:
        contexts = [(c, c.original_route) for c in iter_route_contexts(app.routes)]
    for effective, original in contexts:
        yield str(effective.path), set(getattr(effective, "methods", None) or ()), \
            bool(getattr(original, "include_in_schema", True))


def expected(op: Op, who: str) -> Literal["allowed", "refused", "semantic"]:
    """What ``who`` must get from ``op``: allowed, refused, or a non-auth refusal (a session heartbeat)."""
    if op.access == "public":
        return "allowed"
    if op.access == "scrape":
        return "refused"
    if who in ("none", "revoked"):
        return "refused"
    if who == "cookie":
        return "allowed" if op.access == "media" else "refused"
    if who == "device":
        return "allowed" if op.access in ("backup", "device_only") else "refused"
    if op.access == "device_only":
        return "semantic"  # a session is who it claims to be; heartbeats just need a device
    if who == "other":
        return "refused" if op.alices else "allowed"
    return "allowed"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[World]:
    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed: apt-get install ffmpeg")
    from media import files as media_files

    tmp = tmp_path_factory.mktemp("matrix")
    # A scrape token is set, so /metrics is served and must refuse every principal below.
    srv = ServerProcess(data=tmp / "server-data", env={**LOOPBACK_ALERTS, "CAMROLL_METRICS_TOKEN": uuid.uuid4().hex})
    srv.start()
    try:
        mark = uuid.uuid4().hex[:12]
        alice, bob = make_user(srv, device=f"alice-phone-{mark}"), make_user(srv)
        clip = media_files.video(tmp / "clip.mp4", seconds=1).read_bytes()
        still = media_files.jpeg(tmp / "m.jpg", (320, 240), xmp=media_files.motion_photo_xmp(len(clip))).read_bytes()
        data = still + clip
        asset_id = upload(alice.client, data, filename=f"alice-{mark}.MP.jpg", path=f"/DCIM/alice-{mark}.jpg")
        other_photo = upload(bob.client, photo(None, color=(9, 9, 9)), filename="bob.jpg")
        wait_for_jobs(alice.session, [asset_id])
        wait_for_jobs(bob.session, [other_photo])
        devices = alice.session.get(f"{API}/devices").json()
        device_id = next(d["id"] for d in devices if d["name"] == f"alice-phone-{mark}")
        w = World(srv, alice, bob, receiver, asset_id, hashlib.sha256(data).hexdigest(), device_id, 0, "", "", 0, "",
                  (mark, hashlib.sha256(data).hexdigest()))
        w.spare_device_id = w.new_device()
        revoked = alice.session.post(f"{API}/devices", json={"name": f"lost-{mark}"}).json()
        assert alice.session.delete(f"{API}/devices/{revoked['id']}").status_code == 204
        w.revoked_token = revoked["token"]
        w.cookie_session = w.fresh_session(alice)
        w.target_id = w.new_target()
        w.upload_url = w.new_upload()
        w.album_name = f"album-{mark}"
        w.album_id = alice.session.post(f"{API}/albums", json={"name": w.album_name, "ids": [asset_id]}).json()["id"]
        yield w
    finally:
        srv.stop()


def _headers(w: World, who: str) -> dict[str, str]:
    token = {"revoked": w.revoked_token, "device": None, "other": None, "session": None}.get(who)
    if who == "cookie":
        return {"Cookie": f"{COOKIE}={w.cookie_session}"}
    if who == "device":
        return {"Authorization": str(w.alice.client.headers["Authorization"])}
    if who == "other":
        token = w.fresh_session(w.bob)
    elif who == "session":
        token = w.fresh_session(w.alice)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _leaks(w: World, r: httpx.Response, call: Call) -> bool:
    """Does the answer hold a string only alice's data has (other than one the caller sent itself)?"""
    text, sent = r.content.decode("utf-8", "replace"), repr(call)
    return any(m in text and m not in sent for m in w.markers)


def test_every_operation_is_classified() -> None:
    ops = operations()
    assert ops - set(OPS) == set(), "routes without a classification in OPS: add them with who may call them"
    assert set(OPS) - ops == set(), "OPS lists routes the server no longer has"


def test_every_route_every_principal(world: World) -> None:
    w = world
    assert operations() == set(OPS)
    cells: list[tuple[str, str, str, int, str]] = []
    failures: list[str] = []
    for key, op in OPS.items():
        for who in PRINCIPALS:
            want = expected(op, who)
            checked = op.untouched is not None and (want == "refused" or who == "other")
            if checked and op.setup is not None:
                op.setup(w)
            call = op.build(w, who, want != "refused")
            r = httpx.request(call.method, w.srv.url + call.url, json=call.json, content=call.content,
                              headers={**call.headers, **_headers(w, who)}, timeout=60)
            cells.append((f"{key[0]} {key[1]}", who, want, r.status_code, r.text[:200]))
            where = f"{key[0]} {key[1]} as {who}: {r.status_code} {r.text[:200]}"
            if r.status_code >= 500:
                failures.append(f"server error: {where}")
            elif want == "refused":
                if r.status_code not in (401, 403, 404):
                    failures.append(f"not refused: {where}")
                elif (who in ("none", "revoked", "cookie") or op.access == "scrape") and r.status_code != 401:
                    failures.append(f"expected 401: {where}")
                elif who == "device" and op.access != "scrape" and r.status_code != 403:
                    failures.append(f"expected 403: {where}")
                elif checked and op.untouched is not None and not op.untouched(w):
                    failures.append(f"refused but changed something: {where}")
            elif want == "semantic":
                if r.status_code != 400:
                    failures.append(f"expected the 400 of a session heartbeat: {where}")
            elif r.status_code >= 400:
                failures.append(f"refused although allowed: {where}")
            elif who == "other" and _leaks(w, r, call):
                failures.append(f"bob's answer shows alice's data: {where}")
            elif who == "other" and checked and op.untouched is not None and not op.untouched(w):
                failures.append(f"bob's call changed alice's data: {where}")
        if key[1] in (f"{API}/assets/trash", f"{API}/assets/restore"):  # back where the other cells expect it
            _set_trashed(w, False)
        if key[1] == f"{API}/me/password":  # it ended every other session of alice's and bob's
            for u in (w.alice, w.bob):
                u.session.headers["Authorization"] = f"Bearer {w.fresh_session(u)}"
    # A device token reads its own record (what 'own_device' allows), and not another device's.
    own = httpx.get(f"{w.srv.url}{API}/devices/{w.device_id}", headers=_headers(w, "device"))
    assert own.status_code == 200 and own.json()["id"] == w.device_id
    forbidden = [c for c in cells if c[2] == "refused"]
    allowed = [c for c in cells if c[2] == "allowed"]
    refused_ok = sum(1 for c in forbidden if c[3] in (401, 403, 404))
    print(f"\nauthorization matrix: {len(OPS)} operations x {len(PRINCIPALS)} principals = {len(cells)} cells; "
          f"{len(forbidden)} forbidden, {refused_ok} of them refused ({100 * refused_ok / len(forbidden):.0f}%); "
          f"{len(allowed)} allowed; {len(cells) - len(forbidden) - len(allowed)} semantic")
    assert not failures, "\n".join(failures)


def test_the_agent_does_everything_it_needs_with_its_device_token(world: World) -> None:
    """Every call in agent/ (api.py, tus.py, reach.py) with nothing but the device token."""
    from camroll.agent.api import Api, make_client
    from camroll.agent.backup.tus import TusClient
    from camroll.agent.report.reach import probe_account, probe_server

    w = world
    token = str(w.alice.client.headers["Authorization"]).removeprefix("Bearer ")
    data = photo(None, color=(7, 77, 177))
    sha = hashlib.sha256(data).hexdigest()
    with make_client(w.srv.url, token) as client:
        api = Api(client)
        assert api.server_info().api_version
        assert api.me().username == w.alice.name
        assert api.check([wire.CheckItem(sha256=sha)]).missing == [sha]
        tus = TusClient(client)
        url, _ = tus.create(len(data), {"filename": "agent.jpg", "sha256": sha, "size": str(len(data))})
        assert tus.head(url) == 0
        done = tus.patch(url, 0, data)
        assert done.asset_id is not None and api.check([wire.CheckItem(sha256=sha)]).present == {sha: done.asset_id}
        spare, _ = tus.create(10, {"filename": "gone.jpg", "sha256": "1" * 64, "size": "10"})
        tus.delete(spare)
        ack = api.heartbeat(wire.Heartbeat(agent_version="0.1.0", state="idle", headline="Up to date."))
        assert ack is not None
    assert probe_server(w.srv.url).kind == "ok"
    assert probe_account(w.srv.url, token).kind == "ok"


def test_a_stolen_device_token_cannot_take_over_the_account(world: World) -> None:
    """Issue 8: a device token minted new tokens, added alert URLs, revoked the other devices and
    trashed the library; a token minted from it survived revoking it."""
    w = world
    device = _headers(w, "device")
    url = w.srv.url + API

    def refused(r: httpx.Response) -> None:
        assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text

    refused(httpx.post(f"{url}/devices", json={"name": "attacker"}, headers=device))
    refused(httpx.post(f"{url}/me/notifications", json={"url": w.rx.url("attacker")}, headers=device))
    refused(httpx.delete(f"{url}/devices/{w.spare_device_id}", headers=device))
    refused(httpx.post(f"{url}/assets/trash", json=_ids(w), headers=device))
    refused(httpx.post(f"{url}/me/password", json={"old": "x", "new": "attacker password"}, headers=device))
    refused(httpx.get(f"{url}/assets/{w.asset_id}/original", headers=device))
    assert not w.device_revoked(w.spare_device_id) and not _trashed(w)
    names = [d["name"] for d in w.alice.session.get(f"{API}/devices").json()]
    assert "attacker" not in names
