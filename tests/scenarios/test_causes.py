"""One scenario per known reason an auto-backup stops (DESIGN.md section 1): induce it, check that the
agent names the cause and the fix, clear it, check that backup finishes with no user action."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from support.media import jpeg_bytes, write
from support.wait import wait_until

from .conftest import ScenarioAgent
from .flow import all_clear, arrives, expect_named, lower, start_daemon, stays_off_server
from .machine import FakeMachine


def noisy_jpeg(seed: int, size: tuple[int, int] = (400, 300)) -> bytes:
    """A complete JPEG of random pixels: it barely compresses, so it is a few hundred KB."""
    import io
    import random

    from PIL import Image

    rng = random.Random(seed)
    img = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _blocked_pass(agent: ScenarioAgent) -> dict[str, Any]:
    r = agent.run("backup", "--json", check=False)
    assert r.returncode == 2, f"expected a paused/stopped pass (exit 2), got {r.returncode}\n{r.stdout}{r.stderr}"
    import json

    return dict(json.loads(r.stdout))


def test_battery_low_pauses_and_charging_resumes(agent: ScenarioAgent, machine: FakeMachine, photos: Path) -> None:
    machine.battery(10, charging=False)
    data = jpeg_bytes(1)
    photo = write(photos / "IMG_0001.jpg", data)
    _blocked_pass(agent)
    expect_named(agent, photo, "battery 10%", "plug in")
    start_daemon(agent)
    stays_off_server(agent, data)
    machine.battery(11, charging=True)
    arrives(agent, data)
    all_clear(agent)


def test_power_saver_pauses_until_it_is_off(agent: ScenarioAgent, machine: FakeMachine, photos: Path) -> None:
    machine.power_profile("low-power")
    data = jpeg_bytes(2)
    photo = write(photos / "IMG_0002.jpg", data)
    _blocked_pass(agent)
    expect_named(agent, photo, "power saver", "pause_on_power_saver")
    start_daemon(agent)
    stays_off_server(agent, data)
    machine.power_profile("balanced")
    arrives(agent, data)


def test_metered_connection_waits_for_an_unmetered_one(agent: ScenarioAgent, machine: FakeMachine,
                                                         photos: Path) -> None:
    agent.run("settings", "set", "allow_metered", "false")
    machine.network("wifi", metered=True)
    data = jpeg_bytes(3)
    photo = write(photos / "IMG_0003.jpg", data)
    _blocked_pass(agent)
    expect_named(agent, photo, "metered", "allow_metered")
    start_daemon(agent)
    stays_off_server(agent, data)
    machine.network("wifi", metered=False)
    arrives(agent, data)


def test_wifi_only_on_mobile_data_waits_for_wifi(agent: ScenarioAgent, machine: FakeMachine, photos: Path) -> None:
    agent.run("settings", "set", "wifi_only", "true")
    machine.network("gsm", metered=None)
    data = jpeg_bytes(4)
    photo = write(photos / "IMG_0004.jpg", data)
    _blocked_pass(agent)
    expect_named(agent, photo, "mobile data", "wifi_only")
    start_daemon(agent)
    stays_off_server(agent, data)
    # A cable counts as "not mobile data": wifi_only means "never pay for data", and wired rarely costs.
    machine.network("ethernet", metered=False)
    arrives(agent, data)


def test_switched_off_says_when_and_resumes_when_switched_on(agent: ScenarioAgent, photos: Path) -> None:
    agent.run("settings", "set", "enabled", "false")
    data = jpeg_bytes(5)
    photo = write(photos / "IMG_0005.jpg", data)
    _blocked_pass(agent)
    status = expect_named(agent, photo, "switched off", "enabled true", doctor_fails=True)
    # When it was switched off is part of the story (a setting changed by accident).
    day = f"{time.localtime().tm_mday} {time.strftime('%b')} at"
    assert day in agent.run("doctor", check=False).stdout
    assert f"turned off on {day}" in agent.run("status").stdout
    assert status["files"].get("pending", 0) + status["files"].get("waiting", 0) >= 1
    start_daemon(agent)
    stays_off_server(agent, data)
    agent.run("settings", "set", "enabled", "true")
    arrives(agent, data)


def test_quota_full_stops_and_resumes_when_raised(server: Any, agent: ScenarioAgent, photos: Path) -> None:
    server.run_admin("user", "set", "ann", "--quota", "1KB")
    data = jpeg_bytes(6, (640, 480))
    photo = write(photos / "IMG_0006.jpg", data)
    _blocked_pass(agent)
    expect_named(agent, photo, "quota", "quota", doctor_fails=True)
    start_daemon(agent)
    stays_off_server(agent, data)
    server.run_admin("user", "set", "ann", "--quota", "1GB")
    arrives(agent, data)


def test_file_over_the_size_limit_is_named_and_backed_up_when_raised(agent: ScenarioAgent, photos: Path) -> None:
    agent.run("settings", "set", "max_file_size", "100KB")
    small = jpeg_bytes(7)
    big = noisy_jpeg(8)
    assert len(big) > 120_000
    write(photos / "small.jpg", small)
    big_photo = write(photos / "big.jpg", big)
    agent.run("backup", "--json", check=False)
    assert agent.server_has(small) is not None  # one large file never holds up the others
    problems = agent.json("problems")
    rows = problems["files"] if isinstance(problems, dict) else problems
    row = next(r for r in rows if r["path"] == str(big_photo))
    assert "max_file_size" in lower(row["reason"]) + lower(row.get("fix") or "")
    why = agent.run("why", str(big_photo)).stdout
    assert "max_file_size" in why
    start_daemon(agent)
    agent.run("settings", "set", "max_file_size", "10MB")
    arrives(agent, big)


def test_unsupported_file_is_skipped_with_a_reason_and_never_blocks(agent: ScenarioAgent, photos: Path) -> None:
    good = jpeg_bytes(9)
    write(photos / "IMG_0009.jpg", good)
    notes = write(photos / "notes.jpg", b"shopping list: milk, eggs\n" * 20)
    summary = agent.backup()
    assert summary["files_uploaded"] == 1
    why = agent.run("why", str(notes)).stdout
    assert "not a photo or video" in lower(why) or "unsupported" in lower(why)
    rows = agent.json("problems")
    rows = rows["files"] if isinstance(rows, dict) else rows
    assert [r["path"] for r in rows] == [str(notes)]
    # Taking the file away clears the problem.
    notes.unlink()
    agent.backup()
    rows = agent.json("problems")
    assert not (rows["files"] if isinstance(rows, dict) else rows)


def test_server_needing_a_newer_client_says_update(server: Any, agent: ScenarioAgent, photos: Path) -> None:
    data = jpeg_bytes(10)
    photo = write(photos / "IMG_0010.jpg", data)
    server.stop()
    server.extra_args = ("--min-client-version", "99.0.0")
    server.start()
    _blocked_pass(agent)
    expect_named(agent, photo, "too old", "update camroll", doctor_fails=True)
    start_daemon(agent)
    stays_off_server(agent, data)
    server.stop()
    server.extra_args = ()
    server.start()
    arrives(agent, data)


def test_server_down_then_up_resumes(server: Any, agent: ScenarioAgent, photos: Path) -> None:
    data = jpeg_bytes(11)
    photo = write(photos / "IMG_0011.jpg", data)
    server.stop()
    _blocked_pass(agent)
    status = agent.json("status")
    assert "cannot reach" in lower(status["headline"]) or "unreachable" in lower(status["headline"])
    doctor = agent.json("doctor")
    assert doctor["ok"] is False
    assert any("refused" in lower(c["message"]) for c in doctor["checks"]), doctor["checks"]
    assert "server" in lower(agent.run("why", str(photo)).stdout)
    start_daemon(agent)
    time.sleep(1.0)
    server.start()
    arrives(agent, data)


def test_corrupt_state_db_is_rebuilt_without_reuploading(agent: ScenarioAgent, photos: Path) -> None:
    first = jpeg_bytes(12, (320, 240))
    write(photos / "IMG_0012.jpg", first)
    agent.backup()
    db = agent.home / "state.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 1000)
    second = jpeg_bytes(13)
    write(photos / "IMG_0013.jpg", second)
    summary = agent.backup()
    assert summary["files_uploaded"] == 1 and summary["files_already_on_server"] == 1
    assert summary["bytes_uploaded"] == len(second)
    assert "rebuilt" in lower(agent.run("status").stdout)
    assert "rebuilt" in lower(agent.run("doctor", check=False).stdout)
    sqlite3.connect(db).execute("PRAGMA quick_check").fetchall()


def test_one_unreadable_file_never_blocks_the_rest(agent: ScenarioAgent, photos: Path) -> None:
    good = [jpeg_bytes(20 + i) for i in range(3)]
    for i, d in enumerate(good):
        write(photos / f"IMG_002{i}.jpg", d)
    locked_data = jpeg_bytes(30)
    locked = write(photos / "IMG_0030.jpg", locked_data)
    locked.chmod(0)
    try:
        agent.run("backup", "--json", check=False)
        assert all(agent.server_has(d) is not None for d in good)
        status = agent.json("status")
        assert "1 file" in lower(status["headline"]), status["headline"]
        why = lower(agent.run("why", str(locked)).stdout)
        assert "permission" in why
        rows = agent.json("problems")
        rows = rows["files"] if isinstance(rows, dict) else rows
        assert [r["path"] for r in rows] == [str(locked)]
        start_daemon(agent)
    finally:
        locked.chmod(0o644)
    arrives(agent, locked_data)


def test_file_still_being_written_waits_until_stable(agent: ScenarioAgent, photos: Path) -> None:
    data = jpeg_bytes(40, (800, 600))
    growing = photos / "VID_0040.jpg"
    with open(growing, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        r = agent.run("backup", "--json", check=False)
        assert agent.server_has(data[: len(data) // 2]) is None
        why = lower(agent.run("why", str(growing)).stdout)
        assert "still being written" in why, why + r.stdout
        start_daemon(agent)
        time.sleep(1.0)
        f.write(data[len(data) // 2:])
    arrives(agent, data)
    wait_until(lambda: agent.server_has(data[: len(data) // 2]) is None,
               what="the half-written version was never stored")
