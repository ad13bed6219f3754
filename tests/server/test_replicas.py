"""Two real ``camroll serve`` replicas on one database both check for stalled devices ten times a
second; a device that goes silent is alerted exactly once, and its return exactly once, because the
stall checks run only in the replica holding their lease (server/leases.py); when that replica is
killed, the other takes the checks over once the lease has run out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from support.server import ON_POSTGRES, ServerProcess, database_env

from camroll.server import leases as names
from camroll.server import migrate
from camroll.server.context import Context, build
from camroll.server.models import Lease, NotifyTarget
from camroll.server.services import accounts
from camroll.server.settings import Settings

from .receiver import LOOPBACK_ALERTS, Receiver, receiver  # noqa: F401 - module fixture

CHECK_EVERY = "0.1"  # seconds: each replica asks for the stall-check lease ten times a second
SILENCE_HOURS = "0.001"  # 3.6 s without a heartbeat is silence


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess, str]]:
    # Two libraries' worth of local folders, one database: what replicas behind a load balancer share
    # (on the suite's PostgreSQL pass, a database of the cluster; here a SQLite file outside both).
    url = (database_env(tmp_path / "shared")["CAMROLL_DATABASE_URL"] if ON_POSTGRES
           else f"sqlite+pysqlite:///{tmp_path / 'shared.db'}")
    env = {**LOOPBACK_ALERTS, "CAMROLL_DATABASE_URL": url, "CAMROLL_JOB_WORKERS": "0"}
    args = ("--stall-check-interval", CHECK_EVERY, "--silence-hours", SILENCE_HOURS)
    a = ServerProcess(data=tmp_path / "replica-a", extra_args=args, env=env)
    b = ServerProcess(data=tmp_path / "replica-b", extra_args=args, env=env)
    a.start()  # one at a time: the first start migrates the shared database
    try:
        b.start()
        try:
            yield a, b, url
        finally:
            b.stop()
    finally:
        a.stop()


def _settle(sink: Receiver, path: str, count: int, seconds: float = 1.0) -> list[dict[str, object]]:
    """Wait for ``count`` messages, then watch ``seconds`` more (ten checks of each replica) for extras."""
    sink.wait(path, lambda got: len(got) >= count)
    time.sleep(seconds)
    return sink.at(path)


def test_two_replicas_alert_a_silent_device_once(replicas: tuple[ServerProcess, ServerProcess, str],
                                                 receiver: Receiver, tmp_path: Path) -> None:  # noqa: F811
    a, b, url = replicas
    ctx = build(Settings(data_dir=tmp_path / "setup", database_url=url))
    migrate.upgrade(ctx.engine)
    user = accounts.add_user(ctx, "ann", "correct horse battery")
    with ctx.db() as db:
        db.add(NotifyTarget(user_id=user.id, url=receiver.url("replicas")))
    token = a.device_token("ann", "correct horse battery", "pixel")
    beat = {"agent_version": "0.1.0", "state": "idle", "headline": "Everything is backed up."}

    r = httpx.put(f"{a.url}/api/v1/devices/current/heartbeat", json=beat,
                  headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    got = _settle(receiver, "replicas", 1)
    assert len(got) == 1, got
    assert "is silent" in str(got[0]["title"]) and "'pixel'" in str(got[0]["title"])

    # The lease holder is one of the two replicas (the holder id names its process: host:pid:random).
    holder = _holder(ctx)
    by_pid = {str(srv.proc.pid): srv for srv in (a, b) if srv.proc is not None}
    assert holder.split(":")[-2] in by_pid, (holder, by_pid)
    killed = by_pid[holder.split(":")[-2]]
    survivor = b if killed is a else a

    # The holder dies without giving its lease back; the device comes back through the other replica,
    # which takes the stall checks over once the lease has run out (1.2 s at this interval) and sends
    # the one "resolved".
    killed.kill()
    r = httpx.put(f"{survivor.url}/api/v1/devices/current/heartbeat", json=beat,
                  headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    got = _settle(receiver, "replicas", 2)
    assert len(got) == 2, got
    assert "resolved" in str(got[1]["title"]) and "reporting again" in str(got[1]["message"])
    assert survivor.proc is not None and _holder(ctx).split(":")[-2] == str(survivor.proc.pid)
    ctx.engine.dispose()


def _holder(ctx: Context) -> str:
    with ctx.db() as db:
        holder = db.scalar(select(Lease.holder).where(Lease.name == names.STALL_CHECKS))
    assert holder is not None
    return holder
