"""Engine and session factory.  Only this module knows which database is in use."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the sweeper and API readers run while an upload commits.  FULL syncs the WAL at every
    # commit: with NORMAL the last commits before a power cut can be lost, and the agent may already
    # have been told that its file is stored (the asset id answers the completing request).
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it to the first write).
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front.  A deferred transaction that reads and then writes
    # fails at once with "database is locked" when another writer got in between (busy_timeout does
    # not apply to that upgrade), which concurrent uploads would hit.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
