"""The Alembic scripts build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from camroll.server import migrate
from camroll.server.db import make_engine
from camroll.server.models import Base
from camroll.server.settings import Settings


def test_migrations_match_models(tmp_path: Path) -> None:
    """On the test database: SQLite, or an empty PostgreSQL database on the PostgreSQL pass."""
    engine = make_engine(Settings.for_data_dir(tmp_path).database_url)
    migrate.upgrade(engine)
    migrate.upgrade(engine)  # idempotent on every start
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
        if conn.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert set(inspect(engine).get_table_names()) >= {
        "users", "sessions", "devices", "blobs", "assets", "asset_files", "uploads", "alembic_version"}
    engine.dispose()


def test_migrations_ship_as_package_files() -> None:
    versions = migrate.MIGRATIONS_DIR / "versions"
    assert (migrate.MIGRATIONS_DIR / "env.py").is_file()
    assert (migrate.MIGRATIONS_DIR / "__init__.py").is_file()
    assert (versions / "__init__.py").is_file()
    assert any(p.name.startswith("0001_") for p in versions.glob("*.py"))


def test_head_constant_matches_scripts() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(migrate.MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(cfg).get_current_head() == migrate.HEAD
