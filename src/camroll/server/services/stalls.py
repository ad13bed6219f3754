"""Stall detection: turn device health and quotas into incidents, each notified once when it opens and
once ("Resolved: ...") when it clears.

Incident kinds and their keys (unique per user):

- ``device:ID:silent``: a device that sent heartbeats sent none for longer than the silence limit;
- ``device:ID:stalled``: pending files and no progress for longer than the stall limit;
- ``device:ID:blocked:CODE``: paused or stopped by a blocker (battery, network, quota...) for longer
  than the stall limit while files wait; its message is the agent's blocker sentence.  A different
  blocker is a different incident;
- ``quota:90`` and ``quota:100``: stored bytes at 90% and at 100% of the user's quota.

A revoked device's incidents close without a message: its owner removed it on purpose."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from camroll.server.context import Context
from camroll.server.models import Device, Incident, User
from camroll.server.replicas import incidents as replica_incidents
from camroll.server.repositories import health as health_repo
from camroll.server.repositories import notify as notify_repo
from camroll.server.repositories import users as users_repo
from camroll.server.services import notify
from camroll.server.services.health import SILENT_FIX, ago, assess, when
from camroll.units import format_size, plural

log = logging.getLogger("camroll.server.stalls")

QUOTA_FIX = "Free space or ask the admin to raise your quota"


@dataclass(frozen=True)
class Wanted:
    user_id: int
    device_id: int | None
    key: str
    kind: str
    title: str
    message: str


def _held_sentence(state: str, blocker: str) -> str:
    # Agents write blockers like "Paused: battery 14% ..."; the alert says "is paused:" itself.
    for prefix in ("paused:", "stopped:"):
        if blocker.lower().startswith(prefix):
            return blocker[len(prefix):].strip()
    return blocker


def _device_incidents(ctx: Context, now: datetime, devices: list[Device]) -> list[Wanted]:
    out: list[Wanted] = []
    with ctx.db() as db:
        ids = [d.id for d in devices]
        beats, (_, progress) = health_repo.of_devices(db, ids), health_repo.server_progress(db, ids)
    for d in devices:
        hb = beats.get(d.id)
        verdict = assess(hb, progress.get(d.id), now, ctx.settings)
        if hb is None or verdict.since is None:
            continue
        if verdict.silent:
            out.append(Wanted(d.user_id, d.id, f"device:{d.id}:silent", "silent",
                              f"camroll: '{d.name}' is silent",
                              f"camroll on '{d.name}' has not been heard from since {when(verdict.since)} "
                              f"({ago(now - verdict.since)}). {SILENT_FIX}"))
        elif verdict.stalled:
            out.append(Wanted(d.user_id, d.id, f"device:{d.id}:stalled", "stalled",
                              f"camroll: backup stalled on '{d.name}'",
                              f"Backup on '{d.name}' is stuck: {plural(hb.pending_files, 'file')} "
                              f"({format_size(hb.pending_bytes)}) waiting and none backed up since "
                              f"{when(verdict.since)} ({ago(now - verdict.since)}). The device says: "
                              f"{hb.headline} Fix: run `camroll doctor` on that device."))
        elif verdict.blocked and hb.blocker:
            code = hb.blocker_code or "unknown"
            out.append(Wanted(d.user_id, d.id, f"device:{d.id}:blocked:{code}", "blocked",
                              f"camroll: backup on '{d.name}' is {hb.state}",
                              f"Backup on '{d.name}' is {hb.state}: {_held_sentence(hb.state, hb.blocker)} "
                              f"({plural(hb.pending_files, 'file')} waiting since {when(verdict.since)})."))
    return out


def _quota_incidents(users: list[User], used: dict[int, int]) -> list[Wanted]:
    out: list[Wanted] = []
    for u in users:
        if u.quota_bytes is None:
            continue
        have, limit = used.get(u.id, 0), u.quota_bytes
        shown = f"{format_size(have)} of {format_size(limit)} used"
        if have >= limit * 0.9:
            pct = int(have * 100 / limit) if limit else 100
            out.append(Wanted(u.id, None, "quota:90", "quota_90", "camroll: storage almost full",
                              f"Storage {pct}% full: {shown}. {QUOTA_FIX} before backup stops."))
        if have >= limit:
            out.append(Wanted(u.id, None, "quota:100", "quota_100", "camroll: storage full",
                              f"Storage full: {shown}; backup has stopped on every device. {QUOTA_FIX}; "
                              "backup resumes by itself."))
    return out


_RESOLVED_TITLES = {"silent": "device reporting again", "stalled": "backup moving again",
                    "blocked": "backup no longer held up", "quota_90": "storage below 90%",
                    "quota_100": "storage no longer full"}


def _resolved(inc: Incident, device_name: str | None, used: int, quota: int | None) -> str:
    name = f"'{device_name}'" if device_name else "the device"
    shown = f"{format_size(used)} of {format_size(quota)} used" if quota is not None else "no quota"
    return {
        "silent": f"Resolved: camroll on {name} is reporting again.",
        "stalled": f"Resolved: backup on {name} is moving again.",
        "blocked": f"Resolved: backup on {name} is no longer held up ({inc.key.rsplit(':', 1)[-1]}).",
        "quota_90": f"Resolved: storage is below 90% of the quota again ({shown}).",
        "quota_100": f"Resolved: storage is no longer full ({shown}); backup can continue.",
    }.get(inc.kind, f"Resolved: {inc.message}")


def check(ctx: Context, now: datetime | None = None) -> list[notify.Message]:
    """Open and close incidents for ``now``; returns the messages to send (already committed)."""
    now = now or ctx.clock.now()
    with ctx.db() as db:
        devices = list(health_repo.active_devices(db))
        users = list(users_repo.all_users(db))
        used = users_repo.used_by_user(db)
        for obj in (*devices, *users):
            db.expunge(obj)
    wanted = {(w.user_id, w.key): w for w in (*_device_incidents(ctx, now, devices), *_quota_incidents(users, used))}
    # Replicas failing or behind, for the admins (server/replicas/incidents.py).
    wanted.update({(w.user_id, w.key): Wanted(w.user_id, None, w.key, w.kind, w.title, w.message)
                   for w in replica_incidents.wanted(ctx, now)})
    quotas = {u.id: u.quota_bytes for u in users}
    messages: list[notify.Message] = []
    with ctx.db() as db:
        names = {d.id: d.name for d in db.query(Device).all()}
        revoked = {d.id for d in db.query(Device).where(Device.revoked_at.is_not(None)).all()}
        open_now = {(i.user_id, i.key): i for i in notify_repo.open_incidents(db)}
        for key, inc in open_now.items():
            if key in wanted:
                continue
            db.delete(inc)
            if inc.device_id is not None and inc.device_id in revoked:
                continue
            title = f"camroll: resolved: {_RESOLVED_TITLES.get(inc.kind, inc.kind)}"
            body = _resolved(inc, names.get(inc.device_id or -1), used.get(inc.user_id, 0), quotas.get(inc.user_id))
            if inc.kind in replica_incidents.KINDS:
                title, body = replica_incidents.resolved(inc)
            messages.append(notify.Message(inc.user_id, title, body, "success"))
        for key, w in wanted.items():
            if key in open_now:
                continue
            db.add(Incident(user_id=w.user_id, device_id=w.device_id, key=w.key, kind=w.kind, opened_at=now,
                            message=w.message[:2000]))
            messages.append(notify.Message(w.user_id, w.title, w.message, "warning"))
    return messages


def run_once(ctx: Context, now: datetime | None = None) -> int:
    """One stall check; its notifications are queued (each records how it went), never waited for, so a
    hanging service cannot delay the next check.  Returns how many messages were queued."""
    messages = check(ctx, now)
    for m in messages:
        log.info("alert for user %d: %s", m.user_id, m.body)
        notify.send(ctx, m, wait=False)
    return len(messages)
