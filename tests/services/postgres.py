"""A throwaway PostgreSQL cluster for the tests: Debian's ``initdb``/``pg_ctl`` on 127.0.0.1 and a free port.

One cluster per test run: under pytest-xdist the controller starts it before the workers (``share()``,
from tests/conftest.py) and hands them its address in ``$CAMROLL_TEST_PG_SHARED``, so one initdb and
one template migration serve every worker; without xdist the process starts its own on first use.
It is stopped when the process that started it ends.  Every server data directory a test uses gets its
own database, made with ``CREATE DATABASE ... TEMPLATE`` from a database the migrations already ran on
(a few milliseconds, instead of running 0001..HEAD again), so servers never see each other's rows.  The databases a test
module made are dropped when the module ends.

``initdb`` refuses to run as root, so as root every cluster command runs as the ``postgres`` user
(``runuser``) on a data directory chowned to it.  Durability is switched off (``fsync=off`` and
friends): a cluster that dies with its test run has nothing to keep.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from support.env import free_port

# Which test database the server-side suite runs on: ``sqlite`` (the default) or ``postgresql``.
TEST_DATABASE_ENV = "CAMROLL_TEST_DATABASE"
SERVER_USER = "postgres"
TEMPLATE = "camroll_template"
# "<root>:<port>" of the cluster the xdist controller started for its workers.
SHARED_ENV = "CAMROLL_TEST_PG_SHARED"

# Speed over durability, and room for many servers with their pools at once.
_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_connections": "800",
    "shared_buffers": "64MB",
    "autovacuum": "off",
    "checkpoint_timeout": "1h",
    "max_wal_size": "4GB",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
}


def wanted() -> bool:
    """Whether this run's server-side fixtures use PostgreSQL (``CAMROLL_TEST_DATABASE=postgresql``)."""
    value = os.environ.get(TEST_DATABASE_ENV, "sqlite").strip().lower()
    if value in ("postgresql", "postgres", "pg"):
        return True
    if value in ("", "sqlite"):
        return False
    raise SystemExit(f"{TEST_DATABASE_ENV}={value!r} is not a test database; use sqlite or postgresql")


def bindir() -> Path | None:
    """The newest Debian PostgreSQL server binaries (``/usr/lib/postgresql/<major>/bin``), if installed."""
    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "initdb").exists()]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def missing_reason() -> str | None:
    """Why no cluster can be made here, or None."""
    if bindir() is None:
        return "PostgreSQL server binaries not found (install Debian's postgresql package)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root, but there is no {SERVER_USER!r} user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root, but runuser is missing"
    return None


@dataclass
class Cluster:
    """A running cluster; ``url(name)`` is a SQLAlchemy URL for one of its databases."""

    root: Path
    bin: Path
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = None
    # Started by another process (the xdist controller): used, never stopped or removed from here.
    attached: bool = False
    _names: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def _as_server_user(self, *cmd: str) -> list[str]:
        return ["runuser", "-u", SERVER_USER, "--", *cmd] if os.geteuid() == 0 else list(cmd)

    def start(self) -> None:
        self.data.mkdir()
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            for path in (self.root, self.data):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        subprocess.run(self._as_server_user(str(self.bin / "initdb"), "-D", str(self.data), "-U", SERVER_USER,
                                            "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"),
                       check=True, capture_output=True)
        opts = [f"--{k}={v}" for k, v in {**_SETTINGS, "port": str(self.port),
                                          "unix_socket_directories": str(self.root)}.items()]
        # The postmaster runs in the foreground of its own process (not pg_ctl's daemon), so it is this
        # test process's child and cannot outlive a killed run by more than its own shutdown.
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - the server writes it until stop()
        self._proc = subprocess.Popen(self._as_server_user(str(self.bin / "postgres"), "-D", str(self.data), *opts),
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]).returncode:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                log_text = (self.root / "postgres.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"PostgreSQL did not start:\n{log_text}")
            time.sleep(0.05)
        self._make_template()

    def stop(self) -> None:
        if self.attached:
            return
        if self._proc is not None and self._proc.poll() is None:
            # SIGQUIT: immediate shutdown; nothing in a test cluster needs a checkpoint.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, 3)
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, 9)
                self._proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=SERVER_USER, dbname=database,
                             autocommit=True) as conn:
            conn.execute(sql.encode())  # statements built here from names this module made

    def _make_template(self) -> None:
        from camroll.server import migrate
        from camroll.server.db import make_engine

        self.execute(f"CREATE DATABASE {TEMPLATE}")
        engine = make_engine(self.url(TEMPLATE))
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()

    def create_database(self, *, migrated: bool = True) -> str:
        """A new database, already migrated to HEAD (``migrated``) or empty; returns its name."""
        # Unique across the workers sharing the cluster.
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with self._lock:
            name = f"camroll_{worker}_{next(self._names)}"
        # template0 is the pristine one: template1 may pick up objects the tests create in it.
        # FILE_COPY copies the template's files (a checkpoint, nearly free with fsync off): about half
        # the time of PostgreSQL 15's default, which writes every block to the WAL.
        self.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE if migrated else 'template0'} STRATEGY FILE_COPY")
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


_cluster: Cluster | None = None
_cluster_lock = threading.Lock()
# Server data directory -> its database, so a `camroll serve --data D`, a `camroll admin ... --data D`
# and an in-process context on D all open the same one.
_by_data_dir: dict[Path, str] = {}
_made: list[str] = []


def share() -> None:
    """Start this run's cluster now and tell the processes started after this (xdist workers) to use it."""
    c = cluster()
    os.environ[SHARED_ENV] = f"{c.root}:{c.port}"


def cluster() -> Cluster:
    """This run's cluster: the shared one if the xdist controller started it, else this process's own,
    started on first use (stopped at exit)."""
    global _cluster
    with _cluster_lock:
        if _cluster is None and os.environ.get(SHARED_ENV):
            root, port = os.environ[SHARED_ENV].rsplit(":", 1)
            bin_ = bindir()
            assert bin_ is not None
            _cluster = Cluster(root=Path(root), bin=bin_, port=int(port), attached=True)
        if _cluster is None:
            reason = missing_reason()
            if reason is not None:
                raise RuntimeError(reason)
            bin_ = bindir()
            assert bin_ is not None
            c = Cluster(root=Path(tempfile.mkdtemp(prefix="camroll-pg-")), bin=bin_)
            try:
                c.start()
            except BaseException:
                c.stop()
                raise
            atexit.register(c.stop)
            _cluster = c
        return _cluster


def stop() -> None:
    global _cluster
    with _cluster_lock:
        if _cluster is not None:
            _cluster.stop()
            _cluster = None
        _by_data_dir.clear()
        _made.clear()


def fresh_url(*, migrated: bool = True) -> str:
    """The URL of a new database of its own, dropped with the test module's others."""
    c = cluster()
    name = c.create_database(migrated=migrated)
    _made.append(name)
    return c.url(name)


def database_url_for(data_dir: Path, *, migrated: bool = True) -> str:
    """The database of the server library at ``data_dir``: made on first use (migrated, or empty for a
    test that migrates step by step), the same one on every later call."""
    key = Path(os.path.abspath(data_dir))
    name = _by_data_dir.get(key)
    if name is None:
        c = cluster()
        name = c.create_database(migrated=migrated)
        _by_data_dir[key] = name
        _made.append(name)
    return cluster().url(name)


def drop_made() -> None:
    """Drop every database made since the last call (the end of a test module)."""
    if _cluster is None or not _made:
        return
    made = set(_made)
    _made.clear()
    for key in [k for k, v in _by_data_dir.items() if v in made]:
        del _by_data_dir[key]
    for name in made:
        with contextlib.suppress(Exception):
            _cluster.drop_database(name)
