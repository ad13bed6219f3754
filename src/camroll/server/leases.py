"""Leases in the database: work that one process at a time does across replicas.

A lease is a row of ``leases``: a name (``stall-checks``, ``asset:42``), the holder that has it and
when it runs out.  Periodic work (the expiry and orphan sweeps, the stall checks and their alerts,
the trash purge, the start-up re-queue of missing media work) runs only in the process that holds its
lease, and one asset's background job runs only under that asset's claim (``asset:ID``), so two
replicas never both alert and two workers never both make the same thumbnails.

Contract of every method:

- **One statement, atomic.**  ``acquire`` is ``INSERT ... ON CONFLICT (name) DO UPDATE ... WHERE
  leases.expires_at < now OR leases.holder = me``: on SQLite (>= 3.24; one writer at a time) and on
  PostgreSQL (the conflicting row is locked and the WHERE re-checked against its committed version)
  two processes racing for a free lease cannot both get it.  No check-then-write anywhere.
- **Expiry is the only way a dead holder lets go.**  A process killed with ``kill -9`` keeps its
  leases until their TTL passes; then the next process that asks takes them.  A live holder keeps a
  lease by acquiring it again (or ``renew``) before it runs out: periodic loops do that every period.
- **Time comes from the clock given** (UTC ``datetime``; tests pass a fake one).  Replicas compare
  their own clocks with the expiry another wrote, so their clocks must agree to well within a TTL
  (NTP does; ``camroll admin check`` looks at the clock).
- **A lease is not a lock held while you sleep.**  A holder paused for longer than its TTL (a frozen
  VM) may find its work taken over: what runs under a lease is also safe to run twice (incidents are
  unique per user and key, media jobs are idempotent), the lease only makes that rare.
- ``release`` and ``renew`` touch only a lease this holder has; they never take one from another.

The holder id is per process (``PROCESS_HOLDER``: host, pid and a random part, so a restarted process
on the same host and pid never mistakes an old row for its own); the server logs it at start.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from camroll.server.models import Lease

if TYPE_CHECKING:
    from camroll.server.context import Context

log = logging.getLogger("camroll.server.leases")

Clock = Callable[[], datetime]

# The periodic tasks (one lease each).  An embedded server clears these at start: its server.lock
# proves that no other server uses its database, so any left are a killed process's.
EXPIRY_SWEEP = "expiry-sweep"
ORPHAN_SWEEP = "orphan-sweep"
STALL_CHECKS = "stall-checks"
TRASH_PURGE = "trash-purge"
REQUEUE = "requeue-unfinished"
PERIODIC = (EXPIRY_SWEEP, ORPHAN_SWEEP, STALL_CHECKS, TRASH_PURGE, REQUEUE)


def asset_claim(asset_id: int) -> str:
    """The lease name under which one asset's background job runs."""
    return f"asset:{asset_id}"


def asset_claim_pattern() -> str:
    """A LIKE pattern matching every asset claim."""
    return "asset:%"


def period_ttl(interval_seconds: float) -> float:
    """The TTL of a lease a loop takes again every ``interval_seconds``: two periods and ten more, at
    most half a minute more, so a run that takes longer than a period or a late wake-up does not hand
    the work to another replica, while a dead holder's work moves on within about two periods (150 s
    for the minute-long stall checks)."""
    return 2 * interval_seconds + min(30.0, 10 * interval_seconds)


def _make_holder() -> str:
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(6)}"


PROCESS_HOLDER = _make_holder()

_TABLE = cast(Table, Lease.__table__)


class Leases:
    """Acquire, renew and release leases for one holder (this process by default)."""

    def __init__(self, ctx: Context, *, holder: str = PROCESS_HOLDER, clock: Clock | None = None) -> None:
        self.ctx = ctx
        self.holder = holder
        # The context's clock unless a test hands in another one for these leases alone.
        self.clock: Clock = clock or ctx.clock.now

    def acquire(self, name: str, ttl: float) -> bool:
        """Take ``name`` for ``ttl`` seconds from now if it is free or expired, or extend it if this
        holder has it already; True if this holder has it afterwards."""
        now = self.clock()
        row = {"name": name, "holder": self.holder, "acquired_at": now, "expires_at": now + timedelta(seconds=ttl)}
        with self.ctx.conn() as conn:
            stmt = _acquire_statement(conn.dialect.name)
            if conn.dialect.name == "sqlite":
                # SQLite counts the row inserted or updated, and none when the WHERE refused (RETURNING
                # would need 3.35; ON CONFLICT needs 3.24).
                return conn.execute(stmt, row).rowcount == 1
            # psycopg reports no row count for this INSERT through SQLAlchemy: the row answers instead.
            return conn.execute(stmt, row).first() is not None

    def renew(self, name: str, ttl: float) -> bool:
        """Extend a lease this holder has; False (and nothing changed) if another holder has it or
        it is gone."""
        until = self.clock() + timedelta(seconds=ttl)
        with self.ctx.conn() as conn:
            stmt = update(_TABLE).where(_TABLE.c.name == name, _TABLE.c.holder == self.holder).values(expires_at=until)
            return conn.execute(stmt).rowcount == 1

    def renew_many(self, names: Iterable[str], ttl: float) -> int:
        """``renew`` for several leases in one statement; returns how many this holder still had."""
        names = list(names)
        if not names:
            return 0
        until = self.clock() + timedelta(seconds=ttl)
        with self.ctx.conn() as conn:
            stmt = update(_TABLE).where(_TABLE.c.name.in_(names), _TABLE.c.holder == self.holder) \
                .values(expires_at=until)
            return int(conn.execute(stmt).rowcount)

    def release(self, name: str) -> None:
        """Give a lease back at once (if this holder has it), so the next asker need not wait its TTL."""
        with self.ctx.conn() as conn:
            conn.execute(delete(_TABLE).where(_TABLE.c.name == name, _TABLE.c.holder == self.holder))

    def release_all(self) -> int:
        """Give back every lease of this holder (a clean shutdown); returns how many."""
        with self.ctx.conn() as conn:
            return int(conn.execute(delete(_TABLE).where(_TABLE.c.holder == self.holder)).rowcount)

    def holder_of(self, name: str) -> str | None:
        """Who holds ``name`` now (None if nobody, or its lease ran out)."""
        with self.ctx.conn() as conn:
            return conn.execute(select(_TABLE.c.holder).where(
                _TABLE.c.name == name, _TABLE.c.expires_at >= self.clock())).scalar()

    def clear(self, names: Iterable[str]) -> int:
        """Delete the named leases whoever holds them.  Only for a process that knows no other one uses
        the database (an embedded server under its server.lock), at start."""
        names = list(names)
        with self.ctx.conn() as conn:
            return int(conn.execute(delete(_TABLE).where(_TABLE.c.name.in_(names))).rowcount)


@functools.cache
def _acquire_statement(dialect: str) -> Any:
    """``INSERT ... ON CONFLICT (name) DO UPDATE ... WHERE leases.expires_at < now OR leases.holder = me``,
    built once per dialect: every value comes from the row proposed (``excluded``), so the statement
    is the same for every call and SQLAlchemy compiles it once (a job claims its asset with it)."""
    module = {"sqlite": sqlite, "postgresql": postgresql}.get(dialect)
    if module is None:
        raise RuntimeError(f"leases need SQLite or PostgreSQL, not {dialect}")
    c = _TABLE.c
    ins = module.insert(_TABLE)
    new = ins.excluded
    stmt = ins.on_conflict_do_update(
        index_elements=[c.name],
        # Kept by its holder, a lease keeps its first acquired_at: how long one holder has had the work.
        set_={"holder": new.holder, "expires_at": new.expires_at,
              "acquired_at": case((c.holder == new.holder, c.acquired_at), else_=new.acquired_at)},
        where=or_(c.expires_at < new.acquired_at, c.holder == new.holder),
    )
    return stmt if dialect == "sqlite" else stmt.returning(c.name)
