"""Device heartbeats and each device's backup health, as the API and the stall checks see it.

One function, :func:`assess`, decides whether a device is silent, stalled or blocked, so the
``stalled`` flag of ``GET /devices`` and the alerts never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from camroll import wire
from camroll.server.context import Context
from camroll.server.models import Device, DeviceHealth
from camroll.server.problems import ProblemError
from camroll.server.repositories import health as repo
from camroll.server.repositories import tokens
from camroll.server.services.auth import Principal, device_info
from camroll.server.settings import Settings

NEVER_SEEN_HEADLINE = ("No heartbeat yet: this device has not reported its backup status. "
                       "Fix: run `camroll agent` (or a backup) on it.")
SILENT_FIX = "Fix: open camroll on that device or check that `camroll agent` is running."
# States in which the agent says why it is not uploading: their alert is the blocker, not a stall.
HELD_STATES = ("paused", "stopped")


def when(at: datetime) -> str:
    """``21 Nov 14:02 UTC``: the server knows no user's time zone, so it says which one it uses."""
    return at.strftime("%d %b %H:%M UTC").lstrip("0")


def ago(span: timedelta) -> str:
    """``3 days``, ``5 hours``, ``12 minutes``: the largest whole unit."""
    seconds = max(0, int(span.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


@dataclass(frozen=True)
class Assessment:
    state: str
    headline: str
    silent: bool
    stalled: bool
    blocked: bool
    # Stalled: the last sign of progress.  Blocked: since when the agent reports this blocker.
    since: datetime | None


def assess(hb: DeviceHealth | None, server_progress_at: datetime | None, now: datetime,
           settings: Settings) -> Assessment:
    """The server's verdict on one device.

    - no heartbeat ever: ``never_seen`` (never silent: a device that never ran an agent is not missing);
    - no heartbeat for longer than ``silence_seconds``: ``silent`` (and neither stalled nor blocked:
      nothing recent is known about its work);
    - ``stalled``: pending files, not held by a reported blocker, and no progress (fewer pending
      files or more backed up in a heartbeat; a file recorded or upload bytes received by the server:
      ``server_progress_at``) for longer than ``stall_seconds``;
    - ``blocked``: paused or stopped with a blocker sentence for longer than ``stall_seconds`` while
      files wait."""
    if hb is None:
        return Assessment("never_seen", NEVER_SEEN_HEADLINE, False, False, False, None)
    if now - hb.received_at > timedelta(seconds=settings.silence_seconds):
        headline = (f"Not heard from since {when(hb.received_at)} ({ago(now - hb.received_at)}). {SILENT_FIX}")
        return Assessment("silent", headline, True, False, False, hb.received_at)
    limit = timedelta(seconds=settings.stall_seconds)
    held = hb.state in HELD_STATES and bool(hb.blocker)
    if held:
        blocked = hb.pending_files > 0 and now - hb.state_since > limit
        return Assessment(hb.state, hb.headline, False, False, blocked, hb.state_since)
    progress = max(hb.progress_at, server_progress_at) if server_progress_at else hb.progress_at
    stalled = hb.pending_files > 0 and hb.state != "paused" and now - progress > limit
    return Assessment(hb.state, hb.headline, False, stalled, False, progress)


def record_heartbeat(ctx: Context, who: Principal, beat: wire.Heartbeat,
                     now: datetime | None = None) -> wire.HeartbeatAck:
    if who.device_id is None:
        raise ProblemError(400, "bad_request",
                           "Heartbeats come from a device, but this request used a session token.",
                           "Send the device token that 'camroll login' saved (POST /api/v1/devices creates one).")
    now = now or ctx.clock.now()
    problems = [p.model_dump(mode="json") for p in beat.problems]
    with ctx.db() as db:
        hb = repo.of_device(db, who.device_id)
        if hb is None:
            hb = DeviceHealth(device_id=who.device_id, progress_at=now, state_since=now)
            db.add(hb)
        else:
            # Progress is judged against the previous heartbeat; new photos raise the pending count
            # without anything being stuck, so only a fall (or more backed up) counts.  A device back
            # from a gap longer than the stall limit (asleep, switched off) gets a fresh start: its
            # absence is the silence check's business, and it cannot have progressed while away.
            away = now - hb.received_at > timedelta(seconds=ctx.settings.stall_seconds)
            if (away or beat.pending_files == 0 or beat.pending_files < hb.pending_files
                    or beat.backed_up_files > hb.backed_up_files):
                hb.progress_at = now
            if (beat.state, beat.blocker_code, beat.blocker is None) != (hb.state, hb.blocker_code,
                                                                        hb.blocker is None):
                hb.state_since = now
        hb.received_at = now
        hb.agent_version = beat.agent_version[:100]
        hb.state = beat.state
        hb.headline = beat.headline[:2000]
        hb.blocker_code = beat.blocker_code[:100] if beat.blocker_code else None
        hb.blocker = beat.blocker[:2000] if beat.blocker else None
        hb.pending_files = beat.pending_files
        hb.pending_bytes = beat.pending_bytes
        hb.failed_files = beat.failed_files
        hb.skipped_files = beat.skipped_files
        hb.left_out_files = beat.left_out_files
        hb.backed_up_files = beat.backed_up_files
        hb.last_success_at = beat.last_success_at
        hb.problems = problems
        device = db.get(Device, who.device_id)
        if device is not None:
            device.last_seen_at = now
    return wire.HeartbeatAck(server_time=now, interval_seconds=ctx.settings.heartbeat_interval_seconds)


def health_of(hb: DeviceHealth | None, last_upload_at: datetime | None, progress_at: datetime | None,
              now: datetime, settings: Settings) -> wire.DeviceHealth:
    verdict = assess(hb, progress_at, now, settings)
    if hb is None:
        return wire.DeviceHealth(
            last_heartbeat_at=None, last_upload_at=last_upload_at, agent_version=None, state="never_seen",
            headline=verdict.headline, blocker_code=None, blocker=None, pending_files=0, pending_bytes=0,
            failed_files=0, skipped_files=0, backed_up_files=0, stalled=False, problems=[])
    return wire.DeviceHealth(
        last_heartbeat_at=hb.received_at, last_upload_at=last_upload_at, agent_version=hb.agent_version,
        state=verdict.state,  # type: ignore[arg-type]  # one of AgentState, never_seen or silent
        headline=verdict.headline, blocker_code=hb.blocker_code, blocker=hb.blocker,
        pending_files=hb.pending_files, pending_bytes=hb.pending_bytes, failed_files=hb.failed_files,
        skipped_files=hb.skipped_files, backed_up_files=hb.backed_up_files,
        left_out_files=hb.left_out_files or 0, stalled=verdict.stalled,
        problems=[wire.DeviceProblem.model_validate(p) for p in hb.problems or []])


def list_devices(ctx: Context, who: Principal) -> list[wire.DeviceWithHealth]:
    now = ctx.clock.now()
    with ctx.db() as db:
        devices = tokens.devices_of(db, who.user_id)
        ids = [d.id for d in devices]
        beats, (files, progress) = repo.of_devices(db, ids), repo.server_progress(db, ids)
        return [wire.DeviceWithHealth(**device_info(d).model_dump(),
                                      health=health_of(beats.get(d.id), files.get(d.id), progress.get(d.id), now,
                                                       ctx.settings))
                for d in devices]


def get_device(ctx: Context, who: Principal, device_id: int) -> wire.DeviceWithHealth:
    now = ctx.clock.now()
    with ctx.db() as db:
        device = db.get(Device, device_id)
        if device is None or device.user_id != who.user_id:
            raise ProblemError(404, "not_found", f"You have no device with id {device_id}.",
                               "List your devices with GET /api/v1/devices.")
        hb = repo.of_device(db, device_id)
        files, progress = repo.server_progress(db, [device_id])
        return wire.DeviceWithHealth(**device_info(device).model_dump(),
                                     health=health_of(hb, files.get(device_id), progress.get(device_id), now,
                                                      ctx.settings))
