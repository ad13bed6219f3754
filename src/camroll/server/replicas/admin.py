"""Adding, removing, pausing and resuming replicas (``camroll admin replica ...``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from camroll.server.context import Context
from camroll.server.models import Replica, utcnow
from camroll.server.replicas.urls import ReplicaConfigError, check_name, open_target, parse


class ReplicaExists(ReplicaConfigError):
    pass


class NoSuchReplica(ReplicaConfigError):
    pass


def add(ctx: Context, name: str, url: str, options: dict[str, Any], *, check: bool = True) -> Replica:
    """Record a replica after proving it usable (a probe written, read back and deleted), unless
    ``check`` is False.  Raises ``ReplicaConfigError`` (bad input) or ``StorageFailure`` (the probe)."""
    name = check_name(name)
    parsed = parse(url)
    options = {k: v for k, v in options.items() if v not in (None, "")}
    with ctx.db() as db:
        if db.scalar(select(Replica).where(Replica.name == name)) is not None:
            raise ReplicaExists(f"a replica named {name!r} exists already; pick another name, or remove it first "
                                f"('camroll admin replica remove {name}').")
        same = db.scalar(select(Replica).where(Replica.url == parsed.url))
        if same is not None:
            raise ReplicaExists(f"replica {same.name!r} uses {parsed.url} already; one replica per place.")
    target = open_target(parsed.url, options, create=check)
    try:
        if check:
            target.check()
    finally:
        target.close()
    with ctx.db() as db:
        r = Replica(name=name, url=parsed.url, kind=parsed.kind.value, options=options, created_at=utcnow(),
                    failures=0)
        db.add(r)
        db.flush()
        db.expunge(r)
    return r


def get(ctx: Context, name: str) -> Replica:
    with ctx.db() as db:
        r = db.scalar(select(Replica).where(Replica.name == name))
        if r is None:
            raise NoSuchReplica(f"there is no replica named {name!r}; see 'camroll admin replica list'.")
        db.expunge(r)
        return r


def remove(ctx: Context, name: str) -> Replica:
    """Forget a replica and its copies' rows; the copies themselves stay where they are (they are a
    backup: removing them is the admin's own decision, made on the replica)."""
    with ctx.db() as db:
        r = db.scalar(select(Replica).where(Replica.name == name))
        if r is None:
            raise NoSuchReplica(f"there is no replica named {name!r}; see 'camroll admin replica list'.")
        db.delete(r)
        db.flush()
        return r


def set_paused(ctx: Context, name: str, paused: bool) -> Replica:
    with ctx.db() as db:
        r = db.scalar(select(Replica).where(Replica.name == name))
        if r is None:
            raise NoSuchReplica(f"there is no replica named {name!r}; see 'camroll admin replica list'.")
        r.paused_at = (r.paused_at or utcnow()) if paused else None
        if not paused:
            r.retry_at = None  # try at once
        db.flush()
        db.expunge(r)
        return r
