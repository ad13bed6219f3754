"""Replica incidents, for the admins: a replica failing for longer than ``failing_seconds`` and a backlog
whose oldest blob waited longer than ``backlog_seconds``.  Opened, notified once and resolved by the stall
checks (services/stalls.py), like device stalls: one incident per admin user and key.

Keys: ``replica:ID:failing`` and ``replica:ID:backlog``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from camroll.server.context import Context
from camroll.server.models import Incident, User
from camroll.server.replicas import status as replica_status
from camroll.server.replicas.settings import ReplicaSettings
from camroll.units import format_size, plural

log = logging.getLogger("camroll.server.replicas")

KIND_FAILING = "replica_failing"
KIND_BACKLOG = "replica_backlog"
KINDS = frozenset({KIND_FAILING, KIND_BACKLOG})


@dataclass(frozen=True)
class Wanted:
    user_id: int
    key: str
    kind: str
    title: str
    message: str


def _ago(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(1, int(seconds // 60))} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def wanted(ctx: Context, now: datetime, settings: ReplicaSettings | None = None) -> list[Wanted]:
    if settings is None:
        try:
            settings = ReplicaSettings.from_env()
        except ValueError as exc:
            # A bad variable must not stop the device and quota alerts beside these.
            log.warning("replica alerts use the default thresholds: %s", exc)
            settings = ReplicaSettings()
    with ctx.db() as db:
        admins = list(db.scalars(select(User.id).where(User.is_admin.is_(True))))
        if not admins:
            return []
        states = replica_status.read(db)
    out: list[Wanted] = []
    for s in states:
        if not s.paused and s.failing_since is not None and \
                (now - s.failing_since).total_seconds() >= settings.failing_seconds:
            msg = (f"Replica '{s.name}' ({s.url}) has failed since {s.failing_since:%Y-%m-%d %H:%M} UTC "
                   f"({_ago((now - s.failing_since).total_seconds())}): {s.failure} Fix: {s.fix} "
                   f"{plural(s.backlog_files, 'file')} ({format_size(s.backlog_bytes)}) wait to be copied.")
            for uid in admins:
                out.append(Wanted(uid, f"replica:{s.id}:failing", KIND_FAILING,
                                  f"camroll: replica '{s.name}' is failing", msg))
        if s.oldest_pending is not None and (now - s.oldest_pending).total_seconds() >= settings.backlog_seconds:
            why = (f" It is paused: resume it with 'camroll admin replica resume {s.name}'." if s.paused else
                   f" See 'camroll admin replica status {s.name}'.")
            msg = (f"Replica '{s.name}' is behind: {plural(s.backlog_files, 'file')} "
                   f"({format_size(s.backlog_bytes)}) not copied, the oldest waiting since "
                   f"{s.oldest_pending:%Y-%m-%d %H:%M} UTC ({_ago((now - s.oldest_pending).total_seconds())}).{why}")
            for uid in admins:
                out.append(Wanted(uid, f"replica:{s.id}:backlog", KIND_BACKLOG,
                                  f"camroll: replica '{s.name}' is behind", msg))
    return out


def resolved(inc: Incident) -> tuple[str, str]:
    """Title and body of the message that closes a replica incident."""
    name = inc.message.split("'", 2)[1] if inc.message.count("'") >= 2 else "the replica"
    if inc.kind == KIND_FAILING:
        return (f"camroll: resolved: replica '{name}' works again",
                f"Resolved: replica '{name}' accepts copies again; the backlog is being copied.")
    return (f"camroll: resolved: replica '{name}' caught up",
            f"Resolved: replica '{name}' has no copy waiting longer than the alert threshold any more.")
