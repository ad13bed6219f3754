"""Notification URLs and open incidents."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from camroll.server.models import Incident, NotifyTarget


def targets_of(db: Session, user_id: int) -> Sequence[NotifyTarget]:
    return db.scalars(select(NotifyTarget).where(NotifyTarget.user_id == user_id).order_by(NotifyTarget.id)).all()


def all_targets(db: Session) -> Sequence[NotifyTarget]:
    return db.scalars(select(NotifyTarget).order_by(NotifyTarget.user_id, NotifyTarget.id)).all()


def target_by_url(db: Session, user_id: int, url: str) -> NotifyTarget | None:
    return db.scalars(select(NotifyTarget).where(NotifyTarget.user_id == user_id, NotifyTarget.url == url)).first()


def target_by_id(db: Session, user_id: int, target_id: int) -> NotifyTarget | None:
    target = db.get(NotifyTarget, target_id)
    return target if target is not None and target.user_id == user_id else None


def open_incidents(db: Session) -> Sequence[Incident]:
    return db.scalars(select(Incident).order_by(Incident.id)).all()
