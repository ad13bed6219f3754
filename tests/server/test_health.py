"""Device heartbeats, health and backup alerts against a real ``camroll serve`` with short limits, and
alerts delivered by apprise to a real loopback HTTP receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.server import ServerProcess
from support.wait import wait_until

from camroll import wire

from .conftest import User, assert_problem, jpeg, make_user, upload
from .receiver import LOOPBACK_ALERTS, Receiver, receiver

__all__ = ["receiver"]

HEARTBEAT = "/api/v1/devices/current/heartbeat"
STALL_S = 1.5
SILENCE_S = 2.5
CHECK_S = 0.2


@pytest.fixture(scope="module")
def alert_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(data=tmp_path_factory.mktemp("alerts") / "server-data", extra_args=(
        "--stall-minutes", str(STALL_S / 60), "--silence-hours", str(SILENCE_S / 3600),
        "--stall-check-interval", str(CHECK_S), "--heartbeat-interval", "42"), env=LOOPBACK_ALERTS)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def beat(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"agent_version": "0.1.0", "state": "idle", "headline": "Up to date."}
    body.update(fields)
    return wire.Heartbeat.model_validate(body).model_dump(mode="json")


def subscribe(srv: ServerProcess, user: User, rx: Receiver) -> str:
    """Send ``user``'s alerts to their own path on the receiver (added over the API with a session)."""
    session = {"Authorization": f"Bearer {srv.login(user.name, user.password)}"}
    r = httpx.post(srv.url + "/api/v1/me/notifications", json={"url": rx.url(user.name)}, headers=session)
    assert r.status_code == 201, r.text
    return user.name


def device(user: User) -> wire.DeviceWithHealth:
    devices = [wire.DeviceWithHealth.model_validate(d) for d in user.session.get("/api/v1/devices").json()]
    assert len(devices) == 1
    return devices[0]


def beat_until_alerted(user: User, body: dict[str, Any], rx: Receiver, path: str) -> list[dict[str, Any]]:
    """Send ``body`` as heartbeats until an alert arrives, then a few check rounds more (one incident
    alerts once, however many checks see it; the rule itself is tested on a fake clock in test_stalls)."""
    def beat_and_look() -> list[dict[str, Any]]:
        assert user.client.put(HEARTBEAT, json=body).status_code == 200
        return rx.at(path)

    wait_until(beat_and_look, STALL_S + 15, what="an alert arrives", interval=0.3)
    for _ in range(3):
        time.sleep(CHECK_S * 2)
        beat_and_look()
    return rx.at(path)


def titles(messages: list[dict[str, Any]]) -> list[str]:
    return [str(m["title"]) for m in messages]


def test_heartbeat_round_trips_into_device_health(alert_server: ServerProcess) -> None:
    user = make_user(alert_server, device="pixel")
    fresh = device(user)
    assert fresh.health.state == "never_seen" and not fresh.health.stalled
    assert fresh.health.last_heartbeat_at is None and "camroll agent" in fresh.health.headline

    upload(user.client, jpeg(1500, seed=900), path="/DCIM/a.jpg")
    problem = {"path": "/DCIM/big.mp4", "state": "skipped", "reason": "Larger than 10 GB.", "fix": "Raise it."}
    r = user.client.put(HEARTBEAT, json=beat(state="backing_up", headline="Backing up 3 files.", pending_files=3,
                                             pending_bytes=3000, failed_files=1, skipped_files=1,
                                             backed_up_files=7, problems=[problem]))
    assert r.status_code == 200, r.text
    ack = wire.HeartbeatAck.model_validate(r.json())
    assert ack.interval_seconds == 42
    assert abs(ack.server_time.timestamp() - time.time()) < 30

    got = device(user)
    health = got.health
    assert (health.state, health.headline, health.pending_files, health.pending_bytes) == (
        "backing_up", "Backing up 3 files.", 3, 3000)
    assert (health.failed_files, health.skipped_files, health.backed_up_files) == (1, 1, 7)
    assert health.problems == [wire.DeviceProblem.model_validate(problem)]
    assert health.last_heartbeat_at is not None and health.last_upload_at is not None
    assert health.last_upload_at <= health.last_heartbeat_at
    assert got.last_seen_at is not None and got.last_seen_at >= health.last_heartbeat_at
    # Existing clients read the same body as a plain DeviceInfo.
    assert wire.DeviceInfo.model_validate(user.session.get("/api/v1/devices").json()[0]).name == "pixel"
    one = wire.DeviceWithHealth.model_validate(user.session.get(f"/api/v1/devices/{got.id}").json())
    assert one.health.headline == "Backing up 3 files."
    other = make_user(alert_server)
    assert_problem(other.session.get(f"/api/v1/devices/{got.id}"), 404, "not_found")


def test_heartbeat_needs_a_device_token(alert_server: ServerProcess) -> None:
    user = make_user(alert_server)
    session = {"Authorization": f"Bearer {alert_server.login(user.name, user.password)}"}
    body = assert_problem(httpx.put(alert_server.url + HEARTBEAT, json=beat(), headers=session), 400, "bad_request")
    assert "device token" in str(body["fix"])
    assert_problem(user.client.put(HEARTBEAT, json={"state": "dancing"}), 422, "bad_request")


def test_silent_device_alerts_once_and_resolves(alert_server: ServerProcess, receiver: Receiver) -> None:
    user = make_user(alert_server, device="pixel")
    path = subscribe(alert_server, user, receiver)
    assert user.client.put(HEARTBEAT, json=beat()).status_code == 200
    got = receiver.wait(path, lambda m: len(m) >= 1)
    assert titles(got) == ["camroll: 'pixel' is silent"]
    assert "has not been heard from since" in got[0]["message"] and "camroll agent" in got[0]["message"]
    assert got[0]["type"] == "warning"
    health = device(user).health
    assert health.state == "silent"
    assert health.headline.startswith("Not heard from since ") and "`camroll agent` is running" in health.headline
    time.sleep(CHECK_S * 3)  # three more check rounds
    assert len(receiver.at(path)) == 1  # once per incident, however many checks run

    assert user.client.put(HEARTBEAT, json=beat()).status_code == 200
    got = receiver.wait(path, lambda m: len(m) >= 2)
    assert got[1]["message"] == "Resolved: camroll on 'pixel' is reporting again."
    assert got[1]["title"] == "camroll: resolved: device reporting again"
    assert got[1]["type"] == "success"
    assert device(user).health.state == "idle"


def test_stalled_device_alerts_once(alert_server: ServerProcess, receiver: Receiver) -> None:
    user = make_user(alert_server, device="pixel")
    path = subscribe(alert_server, user, receiver)
    stuck = beat(state="backing_up", headline="Backing up 5 files.", pending_files=5, pending_bytes=5_000_000)
    got = beat_until_alerted(user, stuck, receiver, path)  # heartbeats keep coming, the count never falls
    assert titles(got) == ["camroll: backup stalled on 'pixel'"]
    assert "5 files (5.0 MB) wait" in got[0]["message"] and "camroll doctor" in got[0]["message"]
    assert device(user).health.stalled

    assert user.client.put(HEARTBEAT, json={**stuck, "pending_files": 4}).status_code == 200
    got = receiver.wait(path, lambda m: len(m) >= 2)
    assert got[1]["message"] == "Resolved: backup on 'pixel' is moving again."
    assert not device(user).health.stalled


def test_paused_with_a_blocker_alerts_with_the_blocker(alert_server: ServerProcess, receiver: Receiver) -> None:
    user = make_user(alert_server, device="pixel")
    path = subscribe(alert_server, user, receiver)
    paused = beat(state="paused", headline="Paused: battery 14%.", blocker_code="battery_low",
                  blocker="Paused: battery 14%, below your 20% minimum. Plug in or change min_battery.",
                  pending_files=2)
    got = beat_until_alerted(user, paused, receiver, path)
    assert len(got) == 1
    assert got[0]["message"].startswith(
        "Backup on 'pixel' is paused: battery 14%, below your 20% minimum. Plug in or change min_battery.")
    assert not device(user).health.stalled  # the blocker is the alert, not a stall


def test_quota_alerts_at_90_and_100_percent_once_each(alert_server: ServerProcess, receiver: Receiver) -> None:
    user = make_user(alert_server, quota="10000B")
    path = subscribe(alert_server, user, receiver)
    upload(user.client, jpeg(9000, seed=901))
    got = receiver.wait(path, lambda m: len(m) >= 1)
    assert titles(got) == ["camroll: storage almost full"]
    assert got[0]["message"].startswith("Storage 90% full: 9.0 kB of 10.0 kB used.")
    upload(user.client, jpeg(1000, seed=902))
    got = receiver.wait(path, lambda m: len(m) >= 2)
    assert titles(got) == ["camroll: storage almost full", "camroll: storage full"]
    time.sleep(CHECK_S * 3)
    assert len(receiver.at(path)) == 2


def test_my_notification_urls_over_the_api(alert_server: ServerProcess, receiver: Receiver) -> None:
    user = make_user(alert_server)
    api = httpx.Client(base_url=alert_server.url, headers={
        "Authorization": f"Bearer {alert_server.login(user.name, user.password)}"})
    secret = f"json://bob:hunter2@127.0.0.1:{receiver.port}/api-{user.name}"
    r = api.post("/api/v1/me/notifications", json={"url": secret})
    assert r.status_code == 201, r.text
    added = wire.NotificationTarget.model_validate(r.json())
    assert added.url == f"json://bob:****@127.0.0.1:{receiver.port}/api-{user.name}"
    assert_problem(api.post("/api/v1/me/notifications", json={"url": secret}), 409, "conflict")
    body = assert_problem(api.post("/api/v1/me/notifications", json={"url": "hello"}), 400, "bad_request")
    assert "apprise URL" in str(body["fix"])
    listed = api.get("/api/v1/me/notifications")
    assert "hunter2" not in listed.text and [t["id"] for t in listed.json()] == [added.id]

    results = [wire.NotificationResult.model_validate(x) for x in api.post("/api/v1/me/notifications/test").json()]
    assert [(x.id, x.ok) for x in results] == [(added.id, True)]
    assert receiver.at(f"api-{user.name}")[0]["title"] == "camroll: test message"

    other = make_user(alert_server)
    assert_problem(other.session.delete(f"/api/v1/me/notifications/{added.id}"), 404, "not_found")
    assert api.delete(f"/api/v1/me/notifications/{added.id}").status_code == 204
    assert api.get("/api/v1/me/notifications").json() == []
    api.close()
