"""The state DB as a cache: damage detected at open and rebuilt without re-uploading; reset-cache."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from support.media import jpeg_bytes, png_bytes, write

from camroll.agent.backup.reset import reset_cache, reset_text
from camroll.agent.backup.run import run_backup
from camroll.agent.paths import AgentPaths
from camroll.agent.settings.conditions import Probes, SubprocessRunner
from camroll.agent.settings.config import AgentConfig, PolicyConfig, ServerConfig
from camroll.agent.state import cache
from camroll.agent.state.cache import (
    is_damage,
    open_state_db,
    rebuild_notice,
    rebuilt_info,
)
from camroll.agent.state.db import NewFile, StateDB

from .fakeserver import FakeServer


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from camroll.agent.backup import retry

    monkeypatch.setattr(retry.Backoff, "delay", lambda self, n, rng=None: 0.0)


@pytest.fixture
def probes(tmp_path: Path) -> Probes:
    """A machine where nothing is known (never blocks the default policy): the suite must not depend on
    this machine's battery."""
    blank = tmp_path / "blank-machine"
    return Probes(root=blank, runner=SubprocessRunner(path=str(blank)))


def _paths(tmp_path: Path) -> AgentPaths:
    return AgentPaths.in_dir(tmp_path / "home")


def _filled_db(path: Path, n: int = 3000) -> None:
    with StateDB(path) as db:
        db.apply_scan([NewFile(f"/photos/IMG_{i:06d}.jpg", "/photos", 1000 + i, i, i) for i in range(n)], [], [], [])


def _notes() -> tuple[list[str], Callable[[str], None]]:
    seen: list[str] = []
    return seen, seen.append


def test_missing_and_healthy_db_are_opened_as_they_are(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    seen, note = _notes()
    with open_state_db(paths, notify=note) as db:
        assert rebuild_notice(db) is None
        db.set_meta("x", "1")
    with open_state_db(paths, notify=note) as db:
        assert db.get_meta("x") == "1"
    assert seen == []
    assert sorted(p.name for p in paths.state_db.parent.iterdir() if "corrupt" in p.name) == []


def test_garbage_file_is_moved_aside_and_replaced(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    paths.state_db.parent.mkdir(parents=True)
    garbage = b"this is not an SQLite database at all " * 500
    paths.state_db.write_bytes(garbage)
    paths.state_db.with_name("state.db-wal").write_bytes(b"stale wal")
    seen, note = _notes()
    with open_state_db(paths, notify=note, now=lambda: 1_790_000_000.0) as db:
        info = rebuilt_info(db)
        assert info is not None and info.kind == "damaged" and "not a database" in info.why
        notice = rebuild_notice(db)
        assert db.counts().files == {}
    assert notice is not None and notice.startswith("The local state database was damaged (file is not a database) "
                                                    "and was rebuilt on ")
    assert "nothing was re-uploaded" in notice
    assert seen == [notice]
    old = Path(info.old_file)
    assert old.name.startswith("state.db.corrupt-") and old.read_bytes() == garbage  # kept, never deleted
    assert old.with_name(old.name + "-wal").read_bytes() == b"stale wal"
    # The fresh DB is healthy: opening again changes nothing and says nothing new.
    with open_state_db(paths, notify=note) as db:
        assert rebuilt_info(db) == info
    assert len(seen) == 1


def test_truncated_db_is_detected(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    _filled_db(paths.state_db)
    size = paths.state_db.stat().st_size
    with open(paths.state_db, "r+b") as f:
        f.truncate(size // 2 + 100)  # mid-page
    seen, note = _notes()
    with open_state_db(paths, notify=note) as db:
        info = rebuilt_info(db)
        assert info is not None and info.kind == "damaged"
    assert len(seen) == 1


def _damage_middle(path: Path) -> None:
    """Overwrite pages in the middle of the file: the header stays valid, so only a page walk finds it."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2 - (size // 2) % 4096)
        f.write(b"\xa5" * 3 * 4096)


def test_damage_inside_a_large_db_is_found_at_most_a_day_later(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _paths(tmp_path)
    _filled_db(paths.state_db)
    monkeypatch.setattr(cache, "QUICK_CHECK_MAX_BYTES", 1024)  # this DB now counts as large
    clock = [1_790_000_000.0]
    with open_state_db(paths, notify=None, now=lambda: clock[0]) as db:  # checked: no check recorded yet
        assert db.get_meta(cache.META_LAST_CHECK) == f"{clock[0]:.3f}"
    _damage_middle(paths.state_db)
    clock[0] += 3600
    with open_state_db(paths, notify=None, now=lambda: clock[0]) as db:  # checked an hour ago: trusted
        assert rebuilt_info(db) is None
    clock[0] += 24 * 3600
    with open_state_db(paths, notify=None, now=lambda: clock[0]) as db:
        info = rebuilt_info(db)
    assert info is not None and info.kind == "damaged"


def test_small_db_is_checked_on_every_open(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    _filled_db(paths.state_db)
    open_state_db(paths, notify=None).close()
    _damage_middle(paths.state_db)
    with open_state_db(paths, notify=None) as db:
        assert rebuilt_info(db) is not None


def test_only_damage_counts_as_damage() -> None:
    assert not is_damage(sqlite3.OperationalError("database is locked"))
    assert not is_damage(OSError("disk full"))
    assert is_damage(sqlite3.DatabaseError("database disk image is malformed"))


def _setup(tmp_path: Path) -> tuple[AgentPaths, AgentConfig, Path]:
    photos = tmp_path / "photos"
    for i in range(6):
        write(photos / f"p{i}.jpg", jpeg_bytes(i))
    write(photos / "sub" / "x.png", png_bytes(9))
    write(photos / "notes.txt", b"not a photo")
    cfg = AgentConfig(server=ServerConfig(url="http://camroll.test", username="ann", device_id=1, device_name="d",
                                          token="t"),
                      folders=[str(photos)], policy=PolicyConfig(chunk_size_mib=1))
    return _paths(tmp_path), cfg, photos


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_backup_after_damage_uploads_nothing_again(tmp_path: Path, probes: Probes, damage: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    paths, cfg, _ = _setup(tmp_path)
    srv = FakeServer()
    first = run_backup(paths, cfg, transport=srv.transport(), probes=probes)
    assert first.files_uploaded == 7 and first.ok
    if damage == "garbage":
        paths.state_db.write_bytes(b"\x00garbage" * 4096)
    else:
        with StateDB(paths.state_db) as db:  # make it several pages long, then cut it mid-page
            db.apply_scan([NewFile(f"/elsewhere/{i}.jpg", "/elsewhere", 1, i, i) for i in range(2000)], [], [], [])
        with open(paths.state_db, "r+b") as f:
            f.truncate(paths.state_db.stat().st_size // 2 + 77)
    received = srv.bytes_received
    again = run_backup(paths, cfg, transport=srv.transport(), probes=probes)
    assert again.ok, again
    assert again.bytes_uploaded == 0 and again.files_uploaded == 0
    assert again.files_already_on_server == 7 and srv.bytes_received == received
    err = capsys.readouterr().err
    assert "The local state database was damaged" in err and "nothing was re-uploaded" in err
    with StateDB(paths.state_db) as db:
        assert db.counts().files.get("backed_up") == 7
    assert list(paths.state_db.parent.glob("state.db.corrupt-*"))


def test_reset_cache_rebuilds_without_uploading(tmp_path: Path, probes: Probes) -> None:
    paths, cfg, _ = _setup(tmp_path)
    srv = FakeServer()
    assert run_backup(paths, cfg, transport=srv.transport(), probes=probes).files_uploaded == 7
    received = srv.bytes_received
    result = reset_cache(paths, cfg, transport=srv.transport(), probes=probes)
    s = result.summary
    assert (s.bytes_uploaded, s.files_uploaded, s.files_already_on_server) == (0, 0, 7)
    assert srv.bytes_received == received
    assert result.old_file is not None and result.old_file.name.startswith("state.db.bak-")
    with StateDB(result.old_file) as old:  # the old DB is complete (its WAL was folded in first)
        assert old.counts().files.get("backed_up") == 7
    text = reset_text(result)
    assert text.startswith("rebuilt: 7 files, all already on the server; 0 bytes uploaded; 1 skipped")
    assert str(result.old_file) in text
    with StateDB(paths.state_db) as db:
        info = rebuilt_info(db)
        assert info is not None and info.kind == "reset"
        assert db.counts().files.get("backed_up") == 7


def test_reset_cache_refuses_before_moving_anything(tmp_path: Path, probes: Probes) -> None:
    from camroll.agent.errors import AgentError, NotLoggedIn

    paths, cfg, _ = _setup(tmp_path)
    _filled_db(paths.state_db, 10)
    with pytest.raises(NotLoggedIn):
        reset_cache(paths, AgentConfig(folders=cfg.folders), probes=probes)
    with pytest.raises(AgentError, match="No folders"):
        reset_cache(paths, AgentConfig(server=cfg.server), probes=probes)
    assert not list(paths.state_db.parent.glob("state.db.bak-*"))
