"""Engine and session factory.  Only this module knows which database is in use.

SQLite (the embedded default) gets its pragmas and ``BEGIN IMMEDIATE``; PostgreSQL
(``CAMROLL_DATABASE_URL=postgresql+psycopg://USER:PASSWORD@HOST/DB``) gets a sized connection pool
and timeouts, so a lock nobody releases fails a request with 503 instead of hanging it.

Connection pool (PostgreSQL; docs/POSTGRES.md says the same for operators).  A thread holds at most one
connection at a time, so a ``camroll serve`` replica needs as many connections as it has threads that
touch the database at once: anyio's thread limiter (40 threads run the synchronous request handlers),
the in-process job workers (``CAMROLL_JOB_WORKERS``) and its 2 background loops (expiry sweep, stall
checks).  The pool keeps ``CAMROLL_DB_POOL_SIZE`` connections open (default 10: what a busy replica
uses in steady state) and opens up to ``CAMROLL_DB_MAX_OVERFLOW`` more under a burst (default: the
rest of those threads, so no thread ever waits for a connection its replica could have).  PostgreSQL's
``max_connections`` must cover every replica's ``pool size + overflow``, plus ``camroll worker`` and
admin commands, plus a few for the operator.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from camroll.server.envnumbers import env_number

POOL_SIZE_ENV = "CAMROLL_DB_POOL_SIZE"
MAX_OVERFLOW_ENV = "CAMROLL_DB_MAX_OVERFLOW"
POOL_TIMEOUT_ENV = "CAMROLL_DB_POOL_TIMEOUT"
LOCK_TIMEOUT_ENV = "CAMROLL_DB_LOCK_TIMEOUT"
STATEMENT_TIMEOUT_ENV = "CAMROLL_DB_STATEMENT_TIMEOUT"

# anyio's default thread limiter: FastAPI runs every synchronous handler and dependency on it.
REQUEST_THREADS = 40
# The expiry sweep and the stall checks, each on its own thread.
BACKGROUND_THREADS = 2
DEFAULT_POOL_SIZE = 10
DEFAULT_POOL_TIMEOUT = 30.0
# Longer than any lock camroll holds on purpose (a blob's check and delete, a user's quota check and
# insert take milliseconds); short enough that a client sees 503 and retries instead of timing out.
DEFAULT_LOCK_TIMEOUT = 30.0
# Off by default: an admin command or a migration may rightly run long on a large library.
DEFAULT_STATEMENT_TIMEOUT = 0.0
# A replica that hangs (or loses its network) inside a transaction must not keep its locks forever.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 300_000
# Connections are replaced after this long, before a firewall or pooler in between drops them.
POOL_RECYCLE_SECONDS = 1800


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


def _job_workers() -> int:
    from camroll.server.jobs.config import JobSettings

    try:
        return JobSettings.from_env().workers
    except ValueError:
        return 2  # the job settings report their own error where they are used


def pool_options() -> dict[str, Any]:
    """The PostgreSQL pool's settings from the environment (see the module docstring for the rule);
    ValueError names a variable that is wrong."""
    threads = REQUEST_THREADS + _job_workers() + BACKGROUND_THREADS
    size = int(env_number(POOL_SIZE_ENV, DEFAULT_POOL_SIZE, minimum=1))
    overflow = int(env_number(MAX_OVERFLOW_ENV, max(0, threads - size)))
    return {
        "pool_size": size,
        "max_overflow": overflow,
        "pool_timeout": env_number(POOL_TIMEOUT_ENV, DEFAULT_POOL_TIMEOUT, minimum=0.1),
        # A connection the server closed (restart, failover, idle timeout) is noticed before use.
        "pool_pre_ping": True,
        "pool_recycle": POOL_RECYCLE_SECONDS,
    }


def postgres_options() -> str:
    lock_ms = int(env_number(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT) * 1000)
    statement_ms = int(env_number(STATEMENT_TIMEOUT_ENV, DEFAULT_STATEMENT_TIMEOUT) * 1000)
    return (f"-c lock_timeout={lock_ms} -c statement_timeout={statement_ms} "
            f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT_MS} -c timezone=UTC")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql"):
        return create_engine(url, connect_args={"options": postgres_options(),
                                                "application_name": "camroll"}, **pool_options())
    return create_engine(url, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# PostgreSQL SQLSTATEs of a statement that gave up waiting: lock_timeout, statement_timeout (or a
# cancel), and a deadlock the server broke by aborting this side.
_GAVE_UP = {"55P03": "a lock it needed", "57014": "a statement to finish", "40P01": "a deadlock to clear"}


def unavailable_reason(exc: BaseException) -> str | None:
    """What the database was waiting for when ``exc`` is a timeout worth a 503 (the request can simply be
    retried), else None."""
    if isinstance(exc, PoolTimeout):
        return "a free database connection"
    if isinstance(exc, DBAPIError):
        state = getattr(exc.orig, "sqlstate", None)
        if isinstance(state, str):
            return _GAVE_UP.get(state)
    return None


def unstorable_text(exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL refusing text that SQLite would store: a NUL character, or a lone
    UTF-16 surrogate that no UTF-8 encoding has.  The client sent it; it is told so (422), not a 500."""
    orig = exc.orig if isinstance(exc, StatementError) else exc
    if isinstance(orig, UnicodeEncodeError):
        return True
    return (isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) is None
            and "NUL (0x00)" in str(exc.orig))
