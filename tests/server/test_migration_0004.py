"""Upgrading a 0003 database with assets in it adds the Motion Photo video columns and keeps the rows."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import text

from camroll.server import migrate
from camroll.server.db import make_engine
from camroll.server.settings import Settings


def test_upgrade_from_0003_keeps_assets_and_their_files(tmp_path: Path) -> None:
    settings = Settings.for_data_dir(tmp_path)
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine, "0003")
    t = datetime(2026, 11, 1, 12, 0)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, username, password_hash, is_admin, quota_bytes, created_at) "
                          "VALUES (1, 'ann', 'x', false, 100, :t)"), {"t": t})
        conn.execute(text("INSERT INTO devices (id, user_id, name, platform, token_hash, created_at) "
                          "VALUES (1, 1, 'pixel', 'android', 'h', :t)"), {"t": t})
        conn.execute(text("INSERT INTO blobs (sha256, size, created_at) VALUES ('aa', 95, :t)"), {"t": t})
        conn.execute(text("INSERT INTO assets (id, user_id, sha256, size, mime, filename, created_at, kind, "
                          "taken_at, taken_source, motion_photo) "
                          "VALUES (1, 1, 'aa', 95, 'image/jpeg', 'a.MP.jpg', :t, 'image', :t, 'exif', true)"), {"t": t})
        conn.execute(text("INSERT INTO asset_files (id, asset_id, device_id, path, filename, mtime_ns, created_at) "
                          "VALUES (1, 1, 1, '/DCIM/a.MP.jpg', 'a.MP.jpg', 5, :t)"), {"t": t})

    migrate.upgrade(engine, "0004")
    assert migrate.current_revision(engine) == "0004"
    with engine.connect() as conn:
        row = conn.execute(text("SELECT filename, motion_photo, motion_video_offset, motion_video_length "
                                "FROM assets WHERE id = 1")).one()
        assert tuple(row) == ("a.MP.jpg", 1, None, None)
        # The batch rebuild of ``assets`` must not cascade-delete its children.
        assert conn.execute(text("SELECT path FROM asset_files WHERE asset_id = 1")).scalar() == "/DCIM/a.MP.jpg"
        conn.execute(text("UPDATE assets SET motion_video_offset = 40, motion_video_length = 55 WHERE id = 1"))
        assert conn.execute(text("SELECT motion_video_length FROM assets")).scalar() == 55
    engine.dispose()
