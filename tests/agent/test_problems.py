"""A state, a reason and a fix for every file: the pass's per-file rules against the in-memory tus server,
and ``camroll why / problems / retry / ignore / status`` over the state DB it leaves."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import typer
from support.media import jpeg_bytes, mp4_bytes, png_bytes, write
from typer.testing import CliRunner

from camroll import API_VERSION, wire
from camroll.agent.backup.run import run_backup
from camroll.agent.events import Event, UploadStarted
from camroll.agent.paths import AgentPaths
from camroll.agent.settings.conditions import Conditions, Probes, SubprocessRunner
from camroll.agent.settings.config import AgentConfig, PolicyConfig, ServerConfig, save_config
from camroll.agent.state.db import StateDB

from .cliapp import agent_app
from .fakeserver import FakeServer
from .test_engine import _fast_backoff, _no_machine_probes  # noqa: F401  (autouse fixtures)

MIB = 1024 * 1024
OLD = 1_600_000_000  # an mtime long past (seconds)
runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[AgentPaths, AgentConfig, Path]:
    photos = tmp_path / "photos"
    photos.mkdir()
    monkeypatch.setenv("CAMROLL_HOME", str(tmp_path / "home"))
    paths = AgentPaths.in_dir(tmp_path / "home")
    cfg = AgentConfig(
        server=ServerConfig(url="http://camroll.test", username="ann", device_id=1, device_name="d", token="t"),
        folders=[str(photos)], policy=PolicyConfig(chunk_size_mib=1),
    )
    save_config(paths.config_file, cfg)
    return paths, cfg, photos


@pytest.fixture
def app() -> typer.Typer:
    return agent_app()


def _json(app: typer.Typer, *args: str, code: int = 0) -> Any:
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == code, r.output
    return json.loads(r.stdout)


def _old(p: Path) -> Path:
    os.utime(p, (OLD, OLD))
    return p


def _server_info(max_file_size: int = 100 * MIB, mimes: tuple[str, ...] = ("image/jpeg", "video/mp4"),
                 min_client: str = "0.1.0") -> dict[str, object]:
    return wire.ServerInfo(
        name="camroll", version="0.1.0", api_version=API_VERSION, min_client_version=min_client,
        upload=wire.UploadLimits(max_file_size=max_file_size, chunk_size=MIB, expiry_seconds=3600),
        media_types=[wire.MediaTypeInfo(mime=m, kind="image", extensions=[]) for m in mimes],
    ).model_dump(mode="json")


def test_why_tells_the_whole_story_of_a_backed_up_file(home: Any, app: typer.Typer) -> None:
    paths, cfg, photos = home
    p = write(photos / "a.jpg", jpeg_bytes(1))
    srv = FakeServer()
    assert run_backup(paths, cfg, transport=srv.transport()).ok
    story = _json(app, "why", str(p))
    assert story["state"] == "backed up" and story["media_type"] == "image/jpeg"
    assert story["asset_id"] == 1 and len(story["sha256"]) == 64 and story["warning"] == ""
    kinds = [e["event"] for e in story["events"]]
    assert kinds == ["seen", "hashed", "checked", "sent", "verified"]
    r = runner.invoke(app, ["why", str(p)])
    assert r.exit_code == 0 and "State:    backed up" in r.output and "asset 1" in r.output
    # A pass with nothing to do writes no history.
    run_backup(paths, cfg, transport=srv.transport())
    assert len(_json(app, "why", str(p))["events"]) == 5


def test_why_explains_paths_it_does_not_know(home: Any, app: typer.Typer, tmp_path: Path) -> None:
    paths, cfg, photos = home
    write(photos / "a.jpg", jpeg_bytes(1))
    run_backup(paths, cfg, transport=FakeServer().transport())
    elsewhere = write(tmp_path / "other" / "x.jpg", jpeg_bytes(2))
    r = runner.invoke(app, ["why", str(elsewhere)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert (f"camroll has not seen {elsewhere}: it is not under a backed-up folder (camroll folder list). "
            f"Fix: camroll folder add {elsewhere.parent}") in r.output
    new = write(photos / "new.jpg", jpeg_bytes(3))
    r = runner.invoke(app, ["why", str(new)])
    assert r.exit_code == 1 and "new since the last backup. Fix: camroll backup" in r.output
    hidden = write(photos / ".hidden.jpg", jpeg_bytes(4))
    r = runner.invoke(app, ["why", str(hidden)])
    assert r.exit_code == 1 and "hidden files" in r.output
    r = runner.invoke(app, ["why", str(photos / "gone.jpg")])
    assert r.exit_code == 1 and "does not exist" in r.output


def test_problems_lists_every_file_not_backed_up_most_important_first(home: Any, app: typer.Typer) -> None:
    paths, cfg, photos = home
    cfg.policy.max_file_size = "1MB"
    _old(write(photos / "ok.jpg", jpeg_bytes(1)))
    _old(write(photos / "notes.txt", b"shopping list"))
    _old(write(photos / "big.mp4", mp4_bytes(2 * MIB, seed=1)))
    _old(write(photos / "bad.mp4", mp4_bytes(1000, seed=2)))
    write(photos / "fresh.jpg", jpeg_bytes(5))  # modified just now: still being written
    srv = FakeServer()
    real = srv._handle

    def refuse_bad(req: Any) -> Any:
        meta = wire.decode_upload_metadata(req.headers.get("Upload-Metadata", ""))
        if req.method == "POST" and meta.get(wire.META_FILENAME) == "bad.mp4":
            return srv._problem(400, "bad_request", "The server refuses this file", "check the server log")
        return real(req)

    srv._handle = refuse_bad  # type: ignore[method-assign]
    s = run_backup(paths, cfg, transport=srv.transport(), settle_seconds=30)
    assert s.files_uploaded == 1 and s.files_failed == 1 and s.files_waiting == 1 and s.files_skipped == 2
    rows = _json(app, "problems")
    # Failed, then waiting, then skipped (the most recent first: notes.txt was skipped after its read).
    assert [(os.path.basename(r["path"]), r["state"], r["code"]) for r in rows] == [
        ("bad.mp4", "failed", "failed"),
        ("fresh.jpg", "waiting", "still_being_written"),
        ("notes.txt", "skipped", "unsupported_type"),
        ("big.mp4", "skipped", "too_large"),
    ]
    by_name = {os.path.basename(r["path"]): r for r in rows}
    assert by_name["bad.mp4"]["attempts"] == 1 and by_name["bad.mp4"]["next_retry_at"] > time.time()
    assert "camroll retries it by itself" in by_name["bad.mp4"]["fix"]
    assert by_name["big.mp4"]["reason"] == "2.1 MB is over your 1.0 MB max_file_size"
    assert by_name["big.mp4"]["fix"] == "camroll settings set max_file_size 3MB"
    assert by_name["fresh.jpg"]["reason"].startswith("still being written")
    r = runner.invoke(app, ["problems"])
    assert r.exit_code == 0 and "4 files not backed up" in r.output and "max_file_size" in r.output
    st = _json(app, "status")
    assert st["headline"].startswith("1 file failed: The server refuses this file")
    assert "camroll retries it by itself" in st["fix"] and st["problems"] == 4


def test_excluded_files_are_a_choice_not_a_problem(home: Any, app: typer.Typer) -> None:
    paths, cfg, photos = home
    cfg.policy.exclude = ["*.png"]
    _old(write(photos / "ok.jpg", jpeg_bytes(1)))
    _old(write(photos / "shot.png", png_bytes(2)))
    _old(write(photos / "notes.txt", b"shopping list"))
    s = run_backup(paths, cfg, transport=FakeServer().transport())
    assert s.files_uploaded == 1
    assert [os.path.basename(r["path"]) for r in _json(app, "problems")] == ["notes.txt"]
    every = {os.path.basename(r["path"]): r["code"] for r in _json(app, "problems", "--all")}
    assert every == {"notes.txt": "unsupported_type", "shot.png": "excluded"}
    r = runner.invoke(app, ["problems"])
    assert "1 more file left out by choice" in r.output and "--all" in r.output
    assert _json(app, "status")["problems"] == 1
    # `why` still explains the excluded file.
    assert "exclude" in runner.invoke(app, ["why", str(photos / "shot.png")]).output


def test_raising_max_file_size_brings_skipped_files_back_by_itself(home: Any, app: typer.Typer) -> None:
    paths, cfg, photos = home
    cfg.policy.max_file_size = "1MB"
    big = write(photos / "big.mp4", mp4_bytes(2 * MIB, seed=1))
    srv = FakeServer()
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_skipped == 1 and s.files_uploaded == 0 and s.ok
    # retry without changing the rule: looked at again, skipped again, with the same reason.
    r = runner.invoke(app, ["retry", str(big)])
    assert r.exit_code == 0 and "was skipped: 2.1 MB is over your 1.0 MB max_file_size" in r.output
    assert "will be tried on the next backup" in r.output
    assert _json(app, "why", str(big))["state"] == "pending"
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_skipped == 1 and _json(app, "why", str(big))["code"] == "too_large"
    cfg.policy.max_file_size = "3MB"
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_uploaded == 1 and _json(app, "why", str(big))["state"] == "backed up"


def test_retry_all_and_retries_go_behind_fresh_work(home: Any, app: typer.Typer) -> None:
    paths, cfg, photos = home
    cfg.policy.upload_concurrency = 1
    cfg.policy.hash_workers = 1
    write(photos / "a_failed.mp4", mp4_bytes(1000, seed=1))
    srv = FakeServer()
    srv.check_status = 500  # every check fails: the file is parked with back-off
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_failed == 1
    assert _json(app, "problems")[0]["next_retry_at"] > time.time()
    out = _json(app, "retry", "--all")
    assert [o["done"] for o in out] == [True]
    srv.check_status = None
    for i in range(3):
        write(photos / f"z_new{i}.mp4", mp4_bytes(1000, seed=10 + i))
    order: list[str] = []

    def on_event(e: Event) -> None:
        if isinstance(e, UploadStarted):
            order.append(os.path.basename(e.path))

    s = run_backup(paths, cfg, on_event, transport=srv.transport())
    assert s.ok and s.files_uploaded == 4
    assert sorted(order[:3]) == ["z_new0.mp4", "z_new1.mp4", "z_new2.mp4"] and order[3] == "a_failed.mp4"
    r = runner.invoke(app, ["retry", "--all"])
    assert r.exit_code == 0 and "Nothing to retry" in r.output
    r = runner.invoke(app, ["retry"])
    assert r.exit_code == 1 and "camroll retry --all" in r.output


def test_ignore_and_undo(home: Any, app: typer.Typer) -> None:
    paths, cfg, photos = home
    a = write(photos / "a.jpg", jpeg_bytes(1))
    srv = FakeServer()
    run_backup(paths, cfg, transport=srv.transport())
    b = write(photos / "b.jpg", jpeg_bytes(2))  # not seen by any scan yet
    r = runner.invoke(app, ["ignore", str(b)])
    assert r.exit_code == 0 and f"undo with camroll ignore --undo {b}" in r.output
    r = runner.invoke(app, ["ignore", str(a)])
    assert "its copy already on the server stays there" in r.output
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_uploaded == 0 and len(srv.assets) == 1
    story = _json(app, "why", str(b))
    assert story["state"] == "ignored" and story["fix"] == f"camroll ignore --undo {b}"
    assert _json(app, "problems") == []
    st = _json(app, "status")
    assert st["files"]["ignored"] == 2 and st["headline"] == "All 0 files backed up"
    assert _json(app, "ignore", str(b), "--undo")["done"] is True
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_uploaded == 1 and len(srv.assets) == 2
    assert _json(app, "why", str(a))["state"] == "ignored"


def test_server_limits_and_types_come_from_the_server(home: Any, app: typer.Typer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from camroll.agent.backup import rulegate

    paths, cfg, photos = home
    write(photos / "a.jpg", jpeg_bytes(1))
    png = write(photos / "b.png", png_bytes(2))
    big = write(photos / "big.mp4", mp4_bytes(2 * MIB, seed=3))
    srv = FakeServer()
    srv.server_info = _server_info(max_file_size=MIB)
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_uploaded == 1 and s.files_skipped == 2 and s.ok
    assert _json(app, "why", str(png))["reason"] == "the server does not accept image/png files"
    story = _json(app, "why", str(big))
    assert story["code"] == "too_large" and "server's 1.0 MB upload limit" in story["reason"]
    assert run_backup(paths, cfg, transport=srv.transport()).files_skipped == 0  # a day has not passed
    # The server's limit is raised: the skipped files are looked at again by themselves (daily).
    srv.server_info = _server_info(max_file_size=10 * MIB, mimes=("image/jpeg", "image/png", "video/mp4"))
    monkeypatch.setattr(rulegate, "RECHECK_SKIPS_SECONDS", 0)
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_uploaded == 2 and len(srv.assets) == 3


def test_too_old_client_stops_the_pass_with_the_fix(home: Any, app: typer.Typer) -> None:
    paths, cfg, photos = home
    write(photos / "a.jpg", jpeg_bytes(1))
    srv = FakeServer()
    srv.server_info = _server_info(min_client="99.0")
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_uploaded == 0 and s.stopped_code == "client_too_old" and s.files_waiting == 1
    assert s.headline == ("Stopped: this camroll (0.1.0) is too old for the server, which needs 99.0 or later. "
                          "Fix: update camroll to 99.0 or later; backup resumes by itself.")
    st = _json(app, "status")
    assert st["stopped_code"] == "client_too_old" and st["headline"] == s.headline
    story = _json(app, "why", str(photos / "a.jpg"))
    assert story["state"] == "pending" and story["blocked_by"] == s.headline


def test_still_being_written_waits_then_goes(home: Any, app: typer.Typer) -> None:
    paths, cfg, photos = home
    p = write(photos / "a.jpg", jpeg_bytes(1))
    srv = FakeServer()
    s = run_backup(paths, cfg, transport=srv.transport(), settle_seconds=60)
    assert s.files_waiting == 1 and not srv.assets
    st = _json(app, "status")
    assert st["headline"].startswith("1 file waiting: still being written")
    assert st["fix"] == "Nothing to do: it is backed up once it stops changing."
    _old(p)  # the writer is done (and the scanner sees the change of mtime)
    s = run_backup(paths, cfg, transport=srv.transport(), settle_seconds=60)
    assert s.files_uploaded == 1


def test_truncated_photo_is_backed_up_with_a_warning(home: Any, app: typer.Typer) -> None:
    paths, cfg, photos = home
    data = jpeg_bytes(1)
    p = write(photos / "cut.jpg", data[: len(data) // 2])
    srv = FakeServer()
    # Modified just now: most likely still being written, so it waits rather than going up half-done.
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_waiting == 1 and not srv.assets
    story = _json(app, "why", str(p))
    assert story["state"] == "waiting" and story["reason"].startswith("still being written (it has no end marker")
    _old(p)  # it stayed that way: damaged, not in progress
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.ok and s.files_uploaded == 1
    story = _json(app, "why", str(p))
    assert story["state"] == "backed up" and "probably truncated" in story["warning"]
    st = _json(app, "status")
    assert st["warnings"][0]["path"] == str(p)


class _FixedProbes(Probes):
    def __init__(self, conditions: Conditions) -> None:
        self.conditions = conditions

    def all(self) -> Conditions:
        return self.conditions


def _network(tmp_path: Path, kind: Any, metered: bool | None) -> _FixedProbes:
    blank = Probes(root=tmp_path / "none", runner=SubprocessRunner(path=str(tmp_path / "none"))).all()
    return _FixedProbes(replace(blank, network=replace(blank.network, kind=kind, metered=metered)))


def test_metered_daily_cap_pauses_then_resumes_on_wifi(home: Any, app: typer.Typer, tmp_path: Path) -> None:
    paths, cfg, photos = home
    cfg.policy.metered_daily_cap_mb = 1
    cfg.policy.upload_concurrency = 1
    for i in range(3):
        write(photos / f"{i}.mp4", mp4_bytes(MIB, seed=i))
    srv = FakeServer()
    mobile = _network(tmp_path, "cellular", True)
    s = run_backup(paths, cfg, transport=srv.transport(), probes=mobile)
    cap = ("Paused: 1 MB of mobile data used today, your daily cap. Connect to Wi-Fi or raise "
           "metered_daily_cap_mb.")
    assert s.headline == cap and s.paused_by_policy == "metered_cap"
    assert 1_000_000 <= s.bytes_sent <= 1_000_000 + 2 * MIB
    assert _json(app, "status")["headline"] == cap  # paused mid-pass: still a pause, not a "Stopped:"
    sent = srv.bytes_received
    s = run_backup(paths, cfg, transport=srv.transport(), probes=mobile)
    assert s.headline == cap and srv.bytes_received == sent  # nothing more today on mobile data
    st = _json(app, "status")
    assert st["headline"] == cap and st["paused_by_policy"] == "metered_cap"
    s = run_backup(paths, cfg, transport=srv.transport(), probes=_network(tmp_path, "wifi", False))
    assert s.ok and len(srv.assets) == 3


V1_SCHEMA = """
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, folder TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, sha256 TEXT, mime TEXT,
    state TEXT NOT NULL DEFAULT 'pending', reason TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
    next_retry_at REAL, asset_id INTEGER, upload_url TEXT, upload_offset INTEGER, first_seen_at REAL NOT NULL,
    backed_up_at REAL, updated_at REAL NOT NULL);
CREATE INDEX files_state ON files(state);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO files (path, folder, size, mtime_ns, inode, state, reason, first_seen_at, updated_at, asset_id)
    VALUES ('/p/a.jpg', '/p', 10, 1, 1, 'backed_up', 'uploaded and verified by the server', 1, 1, 7),
           ('/p/e.jpg', '/p', 0, 1, 2, 'skipped', 'empty file (0 bytes)', 1, 1, NULL),
           ('/p/q.mp4', '/p', 10, 1, 3, 'uploading', 'waiting: storage quota exceeded', 1, 1, NULL);
PRAGMA user_version=1;
"""


def test_version_1_state_db_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.close()
    with StateDB(path) as db:
        assert db.get_meta("schema_version") == "2"
        a, e, q = (db.find(p) for p in ("/p/a.jpg", "/p/e.jpg", "/p/q.mp4"))
        assert a is not None and a.state == "backed_up" and a.asset_id == 7 and a.code == ""
        assert e is not None and e.state == "skipped" and e.code == "empty"
        assert q is not None and q.state == "waiting" and q.code == "quota"
        db.add_event(a.id, "checked", "x")
        assert [ev.kind for ev in db.events(a.id)] == ["checked"]
    with StateDB(path) as db:  # opening again is a no-op
        assert db._conn.execute("PRAGMA user_version").fetchone()[0] == 2


def test_history_is_bounded(tmp_path: Path) -> None:
    from camroll.agent.state.db import EVENTS_PER_FILE, NewFile

    with StateDB(tmp_path / "s.db") as db:
        db.apply_scan([NewFile("/p/a.jpg", "/p", 1, 1, 1)], [], [], [])
        fid = db.index()["/p/a.jpg"][0]
        for i in range(EVENTS_PER_FILE + 15):
            db.add_event(fid, "checked", str(i))
        db.prune_events()
        details = [e.detail for e in db.events(fid)]
        assert len(details) == EVENTS_PER_FILE and details[-1] == str(EVENTS_PER_FILE + 14)


def test_names_that_are_not_utf8_are_backed_up_and_shown_readably(home: Any, app: typer.Typer) -> None:
    paths, cfg, photos = home
    write(photos / "ok.jpg", jpeg_bytes(1))
    raw = os.fsencode(photos) + b"/caf\xe9.jpg"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, jpeg_bytes(2))
    os.close(fd)
    srv = FakeServer()
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_uploaded == 2 and s.ok
    # The server got the readable name and the exact bytes.
    (uploaded,) = [m for m in srv.metas if m.get(wire.META_PATH_RAW)]
    assert wire.raw_name_from_wire(uploaded[wire.META_PATH_RAW]) == raw
    assert uploaded[wire.META_PATH] == f"{photos}/caf\\xe9.jpg" and uploaded[wire.META_FILENAME] == "caf\\xe9.jpg"
    assert _json(app, "problems") == []
    # 'why' takes the name as the shell passes it (sys.argv holds it surrogate-escaped).
    story = _json(app, "why", os.fsdecode(raw))
    assert story["state"] == "backed up" and story["path"] == f"{photos}/caf\\xe9.jpg"
    assert story["path_raw"] is not None and wire.raw_name_from_wire(story["path_raw"]) == raw
    # ...and as camroll printed it, copied from 'camroll problems' or 'status'.
    assert _json(app, "why", f"{photos}/caf\\xe9.jpg")["path_raw"] == story["path_raw"]
    text = runner.invoke(app, ["why", os.fsdecode(raw)])
    assert text.exit_code == 0 and "caf\\xe9.jpg" in text.output, text.output
    # An unchanged second pass finds it again by its bytes: nothing new, nothing sent.
    s2 = run_backup(paths, cfg, transport=srv.transport())
    assert (s2.files_new, s2.files_uploaded, s2.bytes_sent) == (0, 0, 0)


def test_unreadable_file_is_retried_as_soon_as_it_opens(home: Any, app: typer.Typer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Root reads any file, so the permission error is injected; everything else is real.
    from camroll.agent.backup import hasher

    paths, cfg, photos = home
    p = write(photos / "locked.jpg", jpeg_bytes(1))
    real = hasher.hash_file

    def denied(path: str, chunk_size: int = 0) -> Any:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(hasher, "hash_file", denied)
    srv = FakeServer()
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_failed == 1
    story = _json(app, "why", str(p))
    assert story["code"] == "unreadable" and "Permission denied" in story["reason"]
    assert story["fix"].startswith("Make it readable by this user") and story["next_retry_at"] > time.time() + 5
    monkeypatch.setattr(hasher, "hash_file", real)
    # Its back-off has not passed, but it opens now (permissions fixed): the next pass takes it.
    s = run_backup(paths, cfg, transport=srv.transport())
    assert s.files_uploaded == 1 and _json(app, "why", str(p))["state"] == "backed up"
