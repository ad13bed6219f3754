"""The agent loop: its schedule (pure functions), heartbeats, and the loop itself in-process against a
real ``camroll serve``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.media import jpeg_bytes

from camroll import wire
from camroll.agent.events import Summary
from camroll.agent.paths import AgentPaths
from camroll.agent.report.status import FileProblem, Status
from camroll.agent.service.daemon import (
    RETRY_FLOOR,
    Daemon,
    DaemonOptions,
    PassOutcome,
    backoff_delay,
    earliest_retry,
    lock_busy,
    pass_line,
    plan_after,
)
from camroll.agent.service.heartbeat import META_CLOCK_SKEW, HeartbeatSender, from_status
from camroll.agent.service.lock import pass_lock
from camroll.agent.settings.config import load_config, save_config
from camroll.agent.state.db import StateDB
from camroll.agent.state.tally import Tally
from camroll.agent.stops import Stop, StopCode

OPTS = DaemonOptions(rescan_interval=900, condition_interval=60, retry_base=30, retry_cap=900, lock_retry=10)


# --- schedule -----------------------------------------------------------------------------------------
def test_backoff_doubles_from_30_seconds_to_a_15_minute_cap() -> None:
    assert [backoff_delay(n, 30, 900) for n in range(1, 8)] == [30, 60, 120, 240, 480, 900, 900]
    assert backoff_delay(10_000, 30, 900) == 900


def test_after_a_clean_pass_the_next_is_the_periodic_rescan() -> None:
    plan = plan_after(PassOutcome(Summary(headline="Everything is backed up")), 0, OPTS, now=0, next_retry_at=None)
    assert (plan.delay, plan.paused) == (900, False)


def test_a_failed_files_retry_time_brings_the_next_pass_forward() -> None:
    plan = plan_after(PassOutcome(Summary(files_failed=1)), 0, OPTS, now=1000, next_retry_at=1075)
    assert plan.delay == 75
    assert "retry" in plan.why
    # A retry time already past means: soon, but never a pass every tick.
    assert plan_after(PassOutcome(Summary()), 0, OPTS, now=1000, next_retry_at=900).delay == RETRY_FLOOR


def test_waiting_files_are_looked_at_again_soon() -> None:
    plan = plan_after(PassOutcome(Summary(files_waiting=2)), 0, OPTS, now=0, next_retry_at=None)
    assert plan.delay == OPTS.condition_interval


def test_a_policy_pause_rechecks_conditions_and_a_server_stop_backs_off() -> None:
    paused = Summary(stop=Stop(StopCode.PAUSED, "Paused: battery 14%", policy="battery_low"))
    assert plan_after(PassOutcome(paused), 0, OPTS, now=0, next_retry_at=None).paused
    down = Summary(stop=Stop(StopCode.UNREACHABLE, "Cannot reach the camroll server"))
    assert plan_after(PassOutcome(down), 1, OPTS, now=0, next_retry_at=None).delay == 30
    assert plan_after(PassOutcome(down), 3, OPTS, now=0, next_retry_at=None).delay == 120
    assert plan_after(PassOutcome(busy=True), 0, OPTS, now=0, next_retry_at=None).delay == OPTS.lock_retry
    assert plan_after(PassOutcome(error="x"), 2, OPTS, now=0, next_retry_at=None).delay == 60


def test_pass_line_names_what_moved() -> None:
    s = Summary(headline="Everything is backed up", files_uploaded=3, bytes_sent=2_500_000, duration_s=1.2,
                files_failed=1)
    assert pass_line(s) == "Everything is backed up [3 uploaded (2.5 MB in 1.2 s), 1 failed]"
    assert pass_line(Summary(headline="Everything is backed up")) == "Everything is backed up"


def test_lock_busy_sees_another_backup(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    assert not lock_busy(db)
    with pass_lock(db):
        assert lock_busy(db)
    assert not lock_busy(db)


def test_earliest_retry_reads_the_state_db(tmp_path: Path) -> None:
    from camroll.agent.state.db import NewFile

    db_path = tmp_path / "state.db"
    assert earliest_retry(db_path) is None
    with StateDB(db_path) as db:
        db.apply_scan([NewFile(f"/p/{i}.jpg", "/p", 1, 1, i) for i in range(3)], [], [], [])
        rows = db.work_items(time.time())
        db.set_failed(rows[0].id, "boom", 5000.0)
        db.set_failed(rows[1].id, "boom", 4000.0)
    assert earliest_retry(db_path) == 4000.0


# --- heartbeats -------------------------------------------------------------------------------------
def _status(**kw: Any) -> Status:
    files = {"pending": 2, "uploading": 1, "backed_up": 10, "failed": 1, "skipped": 1, "vanished": 4}
    base: dict[str, Any] = dict(
        headline="1 file failed: boom", logged_in=True, server_url="http://x", folders=["/p"], files=files,
        bytes={"pending": 200, "uploading": 100, "backed_up": 1000, "failed": 5}, last_successful_backup_at=None,
        last_pass_at=1.0, stopped_reason=None,
        failed=[FileProblem("/p/bad.jpg", "boom", 2, 1_700_000_000.0)],
        skipped=[FileProblem("/p/notes.txt", "not a photo or video", 0, None)],
        tally=Tally(backed_up=10, in_progress=3, failed=1, skipped=1))
    base.update(kw)
    return Status(**base)


def test_heartbeat_counts_and_problems_come_from_status() -> None:
    hb = from_status(_status(last_successful_backup_at=1_700_000_000.0))
    assert hb.state == "idle"
    assert (hb.pending_files, hb.pending_bytes) == (3, 300)
    assert (hb.failed_files, hb.skipped_files, hb.backed_up_files) == (1, 1, 10)
    assert [(p.path, p.state) for p in hb.problems] == [("/p/bad.jpg", "failed"), ("/p/notes.txt", "skipped")]
    assert hb.problems[0].next_retry_at is not None and hb.problems[0].next_retry_at.year == 2023
    assert hb.last_success_at is not None and hb.last_success_at.tzinfo is not None
    assert from_status(_status(), running=True).state == "backing_up"


def test_heartbeat_names_the_blocker() -> None:
    paused = from_status(_status(stopped_reason="Paused: battery 14%, below your 20% minimum.",
                                 paused_by_policy="battery_low"))
    assert (paused.state, paused.blocker_code) == ("paused", "battery_low")
    assert paused.blocker is not None and "battery 14%" in paused.blocker
    down = from_status(_status(stopped_reason="Cannot reach the camroll server at http://x (ConnectError)",
                               stopped_code="unreachable"))
    assert (down.state, down.blocker_code) == ("stopped", "unreachable")
    err = from_status(_status(), error="The config file is not valid TOML.")
    assert (err.state, err.headline) == ("error", "The config file is not valid TOML.")


def test_switched_off_with_nothing_to_do_is_still_paused(tmp_path: Path) -> None:
    from camroll.agent.service.heartbeat import build_heartbeat

    paths = _logged_in_paths(tmp_path)
    cfg = load_config(paths.config_file)
    assert build_heartbeat(paths, cfg).state == "idle"
    cfg.policy.enabled = False
    hb = build_heartbeat(paths, cfg)
    assert (hb.state, hb.blocker_code) == ("paused", "disabled")
    assert hb.headline.startswith("Off:")


def test_heartbeat_problems_are_capped() -> None:
    many = [FileProblem(f"/p/{i}.jpg", "boom", 1, None) for i in range(150)]
    assert len(from_status(_status(failed=many)).problems) == wire.MAX_HEARTBEAT_PROBLEMS


def test_heartbeat_fields_are_clipped_to_what_the_server_accepts() -> None:
    # The server refuses longer fields (422); a heartbeat must still go out for a file with a long
    # path or an exception message of many lines.
    long = [FileProblem("/p/" + "d" * 5000 + ".jpg", "boom " * 1000, 1, None, fix="f" * 3000)]
    hb = from_status(_status(failed=long, stopped_reason="s" * 3000))
    (problem,) = [p for p in hb.problems if p.reason.startswith("boom")]
    assert len(problem.path) == wire.MAX_PATH and len(problem.reason) == wire.MAX_TEXT
    assert problem.fix is not None and len(problem.fix) == wire.MAX_TEXT
    assert hb.blocker is not None and len(hb.blocker) == wire.MAX_TEXT
    wire.Heartbeat.model_validate_json(hb.model_dump_json())


def _logged_in_paths(tmp_path: Path, url: str = "http://camroll.test", token: str = "tok") -> AgentPaths:
    from camroll.agent.settings.config import ServerConfig

    paths = AgentPaths.in_dir(tmp_path / "home")
    cfg = load_config(paths.config_file)
    cfg.server = ServerConfig(url=url, device_id=1, device_name="d", token=token)
    save_config(paths.config_file, cfg)
    return paths


def test_a_server_without_the_heartbeat_endpoint_is_tolerated(tmp_path: Path) -> None:
    # An older camroll server: the route does not exist.
    calls: list[str] = []

    def old_server(req: httpx.Request) -> httpx.Response:
        calls.append(f"{req.method} {req.url.path}")
        return httpx.Response(404, json={"detail": "Not Found"})

    paths = _logged_in_paths(tmp_path)
    sender = HeartbeatSender(paths, transport=httpx.MockTransport(old_server))
    cfg = load_config(paths.config_file)
    body = from_status(_status())
    assert sender.send(cfg, body) is None
    assert sender.unsupported
    assert calls == ["PUT /api/v1/devices/current/heartbeat"]
    assert sender.send(cfg, body) is None  # still quiet, still no exception


def test_a_failing_or_unreachable_server_never_raises(tmp_path: Path) -> None:
    def broken(req: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"status": 500, "code": "internal", "detail": "boom"})

    paths = _logged_in_paths(tmp_path)
    cfg = load_config(paths.config_file)
    assert HeartbeatSender(paths, transport=httpx.MockTransport(broken)).send(cfg, from_status(_status())) is None
    down = _logged_in_paths(tmp_path, url="http://127.0.0.1:9")
    assert HeartbeatSender(down).send(load_config(down.config_file), from_status(_status())) is None


def test_the_servers_ack_sets_the_interval_and_the_clock_skew(tmp_path: Path, server: Any) -> None:
    pw = server.add_user("ann")
    paths = _logged_in_paths(tmp_path, url=server.url, token=server.device_token("ann", pw))
    sender = HeartbeatSender(paths)
    ack = sender.send(load_config(paths.config_file), from_status(_status()))
    assert ack is not None, "the server must answer PUT /api/v1/devices/current/heartbeat with a HeartbeatAck"
    assert sender.interval == min(3600.0, max(10.0, float(ack.interval_seconds)))
    with StateDB(paths.state_db) as db:
        skew = db.get_meta(META_CLOCK_SKEW)
    assert skew is not None and abs(float(skew)) < 5  # same machine, same clock


# --- the loop, in-process ---------------------------------------------------------------------------
FAST = DaemonOptions(rescan_interval=600, condition_interval=0.5, debounce=0.3, stable=0.2, retry_base=0.5,
                     retry_cap=2, heartbeat_interval=600, lock_retry=0.3, tick=0.1)


def _until(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def _home_with_folder(tmp_path: Path, server: Any) -> tuple[AgentPaths, Path]:
    """An agent home logged in to ``server`` as a new user, backing up an empty ``photos`` folder."""
    from camroll.agent.settings.account import add_folder

    pw = server.add_user("ann")
    paths = _logged_in_paths(tmp_path, url=server.url, token=server.device_token("ann", pw))
    photos = tmp_path / "photos"
    photos.mkdir()
    cfg = load_config(paths.config_file)
    add_folder(cfg, photos)
    save_config(paths.config_file, cfg)
    return paths, photos


@pytest.fixture
def running(tmp_path: Path, server: Any) -> Iterator[tuple[Daemon, AgentPaths, Path, list[str]]]:

    paths, photos = _home_with_folder(tmp_path, server)
    lines: list[str] = []
    daemon = Daemon(paths, FAST, say=lines.append)
    t = threading.Thread(target=daemon.run, daemon=True)
    t.start()
    try:
        yield daemon, paths, photos, lines
    finally:
        daemon.request_stop()
        t.join(timeout=20)
        assert not t.is_alive(), "the loop did not stop"


def _state(paths: AgentPaths, path: Path) -> str | None:
    with StateDB(paths.state_db) as db:
        row = db.lookup(str(path))
    return None if row is None else str(row[4])


def test_the_loop_backs_up_a_new_file_and_follows_the_config(
        running: tuple[Daemon, AgentPaths, Path, list[str]], tmp_path: Path) -> None:
    daemon, paths, photos, lines = running
    assert _until(lambda: daemon.passes >= 1)
    (photos / "a.jpg").write_bytes(jpeg_bytes(1))
    assert _until(lambda: _state(paths, photos / "a.jpg") == "backed_up"), lines
    assert _until(lambda: any("1 uploaded" in line for line in lines)), lines

    # A folder added to the config while the loop runs is watched at once.
    from camroll.agent.settings.account import add_folder

    more = tmp_path / "more"
    more.mkdir()
    cfg = load_config(paths.config_file)
    add_folder(cfg, more)
    save_config(paths.config_file, cfg)
    assert _until(lambda: str(more) in (daemon._watcher.watched if daemon._watcher else []))
    (more / "b.jpg").write_bytes(jpeg_bytes(2))
    assert _until(lambda: _state(paths, more / "b.jpg") == "backed_up"), lines

    # Switched off: a new file is recorded but not uploaded; switched on: it goes with no other action.
    cfg = load_config(paths.config_file)
    cfg.policy.enabled = False
    save_config(paths.config_file, cfg)
    time.sleep(1.5)
    (photos / "c.jpg").write_bytes(jpeg_bytes(3))
    assert _until(lambda: any(line.endswith("(enabled = false). Run camroll settings set enabled true.")
                              for line in lines)), lines
    assert _until(lambda: _state(paths, photos / "c.jpg") is not None), "the new file was not even recorded"
    time.sleep(0.5)
    assert _state(paths, photos / "c.jpg") != "backed_up"
    cfg.policy.enabled = True
    save_config(paths.config_file, cfg)
    assert _until(lambda: _state(paths, photos / "c.jpg") == "backed_up"), lines

    # A config broken by hand does not stop the loop: it keeps the settings it had and says so.
    good = paths.config_file.read_text()
    paths.config_file.write_text(good + "\nnot toml at all [[\n")
    assert _until(lambda: any("still using the settings read before" in line for line in lines)), lines
    (photos / "d.jpg").write_bytes(jpeg_bytes(4))
    assert _until(lambda: _state(paths, photos / "d.jpg") == "backed_up"), lines


def test_the_loop_waits_for_a_parallel_backup(running: tuple[Daemon, AgentPaths, Path, list[str]]) -> None:
    daemon, paths, photos, lines = running
    assert _until(lambda: daemon.passes >= 1)
    with pass_lock(paths.state_db):
        (photos / "a.jpg").write_bytes(jpeg_bytes(1))
        time.sleep(1.5)
        assert _state(paths, photos / "a.jpg") is None
    assert _until(lambda: _state(paths, photos / "a.jpg") == "backed_up"), lines
    assert not any("already running" in line for line in lines)


def test_a_policy_pause_lifts_by_itself_when_the_battery_recovers(tmp_path: Path, server: Any) -> None:
    """Battery at 10% and discharging (a fake sysfs tree): the new photo waits; the battery reads 80%
    a moment later, and the photo is uploaded with nothing else happening in the folder."""
    from camroll.agent.settings.conditions import Probes
    from camroll.agent.settings.conditions.runner import SubprocessRunner

    root, empty_bin = tmp_path / "root", tmp_path / "bin"
    bat = root / "sys/class/power_supply/BAT0"
    bat.mkdir(parents=True)
    empty_bin.mkdir()
    (bat / "type").write_text("Battery\n")
    (bat / "status").write_text("Discharging\n")
    (bat / "capacity").write_text("10\n")
    paths, photos = _home_with_folder(tmp_path, server)
    (photos / "a.jpg").write_bytes(jpeg_bytes(7))
    lines: list[str] = []
    daemon = Daemon(paths, FAST, say=lines.append,
                    probes=Probes(root=root, runner=SubprocessRunner(path=str(empty_bin))))
    t = threading.Thread(target=daemon.run, daemon=True)
    t.start()
    try:
        assert _until(lambda: any("battery" in line.lower() for line in lines)), lines
        assert _state(paths, photos / "a.jpg") != "backed_up"
        passes = daemon.passes
        time.sleep(1.5)  # condition checks run, the verdict is the same: no new pass
        assert daemon.passes == passes
        (bat / "capacity").write_text("80\n")
        assert _until(lambda: _state(paths, photos / "a.jpg") == "backed_up"), lines
    finally:
        daemon.request_stop()
        t.join(timeout=20)


def test_a_steady_stream_of_photos_goes_one_by_one(tmp_path: Path, server: Any) -> None:
    """One new photo every 1.5 s for 20 s while another file keeps growing: each photo is verified on the
    server within seconds of landing, with the loop's default timings; the growing file holds back only
    itself and goes once it is complete.  (bench/watch_bench.py --stream runs this for 4 minutes.)"""
    paths, photos = _home_with_folder(tmp_path, server)
    opts = DaemonOptions(rescan_interval=600, heartbeat_interval=600)
    daemon = Daemon(paths, opts)
    t = threading.Thread(target=daemon.run, daemon=True)
    t.start()
    grower = photos / "growing.jpg"
    whole = jpeg_bytes(999, size=(1600, 1200))
    landed: dict[Path, float] = {}
    done: dict[Path, float] = {}
    try:
        assert _until(lambda: daemon.passes >= 1)
        with StateDB(paths.state_db) as db:
            start = time.monotonic()
            nxt = 0
            with grower.open("wb") as g:
                while time.monotonic() - start < 24:
                    now = time.monotonic()
                    if nxt < 14 and now >= start + nxt * 1.5:
                        p = photos / f"IMG_{nxt:03d}.jpg"
                        p.write_bytes(jpeg_bytes(nxt))
                        landed[p] = time.monotonic()
                        nxt += 1
                    # The other file grows by a piece every ~0.3 s for 20 s and never has its end marker.
                    if now - start < 20:
                        g.write(whole[:len(whole) - 2][g.tell():g.tell() + max(1, len(whole) // 70)])
                        g.flush()
                    for p in landed:
                        if p not in done:
                            row = db.lookup(str(p))
                            if row is not None and row[4] == "backed_up":
                                done[p] = time.monotonic()
                    time.sleep(0.3)
                assert _state(paths, grower) != "backed_up", "a file still being written was backed up"
                g.write(whole[g.tell():])
        assert _until(lambda: _state(paths, grower) == "backed_up", timeout=30), "the finished file never went"
    finally:
        daemon.request_stop()
        t.join(timeout=20)
    assert sorted(done) == sorted(landed), f"not backed up: {sorted(set(landed) - set(done))}"
    late = sorted(round(done[p] - landed[p], 1) for p in landed)
    # Before, every new file restarted the wait, so nothing went until the stream stopped (or 30 s passed).
    # The 5 s p95 is measured by the bench; on a loaded test machine the median must hold it.
    assert late[len(late) // 2] <= 5.0, f"landed -> verified (s): {late}"
    assert min(done.values()) < start + 20, "nothing was backed up while the stream went on"
