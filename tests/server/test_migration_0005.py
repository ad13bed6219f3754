"""Upgrading a 0004 database with device paths and heartbeats in it adds ``asset_files.path_raw`` and
``device_health.left_out_files`` and keeps every row."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import text

from camroll.server import migrate
from camroll.server.db import make_engine
from camroll.server.settings import Settings


def test_upgrade_from_0004_keeps_device_paths_and_heartbeats(tmp_path: Path) -> None:
    settings = Settings.for_data_dir(tmp_path)
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine, "0004")
    t = datetime(2026, 11, 1, 12, 0)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, username, password_hash, is_admin, quota_bytes, created_at) "
                          "VALUES (1, 'ann', 'x', false, 100, :t)"), {"t": t})
        conn.execute(text("INSERT INTO devices (id, user_id, name, platform, token_hash, created_at) "
                          "VALUES (1, 1, 'pixel', 'android', 'h', :t)"), {"t": t})
        conn.execute(text("INSERT INTO blobs (sha256, size, created_at) VALUES ('aa', 95, :t)"), {"t": t})
        conn.execute(text("INSERT INTO assets (id, user_id, sha256, size, mime, filename, created_at, kind, "
                          "taken_at, taken_source, motion_photo) "
                          "VALUES (1, 1, 'aa', 95, 'image/jpeg', 'a.jpg', :t, 'image', :t, 'exif', false)"), {"t": t})
        conn.execute(text("INSERT INTO asset_files (id, asset_id, device_id, path, filename, mtime_ns, created_at) "
                          "VALUES (1, 1, 1, '/DCIM/a.jpg', 'a.jpg', 5, :t)"), {"t": t})
        conn.execute(text("INSERT INTO device_health (device_id, received_at, agent_version, state, headline, "
                          "pending_files, pending_bytes, failed_files, skipped_files, backed_up_files, problems, "
                          "progress_at, state_since) VALUES (1, :t, '0.1', 'idle', 'ok', 0, 0, 1, 2, 3, '[]', "
                          ":t, :t)"), {"t": t})

    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.HEAD
    with engine.connect() as conn:
        assert tuple(conn.execute(text("SELECT path, path_raw FROM asset_files WHERE id = 1")).one()) == (
            "/DCIM/a.jpg", None)
        assert tuple(conn.execute(text("SELECT failed_files, skipped_files, backed_up_files, left_out_files "
                                       "FROM device_health")).one()) == (1, 2, 3, 0)
        conn.execute(text("UPDATE asset_files SET path_raw = :raw WHERE id = 1"), {"raw": b"/DCIM/caf\xe9.jpg"})
        assert conn.execute(text("SELECT path_raw FROM asset_files")).scalar() == b"/DCIM/caf\xe9.jpg"
    engine.dispose()
