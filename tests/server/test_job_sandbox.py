"""Media jobs in the sandbox, on a real SQLite database: a file over the time limit gets a verdict in
words that survives restarts (not queued again at every start) until 'admin jobs --retry'."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from media import hostile

from camroll.server import migrate
from camroll.server.context import Context, build
from camroll.server.jobs import status
from camroll.server.jobs.queue import JobQueue
from camroll.server.models import User
from camroll.server.repositories import assets as repo
from camroll.server.settings import Settings

from .media_fixtures import photo


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    c = build(Settings.for_data_dir(tmp_path / "data"))
    migrate.upgrade(c.engine)
    try:
        yield c
    finally:
        c.engine.dispose()


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
