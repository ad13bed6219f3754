"""Media jobs in the sandbox, on a real SQLite database: a file over the time limit gets a verdict in
words that survives restarts (not queued again at every start) until 'admin jobs --retry'."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from media import hostile
from support.media import photo
from support.server import ServerProcess, camroll_cmd, database_env

from camroll import wire
from camroll.server.context import Context
from camroll.server.jobs import status
from camroll.server.jobs.queue import JobQueue
from camroll.server.models import User
from camroll.server.repositories import assets as repo

from .conftest import make_user, upload


def _asset(ctx: Context, user_id: int, data: bytes, mime: str, name: str) -> int:
    sha = hashlib.sha256(data).hexdigest()
    src = ctx.settings.data_dir / name
    src.write_bytes(data)
    ctx.blobs.put_file(sha, src)
    with ctx.conn() as conn:
        repo.ensure_blob(conn, sha, len(data))
        return repo.get_or_create(conn, user_id, sha, len(data), mime, name)


def test_a_file_over_the_time_limit_is_a_verdict_until_retried(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMROLL_JOB_TIMEOUT", "0.5")
    with ctx.db() as db:
        user = User(username="ann", password_hash="x")
        db.add(user)
        db.flush()
        uid = user.id
    bomb = _asset(ctx, uid, hostile.png_bomb(12000, 12000), "image/png", "bomb.png")
    good = _asset(ctx, uid, photo(datetime(2022, 2, 2, 9, 0)), "image/jpeg", "good.jpg")
    queue = JobQueue(ctx)
    try:
        assert queue._run(bomb) == "failed"
        assert queue._run(good) == "done"  # the next file is not held by the one that timed out
        assert queue.sandbox.started == 2  # the stalled child was replaced
    finally:
        queue.sandbox.close()
    with ctx.db() as db:
        a = repo.by_id(db, uid, bomb)
        assert a is not None and a.job_error is not None
        assert "took over 0.5 s" in a.job_error and "CAMROLL_JOB_TIMEOUT" in a.job_error
        assert a.width == 12000 and a.metadata_at is not None  # its metadata needed no decode
        assert a.thumbs_at is None
        assert repo.needing_jobs(db, 0, 10) == []
    # A restart does not queue it again...
    assert JobQueue(ctx).enqueue_unfinished() == 0
    report = status.report(ctx)
    assert report.failed == 1 and "took over 0.5 s" in report.recent_failures[0].reason
    # ... 'camroll admin jobs --retry' does.
    assert status.retry_failed(ctx) == 1
    with ctx.db() as db:
        assert repo.needing_jobs(db, 0, 10) == [bomb]


def test_camroll_worker_reads_files_in_the_sandbox_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A separate 'camroll worker' (the server doing no jobs itself) uses the same sandbox: the bomb
    fails in a child of the worker, with the memory sentence, and the worker's own memory stays low."""
    monkeypatch.setenv("CAMROLL_JOB_WORKERS", "0")
    monkeypatch.setenv("CAMROLL_JOB_MEMORY", "300MiB")
    srv = ServerProcess(data=tmp_path / "server-data")
    srv.start()
    worker = subprocess.Popen(camroll_cmd("worker", "--workers", "1", "--data", str(srv.data)),
                              env={**os.environ, **database_env(srv.data)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    user = make_user(srv)
    try:
        ids = [upload(user.client, hostile.png_bomb(12000, 12000), filename="bomb.png"),
               upload(user.client, photo(datetime(2023, 3, 3, 3, 3)), filename="good.jpg")]
        proc = psutil.Process(worker.pid)
        peak, children = 0, set()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            peak = max(peak, proc.memory_info().rss)
            children |= {" ".join(c.cmdline()) for c in proc.children()}
            details = [wire.AssetDetail.model_validate(user.session.get(f"/api/v1/assets/{i}").json()) for i in ids]
            if all(d.has_thumbnail or d.job_error for d in details):
                break
            time.sleep(0.05)
        bomb, good = details
        assert bomb.job_error and "300 MiB memory limit (CAMROLL_JOB_MEMORY)" in bomb.job_error
        assert good.has_thumbnail and good.job_error is None
        assert any("camroll.media.sandbox_child" in c for c in children), children
        assert peak < 250 << 20, peak
    finally:
        user.client.close()
        worker.terminate()
        out = worker.communicate(timeout=30)[0].decode()
        srv.stop()
    assert "read in a child process limited to 60 s and 300 MiB" in out
