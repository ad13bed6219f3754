"""Upgrading a database that 0001 created, with rows in it, to the device-health schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from camroll.server import migrate
from camroll.server.context import Context
from camroll.server.db import make_engine, make_sessionmaker
from camroll.server.models import AssetFile, DeviceHealth, Incident, NotifyTarget
from camroll.server.services import stalls
from camroll.server.services.partfiles import PartFiles
from camroll.server.settings import Settings
from camroll.server.storage.memory import MemoryBlobStore


def test_upgrade_from_0001_keeps_rows_and_dates_old_copies(tmp_path: Path) -> None:
    settings = Settings.for_data_dir(tmp_path)
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine, "0001")
    stored = datetime(2026, 11, 1, 12, 0)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, username, password_hash, is_admin, quota_bytes, created_at) "
                          "VALUES (1, 'ann', 'x', false, 100, :t)"), {"t": stored})
        conn.execute(text("INSERT INTO devices (id, user_id, name, platform, token_hash, created_at) "
                          "VALUES (1, 1, 'pixel', 'android', 'h', :t)"), {"t": stored})
        conn.execute(text("INSERT INTO blobs (sha256, size, created_at) VALUES ('aa', 95, :t)"), {"t": stored})
        conn.execute(text("INSERT INTO assets (id, user_id, sha256, size, mime, filename, created_at) "
                          "VALUES (1, 1, 'aa', 95, NULL, 'a.jpg', :t)"), {"t": stored})
        conn.execute(text("INSERT INTO asset_files (id, asset_id, device_id, path, filename, mtime_ns) "
                          "VALUES (1, 1, 1, '/DCIM/a.jpg', 'a.jpg', 5)"))
    assert migrate.current_revision(engine) == "0001"

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.HEAD
    ctx = Context(settings, engine, make_sessionmaker(engine), MemoryBlobStore(), PartFiles(settings.uploads_dir))
    with ctx.db() as db:
        copy = db.get(AssetFile, 1)
        assert copy is not None and copy.path == "/DCIM/a.jpg"
        assert copy.created_at == stored.replace(tzinfo=UTC)
        now = datetime.now(UTC)
        db.add(DeviceHealth(device_id=1, received_at=now, agent_version="0.1.0", state="idle", headline="ok",
                            pending_files=0, pending_bytes=0, failed_files=0, skipped_files=0, backed_up_files=1,
                            problems=[], progress_at=now, state_since=now))
        db.add(NotifyTarget(user_id=1, url="json://127.0.0.1:1/x"))
    # The old rows take part in the new checks: 95 of 100 bytes is a 90% quota incident.
    messages = stalls.check(ctx, datetime.now(UTC) + timedelta(seconds=1))
    assert [m.title for m in messages] == ["camroll: storage almost full"]
    with ctx.db() as db:
        assert [i.key for i in db.query(Incident).all()] == ["quota:90"]
    engine.dispose()
