"""What is wrong with a deployment: the probes behind ``/readyz`` and the checks of ``camroll admin check``.

Every check answers with one :class:`Result`: PASS, WARN or FAIL, a sentence saying what was found, and
the fix when there is something to fix.  Each one runs with a time limit in a thread of its own, so a
database or a bucket that hangs makes the check fail in seconds instead of hanging its caller; a probe
still waiting for its last answer is not started again (a load balancer calling ``/readyz`` every second
against a hung database holds one thread, not hundreds).

The readiness probes are cheap (``SELECT 1`` and the schema version, ``exists`` of one key, the queue's
length); ``admin check`` does the full round trips (put, get, a ranged read, delete), the clocks, the
disks, the connection pool and the public URL.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import ipaddress
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from camroll.server import migrate

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from camroll.server.context import Context
    from camroll.server.settings import Settings

READY_TIMEOUT_SECONDS = 2.0
CHECK_TIMEOUT_SECONDS = 15.0
# A key no upload can have (the SHA-256 of this sentence): readiness asks the store whether it exists.
PROBE_KEY = hashlib.sha256(b"camroll readiness probe: this key is never stored").hexdigest()
PROBE_SIZE = 256 * 1024
# Clocks further apart than this make stall alerts and upload expiry unreliable; S3 refuses requests
# signed more than 15 minutes off.
CLOCK_WARN_SECONDS = 2.0
CLOCK_FAIL_SECONDS = 300.0
# Free space below this share of a disk (or below LOW_SPACE_BYTES) deserves a warning before uploads
# start answering 507.
LOW_SPACE_SHARE = 0.10
LOW_SPACE_BYTES = 2 * 10**9
STORAGE_URL_ENV = "CAMROLL_STORAGE_URL"


class Status(enum.StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Result:
    name: str
    status: Status
    summary: str
    fix: str | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "summary": self.summary, "fix": self.fix,
                "seconds": round(self.seconds, 4), "details": self.details}


# --- bounded runs ---------------------------------------------------------------------------------
class _Run:
    def __init__(self, name: str, fn: Callable[[], Result]) -> None:
        self.started = time.monotonic()
        self.done = threading.Event()
        self.result: Result | None = None
        self._name, self._fn = name, fn
        threading.Thread(target=self._go, name=f"camroll-check-{name}", daemon=True).start()

    def _go(self) -> None:
        try:
            self.result = self._fn()
        except Exception as exc:
            self.result = Result(self._name, Status.FAIL, f"The check failed unexpectedly: {type(exc).__name__}: "
                                 f"{_short(exc)}.", "Look at the error above; it names what did not answer.")
        finally:
            self.done.set()


_running: dict[tuple[int, str], _Run] = {}
_running_lock = threading.Lock()


def bounded(name: str, fn: Callable[[], Result], timeout: float, *, what: str, fix: str,
            owner: object | None = None) -> Result:
    """``fn()`` if it answers within ``timeout`` seconds, else a FAIL saying ``what`` did not answer.

    With ``owner`` (a server context), a call made while the previous one for the same owner and
    ``name`` still runs joins it (two load balancers probing at once both get its answer) and fails only
    when that one has already taken longer than ``timeout``: a hung dependency never piles up threads."""
    key = (id(owner), name)
    with _running_lock:
        previous = _running.get(key) if owner is not None else None
        if previous is not None and not previous.done.is_set():
            run = previous
        else:
            previous = None
            run = _Run(name, fn)
            if owner is not None:
                _running[key] = run
    if previous is not None:
        waited = time.monotonic() - previous.started
        if waited >= timeout or not previous.done.wait(timeout - waited):
            return Result(name, Status.FAIL, f"{what} has not answered the check started "
                          f"{time.monotonic() - previous.started:.0f} s ago.", fix, seconds=0.0)
        assert previous.result is not None
        return previous.result
    start = time.monotonic()
    if not run.done.wait(timeout):
        return Result(name, Status.FAIL, f"{what} did not answer within {timeout:g} s.", fix,
                      seconds=time.monotonic() - start)
    if owner is not None:
        with _running_lock:
            if _running.get(key) is run:
                del _running[key]
    assert run.result is not None
    return run.result


def _short(exc: BaseException) -> str:
    """The first line of an error, without SQLAlchemy's background links; bounded."""
    orig = getattr(exc, "orig", None)
    text = str(orig if isinstance(orig, BaseException) else exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300].rstrip(".")


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.001 else f"{seconds * 1000:.1f} ms"


# --- the database ---------------------------------------------------------------------------------
def _where(url: str) -> str:
    """The database URL without its password, to name it in a sentence."""
    from sqlalchemy.engine import make_url

    try:
        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:
        return "(an unreadable URL)"


def database_fix(settings: Settings) -> str:
    if settings.database_url.startswith("sqlite"):
        return (f"Check that {settings.data_dir} is the server's data dir and readable and writable by this user, "
                "or set CAMROLL_DATABASE_URL to the database the server uses.")
    return ("Check that the database server runs and accepts connections from here, and that "
            "CAMROLL_DATABASE_URL names its host, port, database, user and password "
            "(postgresql+psycopg://USER:PASSWORD@HOST:5432/DB).")


def _schema_version(engine: Engine) -> str | None:
    """The Alembic revision, read on a raw DBAPI connection: on SQLite, SQLAlchemy's transactions here
    begin IMMEDIATE and would queue behind uploads for the write lock just to read one row."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        try:
            cur.execute("SELECT 1")
            cur.fetchall()
            try:
                cur.execute("SELECT version_num FROM alembic_version")
                row = cur.fetchone()
            except Exception:
                return None  # no version table: never migrated
            return None if row is None else str(row[0])
        finally:
            cur.close()
    finally:
        raw.close()


def known_revisions() -> list[str]:
    """The revisions this camroll ships, oldest first (their files are numbered)."""
    names = sorted(p.name for p in (migrate.MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))
    return [n.split("_", 1)[0] for n in names]


def migration_result(current: str | None, seconds: float = 0.0) -> Result:
    head = migrate.HEAD
    if current == head:
        return Result("migrations", Status.PASS, f"The schema is at revision {head}, this camroll's newest.",
                      seconds=seconds, details={"current": current, "head": head, "pending": []})
    known = known_revisions()
    if current is None or current in known:
        pending = known if current is None else known[known.index(current) + 1:]
        what = "has no camroll schema yet" if current is None else f"is at revision {current}"
        return Result("migrations", Status.FAIL, f"The database {what}; migrations {', '.join(pending)} are "
                      f"pending (this camroll needs {head}).",
                      "Start 'camroll serve' of this version once (it migrates at start) or run any "
                      "'camroll admin' command such as 'camroll admin jobs'; then start the other replicas.",
                      seconds=seconds, details={"current": current, "head": head, "pending": pending})
    return Result("migrations", Status.FAIL, f"The database is at revision {current}, which this camroll "
                  f"(newest {head}) does not know: a newer camroll migrated it.",
                  "Upgrade camroll on this machine to the version the other replicas run.", seconds=seconds,
                  details={"current": current, "head": head, "pending": []})


def probe_database(ctx: Context) -> Result:
    """Readiness: the database answers and its schema is this camroll's."""
    try:
        current, seconds = _timed(lambda: _schema_version(ctx.engine))
    except Exception as exc:
        return Result("database", Status.FAIL, f"The database ({_where(ctx.settings.database_url)}) does not "
                      f"answer: {_short(exc)}.", database_fix(ctx.settings))
    result = migration_result(current, seconds)
    if result.status is Status.PASS:
        return Result("database", Status.PASS, f"The database answers in {_ms(seconds)}; {result.summary[0].lower()}"
                      f"{result.summary[1:]}", seconds=seconds, details=result.details)
    return Result("database", result.status, result.summary, result.fix, seconds, result.details)


# --- storage --------------------------------------------------------------------------------------
def storage_fix(settings: Settings) -> str:
    url = os.environ.get(STORAGE_URL_ENV, "").strip()
    if url.startswith("s3://"):
        return (f"Check {STORAGE_URL_ENV}={url}: the bucket must exist, the endpoint (AWS_ENDPOINT_URL) must "
                "answer from here, and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or a profile) "
                "must allow putting, reading and deleting objects in it.")
    return (f"Make {settings.blobs_dir} a directory that the user running camroll (uid {os.getuid()}) can write, "
            "on a disk with free space.")


def probe_storage(ctx: Context) -> Result:
    """Readiness: the blob store answers one cheap call."""
    try:
        _, seconds = _timed(lambda: ctx.blobs.exists(PROBE_KEY))
    except Exception as exc:
        problem, fix = _store_error(exc, ctx.settings)
        return Result("storage", Status.FAIL, f"The blob store does not answer: {problem}.", fix)
    return Result("storage", Status.PASS, f"The blob store answers in {_ms(seconds)}.", seconds=seconds)


# --- the job queue --------------------------------------------------------------------------------
def _job_settings() -> Any:
    from camroll.server.jobs.config import JobSettings

    return JobSettings.from_env()


def queue_fix() -> str:
    from camroll.server.jobs.config import REDIS_URL_ENV

    if os.environ.get(REDIS_URL_ENV):
        return (f"Check that Redis runs and that {REDIS_URL_ENV} names it (redis://[:PASSWORD@]HOST:6379/0), "
                "or unset it to use the embedded queue.")
    return "Check that the server's data dir is writable: the embedded queue is jobs.db in it."


def _huey(ctx: Context) -> Any:
    if ctx.jobs is not None:
        return ctx.jobs.huey
    from camroll.server.jobs.queue import make_huey

    return make_huey(ctx.settings, _job_settings())


def probe_queue(ctx: Context) -> Result:
    """Readiness: the queue's storage answers (a Redis round trip, or a read of jobs.db)."""
    try:
        huey = _huey(ctx)
        depth, seconds = _timed(huey.pending_count)
    except Exception as exc:
        return Result("queue", Status.FAIL, f"The job queue does not answer: {_short(exc)}.", queue_fix())
    backend = "Redis" if _job_settings().redis_url else "embedded"
    return Result("queue", Status.PASS, f"The {backend} job queue answers in {_ms(seconds)} ({depth} queued).",
                  seconds=seconds, details={"backend": backend.lower(), "queued": int(depth)})


# --- readiness ------------------------------------------------------------------------------------
# /readyz answers from the last probes for this long: a caller looping on it (it needs no token) costs
# the database, the bucket and Redis at most one round of probes per second.
READY_CACHE_SECONDS = 1.0
# By id, holding the context itself so a recycled id never answers for another one.
_ready_cache: dict[int, tuple[object, float, list[Result]]] = {}
_ready_lock = threading.Lock()


def readiness(ctx: Context, timeout: float = READY_TIMEOUT_SECONDS) -> list[Result]:
    """The three readiness probes, run side by side, each within ``timeout`` seconds; a result less
    than ``READY_CACHE_SECONDS`` old is answered again."""
    with _ready_lock:
        cached = _ready_cache.get(id(ctx))
    if cached is not None and cached[0] is ctx and time.monotonic() - cached[1] < READY_CACHE_SECONDS:
        return cached[2]
    results = _probe_readiness(ctx, timeout)
    with _ready_lock:
        if len(_ready_cache) > 64:  # contexts of finished test apps; a server has one
            _ready_cache.clear()
        _ready_cache[id(ctx)] = (ctx, time.monotonic(), results)
    return results


def _probe_readiness(ctx: Context, timeout: float) -> list[Result]:
    probes: list[tuple[str, Callable[[Context], Result], str, Callable[[], str]]] = [
        ("database", probe_database, "The database", lambda: database_fix(ctx.settings)),
        ("storage", probe_storage, "The blob store", lambda: storage_fix(ctx.settings)),
        ("queue", probe_queue, "The job queue", queue_fix),
    ]
    out: list[Result | None] = [None] * len(probes)

    def one(i: int) -> None:
        name, fn, what, fix = probes[i]
        out[i] = bounded(name, lambda: fn(ctx), timeout, what=what, fix=fix(), owner=ctx)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(probes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 1.0)
    return [r if r is not None else Result(p[0], Status.FAIL, f"{p[2]} did not answer in time.", p[3]())
            for r, p in zip(out, probes, strict=True)]


# --- camroll admin check --------------------------------------------------------------------------
def check_database(engine: Engine, settings: Settings) -> Iterator[Result]:
    where = _where(settings.database_url)
    try:
        current, seconds = _timed(lambda: _schema_version(engine))
        version = _server_version(engine)
    except Exception as exc:
        yield Result("database", Status.FAIL, f"Cannot reach the database {where}: {_short(exc)}.",
                     database_fix(settings))
        return
    yield Result("database", Status.PASS, f"{version} at {where} answers in {_ms(seconds)}.", seconds=seconds,
                 details={"dialect": engine.dialect.name, "version": version})
    yield migration_result(current)
    yield _pool(engine)


def _server_version(engine: Engine) -> str:
    from sqlalchemy import text

    if engine.dialect.name == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    with engine.connect() as conn:
        v = conn.execute(text("SHOW server_version")).scalar() if engine.dialect.name == "postgresql" else None
    return f"{engine.dialect.name.capitalize().replace('Postgresql', 'PostgreSQL')} {v or ''}".strip()


def _pool(engine: Engine) -> Result:
    from sqlalchemy import text
    from sqlalchemy.pool import QueuePool

    pool = engine.pool
    if engine.dialect.name == "sqlite":
        return Result("connection pool", Status.PASS, f"SQLite ({type(pool).__name__}): connections are files "
                      "opened as needed; writes take turns through one lock in each process.",
                      details={"pool": type(pool).__name__})
    if not isinstance(pool, QueuePool):
        return Result("connection pool", Status.PASS, f"{type(pool).__name__}: no pool limits to check.",
                      details={"pool": type(pool).__name__})
    size, overflow = pool.size(), max(0, pool._max_overflow)  # no public accessor
    timeout = pool._timeout
    per_process = size + overflow
    details: dict[str, Any] = {"pool": "QueuePool", "size": size, "max_overflow": overflow, "timeout": timeout}
    sentence = (f"Each camroll process opens up to {per_process} connections ({size} kept, {overflow} more under "
                f"load, {timeout:g} s wait for a free one)")
    if engine.dialect.name != "postgresql":
        return Result("connection pool", Status.PASS, sentence + ".", details=details)
    try:
        with engine.connect() as conn:
            limit = int(conn.execute(text("SHOW max_connections")).scalar() or 0)
            reserved = int(conn.execute(text("SHOW superuser_reserved_connections")).scalar() or 0)
            in_use = int(conn.execute(text("SELECT count(*) FROM pg_stat_activity "
                                           "WHERE backend_type = 'client backend'")).scalar() or 0)
    except Exception as exc:
        return Result("connection pool", Status.WARN, f"{sentence}; the server's connection limit could not be "
                      f"read: {_short(exc)}.", "Grant this user access to pg_stat_activity, or check "
                      "max_connections by hand.", details=details)
    room = max(0, limit - reserved)
    processes = room // per_process if per_process else 0
    details.update(max_connections=limit, in_use=in_use, processes_that_fit=processes)
    sentence += (f"; PostgreSQL allows {room} ({in_use} in use now), room for {processes} camroll processes "
                 "(replicas, workers and admin commands) at full load")
    if processes < 2:
        return Result("connection pool", Status.WARN, sentence + ".",
                      "Raise max_connections in postgresql.conf, or put PgBouncer in front, or lower the pool "
                      "size of each process.", details=details)
    return Result("connection pool", Status.PASS, sentence + ".", details=details)


def check_storage(ctx: Context) -> Result:
    """Put a probe blob, read it whole and by range, stat it, delete it; each step timed."""
    blobs, settings = ctx.blobs, ctx.settings
    data = os.urandom(PROBE_SIZE)
    key = hashlib.sha256(data).hexdigest()
    timings: dict[str, float] = {}
    step = "write the probe file"
    tmp_dir = settings.data_dir if settings.data_dir.is_dir() else Path(tempfile.gettempdir())
    fd, name = tempfile.mkstemp(prefix=".camroll-check-", dir=tmp_dir)
    source = Path(name)
    stored = False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        step = "put"
        _, timings["put"] = _timed(lambda: blobs.put_file(key, source))
        stored = True
        step = "stat"
        st, timings["stat"] = _timed(lambda: blobs.stat(key))
        if st.size != len(data):
            raise RuntimeError(f"stat says {st.size} bytes, {len(data)} were put")
        step = "get"
        back, timings["get"] = _timed(lambda: _read(blobs.open(key)))
        if back != data:
            raise RuntimeError(f"read back {len(back)} bytes that differ from the {len(data)} put")
        step = "ranged get"
        part, timings["range"] = _timed(lambda: _read(blobs.open(key, 1000, 4096)))
        if part != data[1000:5096]:
            raise RuntimeError("bytes 1000-5095 read back differ from those put")
        step = "delete"
        _, timings["delete"] = _timed(lambda: blobs.delete(key))
        stored = False
        if blobs.exists(key):
            raise RuntimeError("the probe blob still exists after delete")
    except Exception as exc:
        problem, fix = _store_error(exc, settings)
        return Result("storage", Status.FAIL, f"The blob store failed the round trip at '{step}': {problem}.",
                      fix, seconds=sum(timings.values()), details={"failed_step": step, **{
                          k: round(v, 4) for k, v in timings.items()}})
    finally:
        source.unlink(missing_ok=True)
        if stored:
            # Left behind, the orphan sweep removes it: no asset refers to it.
            with contextlib.suppress(Exception):
                blobs.delete(key)
    steps = ", ".join(f"{k} {_ms(v)}" for k, v in timings.items())
    return Result("storage", Status.PASS, f"A {PROBE_SIZE // 1024} KiB probe blob went through put, stat, get, a "
                  f"ranged get and delete ({steps}).", seconds=sum(timings.values()),
                  details={k: round(v, 4) for k, v in timings.items()})


def _store_error(exc: Exception, settings: Settings) -> tuple[str, str]:
    """What went wrong and the fix: the store's own (a storage failure that names its cause and fix)
    when it has them, else the error's first line and the general fix for the configured store."""
    problem, fix = getattr(exc, "problem", None), getattr(exc, "fix", None)
    if isinstance(problem, str) and problem.strip():
        return problem.strip().rstrip("."), fix if isinstance(fix, str) and fix.strip() else storage_fix(settings)
    return _short(exc), storage_fix(settings)


def _read(stream: Any) -> bytes:
    try:
        chunks = []
        while chunk := stream.read(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        stream.close()


def check_queue(ctx: Context) -> Result:
    jobs = _job_settings()
    if not jobs.redis_url:
        from camroll.server.jobs.config import queue_file

        result = probe_queue(ctx)
        if result.status is Status.PASS:
            return Result("queue", Status.PASS, f"The embedded job queue ({queue_file(ctx.settings.data_dir)}) "
                          f"answers in {_ms(result.seconds)}; {result.details['queued']} jobs queued.",
                          seconds=result.seconds, details=result.details)
        return result
    import redis

    client = redis.Redis.from_url(jobs.redis_url, socket_timeout=5, socket_connect_timeout=5)
    where = _redis_where(jobs.redis_url)
    try:
        _, seconds = _timed(client.ping)
        info = client.info()
    except Exception as exc:
        return Result("queue", Status.FAIL, f"Redis at {where} does not answer: {_short(exc)}.", queue_fix())
    finally:
        client.close()
    version, policy = info.get("redis_version", "?"), str(info.get("maxmemory_policy", "noeviction"))
    details = {"backend": "redis", "version": version, "maxmemory_policy": policy}
    depth = probe_queue(ctx)
    if depth.status is not Status.PASS:
        return depth
    details["queued"] = depth.details.get("queued")
    sentence = (f"Redis {version} at {where} answers in {_ms(seconds)}; {details['queued']} jobs queued")
    if policy != "noeviction" and "volatile" not in policy:
        return Result("queue", Status.WARN, f"{sentence}, but its maxmemory-policy is {policy}: under memory "
                      "pressure Redis may evict queued jobs.", "Set 'maxmemory-policy noeviction' in redis.conf "
                      "(camroll re-queues lost work at the next start, but late).", seconds=seconds, details=details)
    return Result("queue", Status.PASS, sentence + ".", seconds=seconds, details=details)


def _redis_where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"


def check_clock(engine: Engine | None) -> Result:
    """This machine's clock against the database server's (PostgreSQL), Redis' and the S3 endpoint's."""
    offsets: dict[str, float] = {}
    problems: list[str] = []
    if engine is not None and engine.dialect.name == "postgresql":
        try:
            offsets["database"] = _offset(lambda: _pg_now(engine))
        except Exception as exc:
            problems.append(f"the database's clock could not be read ({_short(exc)})")
    jobs = _job_settings()
    if jobs.redis_url:
        try:
            offsets["redis"] = _offset(lambda: _redis_now(jobs.redis_url))
        except Exception as exc:
            problems.append(f"Redis' clock could not be read ({_short(exc)})")
    endpoint = _s3_endpoint()
    if endpoint:
        try:
            # The Date header has whole seconds: half a second of its error is no skew.
            offsets["storage"] = _offset(lambda: _http_date(endpoint), resolution=1.0)
        except Exception as exc:
            problems.append(f"the storage endpoint's clock could not be read ({_short(exc)})")
    if not offsets and not problems:
        return Result("clock", Status.PASS, "The database, storage and queue are on this machine: one clock.")
    worst = max((abs(v) for v in offsets.values()), default=0.0)
    said = ", ".join(f"{k} {v:+.1f} s" for k, v in offsets.items())
    details = {k: round(v, 3) for k, v in offsets.items()}
    fix = "Run time synchronisation (systemd-timesyncd, chrony or ntpd) on every machine of the deployment."
    if worst > CLOCK_FAIL_SECONDS:
        return Result("clock", Status.FAIL, f"Clocks are far apart ({said} from this machine): upload expiry "
                      "and stall alerts go wrong, and S3 refuses requests signed more than 15 minutes off.", fix,
                      details=details)
    more = f"; {'; '.join(problems)}" if problems else ""
    if not offsets:
        return Result("clock", Status.WARN, f"No clock could be compared with this machine's{more}.",
                      "Fix what keeps them from answering (above), then run the check again.")
    if worst > CLOCK_WARN_SECONDS:
        return Result("clock", Status.WARN, f"Clocks differ from this machine's: {said}{more}.", fix,
                      details=details)
    return Result("clock", Status.PASS, f"Clocks agree with this machine's within {CLOCK_WARN_SECONDS:g} s "
                  f"({said}){more}.", details=details)


def _offset(read: Callable[[], datetime], resolution: float = 0.0) -> float:
    """Their clock minus ours (seconds), taken at the middle of the round trip."""
    before = time.time()
    theirs = read()
    after = time.time()
    diff = theirs.timestamp() - (before + after) / 2
    return 0.0 if abs(diff) <= resolution / 2 + (after - before) / 2 else diff


def _pg_now(engine: Engine) -> datetime:
    from sqlalchemy import text

    with engine.connect() as conn:
        value = conn.execute(text("SELECT clock_timestamp()")).scalar()
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _redis_now(url: str) -> datetime:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        seconds, micros = client.time()
    finally:
        client.close()
    return datetime.fromtimestamp(seconds + micros / 1e6, UTC)


def _s3_endpoint() -> str | None:
    url = os.environ.get(STORAGE_URL_ENV, "").strip()
    if not url.startswith("s3://"):
        return None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        return endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return f"https://s3.{region}.amazonaws.com"


def _http_date(url: str) -> datetime:
    from email.utils import parsedate_to_datetime

    import httpx

    # Unsigned: any answer (403 included) carries the server's Date.
    r = httpx.head(url, timeout=5)
    date = r.headers.get("date")
    if not date:
        raise RuntimeError(f"{url} answered without a Date header")
    return parsedate_to_datetime(date)


def check_disks(settings: Settings, parts_root: Path | None) -> Result:
    from camroll.server import diskspace
    from camroll.server.jobs.config import thumbs_dir
    from camroll.units import format_size

    places = {"data dir": settings.data_dir, "part files": parts_root, "blobs": settings.blobs_dir,
              "thumbnails": thumbs_dir(settings.data_dir), "temp": Path(tempfile.gettempdir())}
    disks: dict[int, tuple[list[str], diskspace.DiskState]] = {}
    for what, path in places.items():
        if path is None or not path.exists():
            continue
        try:
            dev = path.stat().st_dev
            if dev not in disks:
                disks[dev] = ([], diskspace.measure(path))
            disks[dev][0].append(f"{what} {path}")
        except OSError as exc:
            return Result("free space", Status.FAIL, f"Cannot read the free space of {path} ({what}): "
                          f"{exc.strerror}.", f"Make {path} readable by this user.")
    status, sentences, details = Status.PASS, [], []
    for names, state in disks.values():
        low = state.free < max(state.total * LOW_SPACE_SHARE, min(LOW_SPACE_BYTES, state.total // 2))
        here = Status.FAIL if state.full else Status.WARN if low else Status.PASS
        if here is Status.FAIL or (here is Status.WARN and status is Status.PASS):
            status = here
        sentences.append(f"{format_size(state.free)} free of {format_size(state.total)} for "
                         f"{', '.join(names)}")
        details.append({"paths": names, "free": state.free, "total": state.total, "reserve": state.reserve,
                        "status": here.value})
    summary = "; ".join(sentences) + "."
    if status is Status.FAIL:
        return Result("free space", status, f"A disk is full: {summary} Uploads are refused with 507.",
                      diskspace.FIX, details={"disks": details})
    if status is Status.WARN:
        return Result("free space", status, f"Space is low: {summary}",
                      "Free space on the disk named, or move that directory to a larger disk, before uploads "
                      "start being refused.", details={"disks": details})
    return Result("free space", Status.PASS, summary, details={"disks": details})


def check_public_url(url: str | None) -> Result:
    from camroll.server.settings import PUBLIC_URL_ENV

    if not url:
        return Result("public URL", Status.PASS, f"No public URL is set ({PUBLIC_URL_ENV}); set it to the address "
                      "clients use, e.g. https://photos.example.org, to have it checked.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Result("public URL", Status.FAIL, f"{PUBLIC_URL_ENV}={url!r} is not an http(s) URL.",
                      f"Set {PUBLIC_URL_ENV} to the address clients use, e.g. https://photos.example.org.")
    if parts.scheme == "https":
        return Result("public URL", Status.PASS, f"{url} is https.")
    if _loopback(parts.hostname):
        return Result("public URL", Status.PASS, f"{url} is plain http, but only on this machine (loopback).")
    return Result("public URL", Status.WARN, f"{url} is plain http on a non-loopback address: passwords, device "
                  "tokens and every photo cross the network unencrypted.",
                  "Put a TLS proxy (nginx or Caddy, see docs/DEPLOY.md) in front of camroll serve and set "
                  f"{PUBLIC_URL_ENV}=https://YOUR.HOST.")


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_checks(settings: Settings, on_result: Callable[[Result], None] | None = None,
               public_url: str | None = None, timeout: float = CHECK_TIMEOUT_SECONDS) -> list[Result]:
    """Every check of ``camroll admin check``, in order; ``on_result`` hears each as it ends.

    Nothing is migrated or created except the probe blob (deleted again) and the embedded queue's file."""
    from camroll.server.context import build
    from camroll.server.db import make_engine

    results: list[Result] = []

    def emit(r: Result) -> None:
        results.append(r)
        if on_result is not None:
            on_result(r)

    engine: Engine | None = None
    try:
        engine = make_engine(settings.database_url)
    except Exception as exc:
        emit(Result("database", Status.FAIL, f"CAMROLL_DATABASE_URL ({_where(settings.database_url)}) is not a "
                    f"database URL camroll can use: {_short(exc)}.", database_fix(settings)))
    ctx: Context | None = None
    unbuilt: Result | None = None
    try:
        ctx = build(settings)
    except Exception as exc:
        if engine is not None:
            unbuilt = Result("storage", Status.FAIL, f"The blob store cannot be opened: {_short(exc)}.",
                             storage_fix(settings))
    try:
        if engine is not None:
            e = engine
            for r in _bounded_many("database", lambda: list(check_database(e, settings)), timeout,
                                   "The database", database_fix(settings)):
                emit(r)
        if unbuilt is not None:
            emit(unbuilt)
        if ctx is not None:
            c = ctx
            emit(bounded("storage", lambda: check_storage(c), timeout, what="The blob store",
                         fix=storage_fix(settings)))
            emit(bounded("queue", lambda: check_queue(c), timeout, what="The job queue", fix=queue_fix()))
        emit(bounded("clock", lambda: check_clock(engine), timeout, what="A clock source",
                     fix="Check that the database, Redis and storage answer."))
        emit(check_disks(settings, _parts_dir(ctx) if ctx is not None else None))
        emit(check_public_url(public_url if public_url is not None else settings.public_url))
    finally:
        for eng in (engine, ctx.engine if ctx is not None else None):
            if eng is not None:
                eng.dispose()
    return results


def _parts_dir(ctx: Context) -> Path | None:
    """The local folder of uploads in progress, if they are on local disk (not in object storage)."""
    local_root = getattr(ctx.parts, "local_root", None)
    if callable(local_root):
        found = local_root()
        return found if isinstance(found, Path) else None
    root = getattr(ctx.parts, "root", None)
    return root if isinstance(root, Path) else None


def _bounded_many(name: str, fn: Callable[[], list[Result]], timeout: float, what: str, fix: str) -> list[Result]:
    box: list[list[Result]] = []

    def one() -> Result:
        box.append(fn())
        return Result(name, Status.PASS, "")

    r = bounded(name, one, timeout, what=what, fix=fix)
    return box[0] if box else [r]
