"""Bring the database schema up to date with the Alembic scripts shipped in this package."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect, text

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# The newest revision in migrations/versions; a test keeps it in step.  Knowing it lets every start
# (and every admin command) skip importing Alembic when the schema is already current.
HEAD = "0013"


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, revision: str = HEAD) -> None:
    """Apply every pending migration up to ``revision`` (the newest by default; tests stop at an older
    one to check an upgrade with rows in place); safe to call on every start."""
    if current_revision(engine) == revision:
        return
    from alembic import command
    from alembic.config import Config

    from camroll.server.repositories import locks

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        # SQLite rebuilds a table to alter it (drop the old, rename a copy); with foreign keys on,
        # dropping a parent such as ``assets`` cascade-deletes every child row (``asset_files``).
        # The pragma is ignored inside a transaction, so it goes to the driver before SQLAlchemy
        # begins one, and the keys are checked once the migrations are done.
        sqlite = conn.dialect.name == "sqlite"
        raw = conn.connection.driver_connection
        if sqlite:
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                # Replicas starting together: the second waits here, then Alembic finds nothing to do.
                locks.migrations(conn)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head" if revision == HEAD else revision)
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise RuntimeError("the database has rows whose foreign keys point nowhere after migrating")
        finally:
            if sqlite:
                assert raw is not None
                raw.execute("PRAGMA foreign_keys=ON")
