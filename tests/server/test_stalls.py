"""Stall, silence and quota rules on a fake clock, in-process on a real SQLite database."""

from __future__ import annotations

import ipaddress
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from camroll import wire
from camroll.server import migrate
from camroll.server.context import Context
from camroll.server.db import make_engine, make_sessionmaker
from camroll.server.egress import EgressPolicy
from camroll.server.models import Asset, AssetFile, Blob, Device, Incident, Upload, User
from camroll.server.services import accounts, health, notify, stalls
from camroll.server.services.auth import Principal
from camroll.server.services.partfiles import PartFiles
from camroll.server.settings import Settings
from camroll.server.storage.memory import MemoryBlobStore

T0 = datetime(2026, 11, 21, 14, 2, tzinfo=UTC)
MIN = timedelta(minutes=1)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    settings = Settings.for_data_dir(tmp_path, stall_seconds=3600, silence_seconds=24 * 3600)
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    return Context(settings, engine, make_sessionmaker(engine), MemoryBlobStore(), PartFiles(settings.uploads_dir))


def device(ctx: Context, name: str = "pixel", quota: int | None = None) -> Principal:
    user = accounts.add_user(ctx, f"u-{name}", "pw", quota_bytes=quota)
    with ctx.db() as db:
        d = Device(user_id=user.id, name=name, token_hash=f"h-{name}")
        db.add(d)
        db.flush()
        return Principal(user.id, user.username, False, d.id)


def beat(ctx: Context, who: Principal, at: datetime, **fields: Any) -> None:
    body: dict[str, Any] = {"agent_version": "0.1.0", "state": "backing_up", "headline": "Backing up."}
    health.record_heartbeat(ctx, who, wire.Heartbeat.model_validate({**body, **fields}), now=at)


def keys(ctx: Context, at: datetime) -> tuple[list[str], list[str]]:
    """Run one check at ``at``; (open incident keys, bodies of the messages it produced)."""
    messages = stalls.check(ctx, at)
    with ctx.db() as db:
        return sorted(i.key for i in db.query(Incident).all()), [m.body for m in messages]


def test_words_for_times() -> None:
    assert health.when(T0) == "21 Nov 14:02 UTC"
    assert [health.ago(timedelta(seconds=s)) for s in (1, 59, 60, 7200, 3 * 86400 + 5)] == [
        "1 second", "59 seconds", "1 minute", "2 hours", "3 days"]


def test_never_seen_device_is_not_silent(ctx: Context) -> None:
    device(ctx)
    assert keys(ctx, T0 + timedelta(days=30)) == ([], [])


def test_silence_opens_once_and_closes(ctx: Context) -> None:
    who = device(ctx)
    beat(ctx, who, T0, state="idle")
    assert keys(ctx, T0 + 23 * 60 * MIN) == ([], [])
    later = T0 + timedelta(days=3)
    opened, bodies = keys(ctx, later)
    assert opened == [f"device:{who.device_id}:silent"]
    assert bodies == ["camroll on 'pixel' has not been heard from since 21 Nov 14:02 UTC (3 days). Fix: open "
                      "camroll on that device or check that `camroll agent` is running."]
    assert keys(ctx, later + MIN) == (opened, [])
    beat(ctx, who, later + 2 * MIN, state="idle")
    assert keys(ctx, later + 3 * MIN) == ([], ["Resolved: camroll on 'pixel' is reporting again."])


def test_stall_needs_pending_work_and_no_progress(ctx: Context) -> None:
    who = device(ctx)
    beat(ctx, who, T0, pending_files=10)
    beat(ctx, who, T0 + 30 * MIN, pending_files=12)  # new photos: more pending is not progress
    stalled = f"device:{who.device_id}:stalled"
    assert keys(ctx, T0 + 59 * MIN)[0] == []
    opened, bodies = keys(ctx, T0 + 61 * MIN)
    assert opened == [stalled] and "12 files" in bodies[0]
    beat(ctx, who, T0 + 62 * MIN, pending_files=12, backed_up_files=1)  # one more backed up is progress
    assert keys(ctx, T0 + 63 * MIN) == ([], ["Resolved: backup on 'pixel' is moving again."])
    # A file the server recorded from the device is progress too, whatever the heartbeat says.
    beat(ctx, who, T0 + 100 * MIN, pending_files=12, backed_up_files=1)
    with ctx.db() as db:
        db.add(Blob(sha256="a" * 64, size=1))
        db.flush()
        asset = Asset(user_id=who.user_id, sha256="a" * 64, size=1, filename="a.jpg")
        db.add(asset)
        db.flush()
        db.add(AssetFile(asset_id=asset.id, device_id=who.device_id, path="/a.jpg", filename="a.jpg",
                         created_at=T0 + 150 * MIN))
    assert keys(ctx, T0 + 200 * MIN)[0] == []
    assert keys(ctx, T0 + 211 * MIN)[0] == [stalled]
    # So are bytes arriving for a long upload that is not a file yet.
    with ctx.db() as db:
        db.add(Upload(id="u1", user_id=who.user_id, device_id=who.device_id, length=10**10, offset=10**9,
                      meta={}, created_at=T0, updated_at=T0 + 215 * MIN, expires_at=T0 + timedelta(days=1)))
    assert keys(ctx, T0 + 216 * MIN) == ([], ["Resolved: backup on 'pixel' is moving again."])


def test_a_device_back_from_a_long_gap_is_not_stalled_at_once(ctx: Context) -> None:
    who = device(ctx)
    beat(ctx, who, T0, pending_files=5)
    back = T0 + 8 * 60 * MIN  # a laptop that slept overnight with work pending
    beat(ctx, who, back, pending_files=5)
    assert keys(ctx, back + MIN)[0] == []
    assert keys(ctx, back + 61 * MIN)[0] == [f"device:{who.device_id}:stalled"]


def test_paused_is_never_stalled_and_a_blocker_alerts_only_with_work_waiting(ctx: Context) -> None:
    idle_pause = device(ctx, "tablet")
    beat(ctx, idle_pause, T0, state="paused", headline="Paused: switched off.", pending_files=3)
    blocked_empty = device(ctx, "laptop")
    beat(ctx, blocked_empty, T0, state="paused", blocker_code="battery_low", blocker="Paused: battery 9%.")
    held = device(ctx, "pixel")
    beat(ctx, held, T0, state="stopped", blocker_code="quota_full", pending_files=4,
         blocker="Stopped: storage full, 14.9 of 15.0 GB used. Free space or raise the quota.")
    opened, bodies = keys(ctx, T0 + 2 * 60 * MIN)
    assert opened == [f"device:{held.device_id}:blocked:quota_full"]
    assert bodies == ["Backup on 'pixel' is stopped: storage full, 14.9 of 15.0 GB used. Free space or raise the "
                      "quota. (4 files waiting since 21 Nov 14:02 UTC)."]
    # Another blocker is another incident; the old one resolves.
    beat(ctx, held, T0 + 121 * MIN, state="paused", blocker_code="metered", pending_files=4,
         blocker="Paused: on a metered connection.")
    assert keys(ctx, T0 + 122 * MIN) == ([], ["Resolved: backup on 'pixel' is no longer held up (quota_full)."])
    assert keys(ctx, T0 + 182 * MIN)[0] == [f"device:{held.device_id}:blocked:metered"]


def test_revoked_device_closes_its_incidents_without_a_message(ctx: Context) -> None:
    who = device(ctx)
    beat(ctx, who, T0, state="idle")
    assert keys(ctx, T0 + timedelta(days=2))[0] == [f"device:{who.device_id}:silent"]
    with ctx.db() as db:
        d = db.get(Device, who.device_id)
        assert d is not None
        d.revoked_at = T0 + timedelta(days=2)
    assert keys(ctx, T0 + timedelta(days=2, minutes=1)) == ([], [])


def test_quota_thresholds_open_and_clear(ctx: Context) -> None:
    who = device(ctx, quota=1000)
    with ctx.db() as db:
        db.add(Blob(sha256="b" * 64, size=950))
        db.flush()
        db.add(Asset(user_id=who.user_id, sha256="b" * 64, size=950, filename="b.jpg"))
    opened, bodies = keys(ctx, T0)
    assert opened == ["quota:90"] and bodies[0].startswith("Storage 95% full: 950 B of 1.0 kB used.")
    with ctx.db() as db:
        user = db.get(User, who.user_id)
        assert user is not None
        user.quota_bytes = 900
    opened, bodies = keys(ctx, T0 + MIN)
    assert opened == ["quota:100", "quota:90"] and bodies[0].startswith("Storage full: 950 B of 900 B used")
    with ctx.db() as db:
        user = db.get(User, who.user_id)
        assert user is not None
        user.quota_bytes = None
    assert len(keys(ctx, T0 + 2 * MIN)[1]) == 2
    assert keys(ctx, T0 + 3 * MIN) == ([], [])


def test_a_hanging_service_does_not_hold_the_sender() -> None:
    # A socket that accepts connections (the kernel backlog) but never answers.
    with socket.socket() as hang:
        hang.bind(("127.0.0.1", 0))
        hang.listen(8)
        url = f"json://127.0.0.1:{hang.getsockname()[1]}/x"
        started = time.monotonic()
        loopback = EgressPolicy(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),))
        error = notify.deliver(url, "t", "b", "info", timeout=0.5, policy=loopback)
        assert time.monotonic() - started < 2
        assert error == "no answer within 0.5 s"
