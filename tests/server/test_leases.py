"""Leases and job claims on the real database (SQLite here, PostgreSQL in the suite's PostgreSQL pass),
on a fake clock: one holder at a time, a dead holder's lease taken over after its TTL, periodic work
in one replica, and two consumers racing on one asset making its thumbnails once."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from support.media import photo

from camroll.server import leases as names
from camroll.server import sweeper
from camroll.server.context import Context
from camroll.server.jobs import status
from camroll.server.jobs.queue import JobQueue
from camroll.server.leases import Leases, period_ttl
from camroll.server.models import Lease, utcnow
from camroll.server.repositories import assets as repo
from camroll.server.services import accounts, media
from camroll.server.services.work import RecordedWork

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_one_holder_at_a_time_and_expiry_hands_over(ctx: Context) -> None:
    clock = FakeClock()
    a, b = Leases(ctx, holder="replica-a", clock=clock), Leases(ctx, holder="replica-b", clock=clock)
    assert a.acquire("job", 10) and not b.acquire("job", 10)
    assert a.acquire("job", 10)  # the holder extends its own
    assert a.holder_of("job") == "replica-a"
    assert not b.renew("job", 10)
    b.release("job")  # not b's to give back
    assert a.holder_of("job") == "replica-a"

    clock.advance(9)
    assert not b.acquire("job", 10) and a.renew("job", 10)  # renewed at 9 s: good until 19 s
    clock.advance(9.5)
    assert not b.acquire("job", 10)
    clock.advance(1)  # past 19 s: a stopped renewing (it died); b takes over
    assert a.holder_of("job") is None
    assert b.acquire("job", 10) and b.holder_of("job") == "replica-b"
    assert not a.acquire("job", 10) and not a.renew("job", 10)
    b.release("job")
    assert a.acquire("job", 10)  # released: free at once, no TTL to wait

    assert b.acquire("other", 10) and b.renew_many(["other", "job"], 10) == 1
    assert a.release_all() == 1 and b.release_all() == 1
    with ctx.db() as db:
        assert db.scalars(select(Lease)).all() == []


def test_racing_acquires_give_exactly_one_holder(ctx: Context) -> None:
    clock = FakeClock()
    won: list[str] = []
    start = threading.Barrier(8)

    def race(holder: str) -> None:
        leases = Leases(ctx, holder=holder, clock=clock)
        start.wait()
        if leases.acquire("contended", 30):
            won.append(holder)

    threads = [threading.Thread(target=race, args=(f"h{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert Leases(ctx, clock=clock).holder_of("contended") == won[0]


def test_stall_checks_run_in_the_lease_holder_and_move_when_it_dies(ctx: Context) -> None:
    clock = FakeClock()
    a, b = Leases(ctx, holder="replica-a", clock=clock), Leases(ctx, holder="replica-b", clock=clock)
    assert sweeper.check_stalls_once(ctx, a) == 0  # ran: nothing to alert about
    assert sweeper.check_stalls_once(ctx, b) is None  # skipped: a holds it
    ttl = period_ttl(ctx.settings.stall_check_seconds)
    for _ in range(5):  # a keeps it by running every period
        clock.advance(ctx.settings.stall_check_seconds)
        assert sweeper.check_stalls_once(ctx, b) is None and sweeper.check_stalls_once(ctx, a) == 0
    clock.advance(ttl + 1)  # a is gone
    assert sweeper.check_stalls_once(ctx, b) == 0
    assert sweeper.check_stalls_once(ctx, a) is None


@pytest.mark.sqlite_only("the library's own SQLite file is what server.lock guards")
def test_an_embedded_restart_clears_a_killed_servers_leases(ctx: Context) -> None:
    """The library's own SQLite file is one server's (server.lock): a restart after kill -9 need not
    wait for the dead process's leases to run out."""
    from camroll.server.app import _own_database

    dead = Leases(ctx, holder="killed")
    assert dead.acquire(names.STALL_CHECKS, 3600) and dead.acquire(names.asset_claim(7), 3600)
    assert _own_database(ctx)
    Leases(ctx).clear(names.PERIODIC)
    assert Leases(ctx).acquire(names.STALL_CHECKS, 60)
    # A job claim may belong to a live 'camroll worker' on the same library: it stays.
    assert dead.holder_of(names.asset_claim(7)) == "killed"


def _asset(ctx: Context) -> int:
    user = accounts.add_user(ctx, "ann", "pw")
    data = photo(datetime(2022, 2, 2, 2, 2), size=(900, 600))
    sha = hashlib.sha256(data).hexdigest()
    src = ctx.settings.data_dir / "upload.part"
    src.write_bytes(data)
    ctx.blobs.put_file(sha, src)
    with ctx.conn() as conn:
        repo.ensure_blob(conn, sha, len(data))
        return repo.get_or_create(conn, user.id, sha, len(data), "image/jpeg", "IMG_1.JPG")


def _counting(queue: JobQueue, calls: list[str], inside: threading.Event | None = None,
              proceed: threading.Event | None = None) -> None:
    real: Callable[..., Any] = queue.sandbox.thumbnails

    def thumbnails(*args: Any, **kwargs: Any) -> Any:
        calls.append(queue.leases.holder)
        if inside is not None and proceed is not None:
            inside.set()
            assert proceed.wait(30)
        return real(*args, **kwargs)

    queue.sandbox.thumbnails = thumbnails  # type: ignore[method-assign]


def test_two_consumers_racing_on_one_asset_make_its_thumbnails_once(ctx: Context) -> None:
    asset_id = _asset(ctx)
    clock = FakeClock(utcnow())  # now: 'admin jobs' counts the claims running at the real time
    first = JobQueue(ctx, leases=Leases(ctx, holder="worker-1", clock=clock))
    second = JobQueue(ctx, leases=Leases(ctx, holder="worker-2", clock=clock))
    calls: list[str] = []
    inside, proceed = threading.Event(), threading.Event()
    _counting(first, calls, inside, proceed)
    _counting(second, calls)
    outcomes: dict[str, str] = {}
    try:
        t = threading.Thread(target=lambda: outcomes.update(first=first._run(asset_id)))
        t.start()
        assert inside.wait(60)  # the first holds the claim and is rendering
        assert second._run(asset_id) == "claimed_elsewhere"
        # It looks again once the claim would have run out (huey files a task with an eta in the schedule
        # when a consumer first meets it).
        assert second.huey.pending_count() + second.huey.scheduled_count() == 1
        assert first.renew_claims() == 1  # a running job keeps its claim alive
        assert status.report(ctx).running == 1  # 'camroll admin jobs' shows it
        proceed.set()
        t.join(60)
        assert outcomes == {"first": "done"}
        assert calls == ["worker-1"]
        assert second._run(asset_id) == "already_done"
        assert calls == ["worker-1"]
        with ctx.db() as db:
            assert db.scalars(select(Lease)).all() == []  # claims are given back

        # A worker killed mid-job keeps its claim until the TTL; then the work is done by another.
        media.thumb_store(ctx).delete(repo_sha(ctx, asset_id))
        assert Leases(ctx, holder="killed-worker", clock=clock).acquire(names.asset_claim(asset_id), first.claim_ttl)
        assert second._run(asset_id) == "claimed_elsewhere"
        clock.advance(first.claim_ttl + 1)
        assert second._run(asset_id) == "done"
        assert calls == ["worker-1", "worker-2"]
    finally:
        proceed.set()
        first.sandbox.close()
        second.sandbox.close()


def test_two_threads_of_one_process_never_work_on_one_asset_at_once(ctx: Context) -> None:
    """Both threads of one worker hold the same lease holder id: the claim alone would let the second
    in (and the first to finish would give the claim back under the second)."""
    asset_id = _asset(ctx)
    queue = JobQueue(ctx, leases=Leases(ctx, holder="worker-1"))
    calls: list[str] = []
    inside, proceed = threading.Event(), threading.Event()
    _counting(queue, calls, inside, proceed)
    outcomes: dict[str, str] = {}
    try:
        t = threading.Thread(target=lambda: outcomes.update(first=queue._run(asset_id)))
        t.start()
        assert inside.wait(60)
        assert queue._run(asset_id) == "claimed_elsewhere"
        proceed.set()
        t.join(60)
        assert outcomes == {"first": "done"} and calls == ["worker-1"]
        assert queue._run(asset_id) == "already_done"
    finally:
        proceed.set()
        queue.huey.flush()
        queue.sandbox.close()


def repo_sha(ctx: Context, asset_id: int) -> str:
    with ctx.db() as db:
        a = repo.by_id_any_user(db, asset_id)
        assert a is not None
        return a.sha256


def test_services_ask_for_work_through_the_context(ctx: Context) -> None:
    """An upload's completion and a missing thumbnail reach whatever WorkQueue the context carries."""
    from fastapi.testclient import TestClient

    from camroll.server.app import create_app
    from camroll.server.services import auth

    asset_id = _asset(ctx)
    work = RecordedWork()
    ctx.work = work
    with ctx.db() as db:
        a = repo.by_id_any_user(db, asset_id)
        assert a is not None
        a.thumbs_at = a.metadata_at = T0  # recorded as made, but no file: the endpoint asks for it again
    token = auth.login(ctx, "ann", "pw").token
    client = TestClient(create_app(ctx.settings, ctx), headers={"Authorization": f"Bearer {token}"})
    assert client.get(f"/api/v1/assets/{asset_id}/thumbnail").status_code == 404
    assert work.redone == [asset_id]

    from .conftest import jpeg, upload

    device = client.post("/api/v1/devices", json={"name": "p", "platform": "test"}).json()["token"]
    new = upload(TestClient(create_app(ctx.settings, ctx), headers={"Authorization": f"Bearer {device}"}),
                 jpeg(5000))
    assert work.added == [new]
