"""The job queue on a real Redis (tests/services/redis.py): fresh uploads jump the backlog, retries
wait their delay in Redis's schedule, the full-disk back-off queues again into Redis, ``camroll admin
jobs`` reads the depth from Redis, and two ``camroll worker`` processes share one queue with duplicate
jobs and finish every asset once, giving back every claim."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from services.redis import RedisService
from sqlalchemy import select
from support.library import stored_assets
from support.media import photo
from support.server import camroll_cmd, run_camroll
from support.wait import wait_until

from camroll.server.context import Context
from camroll.server.jobs import status
from camroll.server.jobs.queue import JobQueue
from camroll.server.models import Asset, Lease
from camroll.server.services import accounts, media


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    svc: RedisService = request.getfixturevalue("redis_service")
    url = svc.fresh_url()
    monkeypatch.setenv("CAMROLL_REDIS_URL", url)
    return url


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_priority_retries_and_disk_backoff_on_redis(ctx: Context, redis_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Monotonic()
    producer, consumer = JobQueue(ctx), JobQueue(ctx, clock=clock)  # two processes' connections
    try:
        for asset_id in (1, 2):
            producer.enqueue(asset_id, fresh=False)  # a start-up backlog
        producer.enqueue(3)  # a fresh upload
        rep = status.report(ctx)
        assert (rep.backend, rep.queued, rep.scheduled) == ("redis", 3, 0)
        order = []
        for _ in range(3):
            task = consumer.huey.dequeue()
            assert task is not None
            order.append(task.args[0])
        assert order == [3, 1, 2]

        # A failure that is not the file's: huey retries after the delay, waiting in Redis's schedule.
        def hiccup(_ctx: Context, asset_id: int, _sandbox: object) -> str:
            raise RuntimeError("database restarting")

        monkeypatch.setattr(media, "process", hiccup)
        producer.enqueue(4)
        task = consumer.huey.dequeue()
        assert task is not None
        consumer.huey.execute(task)
        rep = status.report(ctx)
        assert (rep.queued, rep.scheduled) == (0, 1)
        consumer.huey.flush()

        # A full disk parks the job in this process, then queues it again into Redis after the back-off.
        def disk_full(_ctx: Context, asset_id: int, _sandbox: object) -> str:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(media, "process", disk_full)
        assert consumer._run(5) == "waiting_for_disk" and consumer.waiting_for_disk == 1
        assert consumer.requeue_parked() == 0 and status.report(ctx).queued == 0
        clock.now += 2 * consumer.jobs.retry_delay_seconds
        assert consumer.requeue_parked() == 1 and status.report(ctx).queued == 1
        task = consumer.huey.dequeue()
        assert task is not None and task.args == (5,)
    finally:
        producer.sandbox.close()
        consumer.sandbox.close()


def _assets(ctx: Context, n: int) -> list[int]:
    user = accounts.add_user(ctx, "ann", "pw")
    return stored_assets(ctx, user.id, [photo(datetime(2020, 1, 1 + i), size=(640, 480), color=(10 * i, 40, 90))
                                        for i in range(n)], name="IMG_{i}.JPG")


def test_two_worker_processes_share_the_redis_queue(ctx: Context, redis_url: str, tmp_path: Path) -> None:
    ids = _assets(ctx, 4)
    queue = JobQueue(ctx)
    try:
        for asset_id in ids:  # every asset twice, as a start-up re-queue and an upload would
            queue.enqueue(asset_id, fresh=False)
            queue.enqueue(asset_id)
    finally:
        queue.sandbox.close()
    env = {**os.environ, "CAMROLL_REDIS_URL": redis_url, "CAMROLL_DATABASE_URL": ctx.settings.database_url}
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    workers = []
    for log in logs:
        with open(log, "w") as out:
            cmd = camroll_cmd("worker", "--workers", "1", "--data", str(ctx.settings.data_dir))
            workers.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env))
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with ctx.db() as db:
                done = db.scalars(select(Asset.id).where(Asset.thumbs_at.is_not(None),
                                                         Asset.metadata_at.is_not(None))).all()
            if len(done) == len(ids):
                break
            time.sleep(0.1)
        assert sorted(done) == sorted(ids)
        # The duplicates found their asset done (or claimed) and returned; the queue drains.
        deadline = time.monotonic() + 30
        while status.report(ctx).queued and time.monotonic() < deadline:
            time.sleep(0.1)
        # On a loaded machine one worker can do every job while the other is still starting: a SIGTERM
        # before its consumer is up would end it by the signal, not by its graceful stop.
        wait_until(lambda: all("camroll worker:" in log.read_text() for log in logs), 60,
                   what="both workers are up")
        time.sleep(0.5)
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            assert w.wait(timeout=30) == 0
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    text = "".join(log.read_text() for log in logs)
    assert "Traceback" not in text, text
    assert "on the Redis queue" in text
    with ctx.db() as db:
        assert db.scalars(select(Lease.name)).all() == []  # every claim was given back
        assert all(a.job_error is None for a in db.scalars(select(Asset)))
    report = json.loads(run_camroll("admin", "jobs", "--json", "--data", str(ctx.settings.data_dir),
                                    env={"CAMROLL_REDIS_URL": redis_url,
                                         "CAMROLL_DATABASE_URL": ctx.settings.database_url}).stdout)
    assert (report["backend"], report["queued"], report["done"], report["failed"]) == ("redis", 0, 4, 0)
