"""The library's services in-process on a real database: a 50,000-asset timeline that seeks its index, the trash
purge on a fake clock, Live Photo linking, job idempotency and the 0003 migration's backfill."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
from sqlalchemy import Select, Table, insert
from support.library import stored_assets
from support.media import photo
from support.server import ServerProcess

from camroll.media.metadata import MediaInfo
from camroll.server import migrate
from camroll.server.context import Context
from camroll.server.jobs.queue import JobQueue
from camroll.server.models import Asset, Blob, User, utcnow
from camroll.server.repositories import assets as repo
from camroll.server.services import media, timeline, trash
from camroll.server.services.accounts import add_user
from camroll.server.services.auth import Principal
from camroll.server.settings import Settings

T0 = datetime(2020, 1, 1, tzinfo=UTC)
PASSWORD = "correct horse battery"



def _user(ctx: Context, name: str = "ann") -> Principal:
    with ctx.db() as db:
        u = User(username=name, password_hash="x")
        db.add(u)
        db.flush()
        return Principal(user_id=u.id, username=name, is_admin=False, device_id=None)


def _bulk_assets(ctx: Context, user_id: int, n: int, *, start: int = 0) -> None:
    """``n`` asset rows (with blob rows) one minute apart, every third a video, jobs already done."""
    blobs, assets = [], []
    now = utcnow()
    for i in range(start, start + n):
        sha = hashlib.sha256(f"{user_id}-{i}".encode()).hexdigest()
        blobs.append({"sha256": sha, "size": 1000 + i, "created_at": now})
        assets.append({"user_id": user_id, "sha256": sha, "size": 1000 + i,
                       "mime": "video/mp4" if i % 3 == 0 else "image/jpeg",
                       "kind": "video" if i % 3 == 0 else "image", "filename": f"IMG_{i}.JPG", "created_at": now,
                       "taken_at": T0 + timedelta(minutes=i), "taken_source": "exif", "motion_photo": False,
                       "camera_make": "Canon" if i % 2 else "Apple", "camera_model": "X",
                       "metadata_at": now, "thumbs_at": now})
    with ctx.conn() as conn:
        conn.execute(insert(cast(Table, Blob.__table__)), blobs)
        conn.execute(insert(cast(Table, Asset.__table__)), assets)
    if ctx.engine.dialect.name == "postgresql":
        # What autovacuum does soon after a bulk load in a real deployment: statistics for the planner.
        # (Committed: statistics ANALYZE gathers in a transaction that rolls back are lost with it.)
        with ctx.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE blobs, assets")


def _plan(ctx: Context, stmt: Select[Any]) -> str:
    """The database's own query plan for ``stmt`` (SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN)."""
    compiled = stmt.compile(dialect=ctx.engine.dialect)
    params = compiled.construct_params()
    with ctx.engine.connect() as conn:
        if ctx.engine.dialect.name == "sqlite":
            args = tuple(params[k] for k in compiled.positiontup or ())
            return "\n".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), args))
        return "\n".join(str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + str(compiled), params))


def test_timeline_pages_seek_the_index_on_50000_assets(ctx: Context) -> None:
    """Every page, the first or the hundredth, reads the timeline index in order: no scan or sort of the
    whole library.  How fast that is on big libraries is bench/timeline_bench.py's to measure."""
    made = add_user(ctx, "ann", PASSWORD)
    ann, bob = Principal(user_id=made.id, username="ann", is_admin=False, device_id=None), _user(ctx, "bob")
    _bulk_assets(ctx, ann.user_id, 50_000)
    _bulk_assets(ctx, bob.user_id, 5_000)
    filters = repo.Filters()

    first = timeline.page(ctx, ann, filters, None, 200)
    assert first.total == 50_000
    items = [i for d in first.days for i in d.items]
    assert len(items) == 200 and items[0].filename == "IMG_49999.JPG"
    assert all(a.capture_time > b.capture_time for a, b in itertools.pairwise(items))

    # Walk 100 pages in: each page is a keyset seek from the cursor, with nothing skipped or repeated.
    cursor, seen = first.next_cursor, {i.id for i in items}
    for _ in range(100):
        assert cursor is not None
        page = timeline.page(ctx, ann, filters, cursor, 200)
        ids = {i.id for d in page.days for i in d.items}
        assert len(ids) == 200 and not ids & seen
        seen |= ids
        cursor = page.next_cursor
    deep = timeline.page(ctx, ann, filters, cursor, 200)
    deep_items = [i for d in deep.days for i in d.items]
    assert deep_items[0].filename == f"IMG_{49999 - 101 * 200}.JPG"

    assert cursor is not None
    for after in (None, timeline.decode_cursor(cursor)):
        plan = _plan(ctx, repo.timeline_query(ann.user_id, filters, after, 201))
        assert "ix_assets_timeline" in plan, plan
        # SQLite says "USE TEMP B-TREE FOR ORDER BY", PostgreSQL "Sort", when it has to sort every row.
        assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan

    videos = timeline.page(ctx, ann, repo.Filters(kind="video", camera="canon"), None, 200)
    assert all(i.kind == "video" for d in videos.days for i in d.items)
    assert videos.total == len([i for i in range(50_000) if i % 3 == 0 and i % 2])

    # The same through a real server: auth, query, count and 200 items of JSON.
    srv = ServerProcess(data=ctx.settings.data_dir)
    srv.start()
    try:
        token = srv.login("ann", PASSWORD)
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            r = client.get("/api/v1/timeline", params={"limit": 200})
    finally:
        srv.stop()
    assert r.status_code == 200 and r.json()["total"] == 50_000
    assert len([i for d in r.json()["days"] for i in d["items"]]) == 200


def test_purge_on_a_fake_clock_keeps_shared_blobs(ctx: Context) -> None:
    ann, bob = _user(ctx, "ann"), _user(ctx, "bob")
    _bulk_assets(ctx, ann.user_id, 3)
    _bulk_assets(ctx, bob.user_id, 1)  # bob-0 has its own sha; share ann's first blob with bob below
    with ctx.db() as db:
        ann_assets = sorted(repo.timeline(db, ann.user_id, repo.Filters(), None, 10), key=lambda a: a.id)
        shared_sha = ann_assets[0].sha256
        db.add(Asset(user_id=bob.user_id, sha256=shared_sha, size=ann_assets[0].size, kind="image",
                     taken_at=T0, filename="copy.jpg"))
    for a in ann_assets:
        ctx.blobs.put_file(a.sha256, _tmp_file(ctx, a.sha256))

    trash.trash(ctx, ann, [a.id for a in ann_assets[:2]], days=30)
    now = utcnow()
    assert trash.purge(ctx, days=30, now=now + timedelta(days=29)) == 0
    assert trash.purge(ctx, days=30, now=now + timedelta(days=31)) == 2
    with ctx.db() as db:
        left = [a.id for a in repo.owned(db, ann.user_id, [a.id for a in ann_assets])]
    assert left == [ann_assets[2].id]
    assert ctx.blobs.exists(shared_sha)  # bob still has it
    assert not ctx.blobs.exists(ann_assets[1].sha256)
    assert ctx.blobs.exists(ann_assets[2].sha256)


def _tmp_file(ctx: Context, name: str) -> Path:
    p = ctx.settings.data_dir / f"{name}.tmp"
    p.write_bytes(name.encode())
    return p


def test_restored_assets_are_not_purged(ctx: Context) -> None:
    ann = _user(ctx)
    _bulk_assets(ctx, ann.user_id, 2)
    with ctx.db() as db:
        ids = [a.id for a in repo.timeline(db, ann.user_id, repo.Filters(), None, 10)]
    assert trash.trash(ctx, ann, ids, days=30).changed == 2
    assert trash.restore(ctx, ann, ids[:1], days=30).changed == 1
    assert trash.purge(ctx, days=30, now=utcnow() + timedelta(days=31)) == 1
    with ctx.db() as db:
        assert [a.id for a in repo.owned(db, ann.user_id, ids)] == ids[:1]


def test_live_photo_halves_are_linked_and_the_mov_hidden(ctx: Context) -> None:
    ann = _user(ctx)
    _bulk_assets(ctx, ann.user_id, 3)  # ids 1 (video), 2, 3 (images)
    with ctx.db() as db:
        rows = {a.filename: a.id for a in repo.timeline(db, ann.user_id, repo.Filters(), None, 10)}
    mov, still = rows["IMG_0.JPG"], rows["IMG_1.JPG"]
    # The MOV's metadata arrives first; the link is made when the still's does.
    media.record_metadata(ctx, mov, MediaInfo(kind="video", live_photo_id="CID-1"))
    assert len([i for d in timeline.page(ctx, ann, repo.Filters(), None, 10).days for i in d.items]) == 3
    media.record_metadata(ctx, still, MediaInfo(kind="image", live_photo_id="CID-1"))
    page = timeline.page(ctx, ann, repo.Filters(), None, 10)
    items = {i.id: i for d in page.days for i in d.items}
    assert mov not in items and page.total == 2
    assert items[still].live_video_id == mov
    # Trashing the still takes its MOV along; restoring brings both back.
    assert trash.trash(ctx, ann, [still], days=30).changed == 1
    with ctx.db() as db:
        assert repo.by_id(db, ann.user_id, mov).trashed_at is not None  # type: ignore[union-attr]
    trash.restore(ctx, ann, [still], days=30)
    with ctx.db() as db:
        assert repo.by_id(db, ann.user_id, mov).trashed_at is None  # type: ignore[union-attr]


def test_job_is_idempotent_and_records_failures(ctx: Context) -> None:
    ann = _user(ctx)
    good = photo(datetime(2021, 7, 4, 8, 30), size=(800, 600))
    bad = b"\xff\xd8\xff\xe0" + b"\x00" * 3000
    ids = []
    for data, name in ((good, "good.jpg"), (bad, "bad.jpg")):
        sha = hashlib.sha256(data).hexdigest()
        src = ctx.settings.data_dir / name
        src.write_bytes(data)
        ctx.blobs.put_file(sha, src)
        with ctx.conn() as conn:
            repo.ensure_blob(conn, sha, len(data))
            ids.append(repo.get_or_create(conn, ann.user_id, sha, len(data), "image/jpeg", name))
    queue = JobQueue(ctx)
    assert queue._run(ids[0]) == "done"
    thumbs = media.thumb_store(ctx)
    grid = thumbs.path(hashlib.sha256(good).hexdigest(), "grid")
    first_mtime = grid.stat().st_mtime_ns
    assert queue._run(ids[0]) == "already_done"
    assert grid.stat().st_mtime_ns == first_mtime
    # A lost thumbnail file is made again; metadata is not read twice.
    grid.unlink()
    assert queue._run(ids[0]) == "done" and grid.is_file()

    # Another user's copy of the same bytes reuses the thumbnails instead of decoding again.
    bob = _user(ctx, "bob")
    with ctx.conn() as conn:
        bobs = repo.get_or_create(conn, bob.user_id, hashlib.sha256(good).hexdigest(), len(good), "image/jpeg", "g.jpg")
    made = grid.stat().st_mtime_ns
    assert queue._run(bobs) == "done" and grid.stat().st_mtime_ns == made
    with ctx.db() as db:
        b = repo.by_id(db, bob.user_id, bobs)
        assert b is not None and b.thumbs_at is not None and b.taken_source == "exif"

    assert queue._run(ids[1]) == "failed"
    with ctx.db() as db:
        a = repo.by_id(db, ann.user_id, ids[1])
        assert a is not None and a.job_error and a.thumbs_at is None
        assert repo.job_counts(db) == {"done": 2, "waiting": 0, "failed": 1}
        assert repo.needing_jobs(db, 0, 10) == []  # failed assets are not re-queued at start
        g = repo.by_id(db, ann.user_id, ids[0])
        assert g is not None and g.taken_source == "exif" and g.taken_at == datetime(2021, 7, 4, 8, 30, tzinfo=UTC)
    assert queue._run(10**6) == "gone"


def test_migration_0003_backfills_existing_assets(tmp_path: Path) -> None:
    from sqlalchemy import text

    from camroll.server.db import make_engine

    engine = make_engine(f"sqlite+pysqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, username, password_hash, is_admin, created_at) "
                          "VALUES (1, 'ann', 'x', 0, '2024-01-01 00:00:00')"))
        for i, mime in enumerate(("image/heic", "video/quicktime", None)):
            sha = f"{i}" * 64
            conn.execute(text("INSERT INTO blobs (sha256, size, created_at) VALUES (:s, 1, '2024-01-01 00:00:00')"),
                         {"s": sha})
            conn.execute(text("INSERT INTO assets (user_id, sha256, size, mime, filename, created_at) "
                              "VALUES (1, :s, 1, :m, 'f', :c)"),
                         {"s": sha, "m": mime, "c": f"2024-03-0{i + 1} 10:00:00"})
            conn.execute(text("INSERT INTO asset_files (asset_id, path, filename) VALUES (:a, 'DCIM/f', 'f')"),
                         {"a": i + 1})
    migrate.upgrade(engine)
    with engine.connect() as conn:
        # Rebuilding the assets table must not cascade into the device copies.
        assert conn.execute(text("SELECT count(*) FROM asset_files")).scalar() == 3
        rows = conn.execute(text("SELECT kind, taken_at, taken_source, trashed_at FROM assets ORDER BY id")).all()
    assert [r[0] for r in rows] == ["image", "video", "other"]
    assert [str(r[1])[:10] for r in rows] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert {r[2] for r in rows} == {"upload"} and {r[3] for r in rows} == {None}
    engine.dispose()


def test_thumbnail_waits_for_its_job_and_works_from_a_non_local_store(tmp_path: Path) -> None:
    """With no workers running (no lifespan), the thumbnail is a 404 with a fix; once the job has run
    it is served.  The blob lives in a store without local paths, so the job reads a temporary copy."""
    from fastapi.testclient import TestClient

    from camroll.server.app import create_app
    from camroll.server.db import make_engine, make_sessionmaker
    from camroll.server.services import auth
    from camroll.server.services.partfiles import PartFiles
    from camroll.server.storage.base import TempCopies
    from camroll.server.storage.memory import MemoryBlobStore

    settings = Settings.for_data_dir(tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    engine = make_engine(settings.database_url)
    ctx = Context(settings, engine, make_sessionmaker(engine), MemoryBlobStore(TempCopies(settings.data_dir / "tmp")),
                  PartFiles(settings.uploads_dir))
    migrate.upgrade(engine)
    user = add_user(ctx, "ann", PASSWORD)
    token = auth.login(ctx, "ann", PASSWORD).token
    data = photo(datetime(2016, 6, 6), size=(1000, 800))
    sha = hashlib.sha256(data).hexdigest()
    src = tmp_path / "upload.part"
    src.write_bytes(data)
    ctx.blobs.put_file(sha, src)
    with ctx.conn() as conn:
        repo.ensure_blob(conn, sha, len(data))
        asset_id = repo.get_or_create(conn, user.id, sha, len(data), "image/jpeg", "IMG_1.JPG")

    client = TestClient(create_app(settings, ctx), headers={"Authorization": f"Bearer {token}"})
    r = client.get(f"/api/v1/assets/{asset_id}/thumbnail")
    assert r.status_code == 404 and "not ready yet" in r.json()["detail"] and r.json()["fix"]
    assert client.get("/api/v1/timeline").json()["days"][0]["items"][0]["has_thumbnail"] is False

    assert JobQueue(ctx)._run(asset_id) == "done"
    r = client.get(f"/api/v1/assets/{asset_id}/thumbnail", params={"size": "preview"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    assert client.get("/api/v1/timeline").json()["days"][0]["items"][0]["has_thumbnail"] is True
    assert list((settings.data_dir / "tmp").iterdir()) == []  # the temporary copy is gone
    engine.dispose()


def test_a_job_whose_store_fails_waits_without_a_verdict_on_the_file(ctx: Context) -> None:
    """A bucket that does not answer is the server's problem, not the photo's: nothing is recorded on
    the asset (no 'admin jobs --retry' needed), the job waits and runs once the store answers again."""
    from camroll.server.storage.base import StorageUnreachable

    data = photo(datetime(2019, 3, 3), size=(640, 480))
    sha = hashlib.sha256(data).hexdigest()
    src = ctx.settings.data_dir / "p.jpg"
    src.write_bytes(data)
    ctx.blobs.put_file(sha, src)
    user = add_user(ctx, "ann", PASSWORD)
    with ctx.conn() as conn:
        repo.ensure_blob(conn, sha, len(data))
        asset_id = repo.get_or_create(conn, user.id, sha, len(data), "image/jpeg", "IMG_1.jpg")
    real = ctx.blobs.local_file

    def down(_sha: str) -> object:
        raise StorageUnreachable("Could not connect to the S3 endpoint http://10.9.9.9:9000.",
                                 "Check AWS_ENDPOINT_URL and that the storage server is running.")

    queue = JobQueue(ctx)
    try:
        ctx.blobs.local_file = down  # type: ignore[method-assign]
        assert queue._run(asset_id) == "waiting_for_storage"
        with ctx.db() as db:
            a = repo.by_id(db, user.id, asset_id)
            assert a is not None and a.job_error is None and a.thumbs_at is None
        assert queue.waiting_for_disk == 1
        ctx.blobs.local_file = real  # type: ignore[method-assign]
        assert queue._run(asset_id) == "done"
        with ctx.db() as db:
            a = repo.by_id(db, user.id, asset_id)
            assert a is not None and a.thumbs_at is not None and a.job_error is None
    finally:
        queue.huey.flush()


def test_a_batch_is_queued_in_groups_and_one_failing_asset_is_retried_alone(
        ctx: Context, monkeypatch: Any) -> None:
    """A batch's uploads cost one queue write per group, not per asset; an asset whose job breaks in a
    way worth retrying goes back to the queue on its own, and the rest of its group is still done."""
    from camroll.server.jobs import queue as queue_mod

    user = add_user(ctx, "ann", PASSWORD)
    ids = stored_assets(ctx, user.id, [photo(datetime(2019, 3, 3 + i), size=(320, 240)) for i in range(3)])
    queue = JobQueue(ctx)
    try:
        many = list(range(1000, 1000 + 2 * queue_mod.GROUP_SIZE + 1))
        queue.assets_added(many)
        pending = queue.huey.pending()
        assert [t.name for t in pending] == [queue_mod.TASK_PROCESS_GROUP] * 3
        assert [a for t in pending for a in t.args[0]] == many
        queue.huey.flush()

        real = media.process

        def flaky(c: Context, asset_id: int, sandbox: Any) -> str:
            if asset_id == ids[1]:
                raise ConnectionError("the database went away for a moment")
            return real(c, asset_id, sandbox)

        monkeypatch.setattr(media, "process", flaky)
        assert queue._run_group(ids) == "group"
        with ctx.db() as db:
            done = {i: repo.by_id(db, user.id, i) for i in ids}
        assert all(a is not None for a in done.values())
        assert done[ids[0]].thumbs_at is not None and done[ids[2]].thumbs_at is not None  # type: ignore[union-attr]
        # Not a verdict on the photo: no error recorded, and it waits in the queue alone, with retries.
        assert done[ids[1]].thumbs_at is None and done[ids[1]].job_error is None  # type: ignore[union-attr]
        [again] = queue.huey.pending()
        assert again.name == queue_mod.TASK_PROCESS and again.args == (ids[1],)
        monkeypatch.setattr(media, "process", real)
        queue.huey.flush()
        assert queue._run(ids[1]) == "done"
    finally:
        queue.huey.flush()


def test_a_group_cut_by_a_stopping_worker_goes_back_to_the_queue(ctx: Context, monkeypatch: Any) -> None:
    """Run through huey itself: the worker stops after the first asset, and the rest of the group is
    queued again (with Redis another replica takes it at once) instead of waiting for some start."""
    import dataclasses

    from camroll.server.jobs import queue as queue_mod
    from camroll.server.jobs.config import JobSettings

    queue = JobQueue(ctx, dataclasses.replace(JobSettings.from_env(), workers=2))
    try:
        # A small batch is split so that every worker thread (2 by default here) has a group.
        queue.assets_added([11, 12, 13, 14, 15, 16])
        task, other = queue.huey.pending()
        assert (task.name, task.args, other.args) == (queue_mod.TASK_PROCESS_GROUP, ([11, 12, 13],), ([14, 15, 16],))
        queue.huey.flush()
        seen: list[int] = []

        def first_then_stop(c: Context, asset_id: int, sandbox: Any) -> str:
            seen.append(asset_id)
            queue._stop.set()
            return "gone"

        monkeypatch.setattr(media, "process", first_then_stop)
        queue.huey.execute(task)
        assert seen == [11]
        [again] = queue.huey.pending()
        assert again.name == queue_mod.TASK_PROCESS_GROUP and again.args == ([12, 13],)
    finally:
        queue._stop.clear()
        queue.huey.flush()
