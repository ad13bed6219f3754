"""Session hooks and the fixtures every directory shares (a real ``camroll serve`` on a free loopback
port).  Helpers live in tests/support/ and are imported from there, never from this file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import postgres

# The session fixtures of the throwaway services, defined once here: a module that imported them itself
# got an instance of its own, alive until the session ended (an idle SeaweedFS costs a quarter of a core).
from services.redis import redis_service  # noqa: F401
from services.s3 import rclone_s3, seaweedfs_s3  # noqa: F401
from support.server import ON_POSTGRES, ServerProcess


def pytest_configure(config: pytest.Config) -> None:
    """Agent commands without $CAMROLL_HOME use the platform's config and state dirs, and ``camroll up``
    leaves a pointer there: every test (and every CLI it runs) gets throwaway ones instead of the user's.
    Each pytest-xdist worker runs this in its own process, so each gets its own."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="camroll-tests-xdg-"))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
        os.environ[var] = str(base / var.lower())
    os.environ.pop("CAMROLL_HOME", None)
    os.environ.pop("CAMROLL_DATA", None)
    os.environ.pop("CAMROLL_DATABASE_URL", None)
    config.addinivalue_line("markers", "sqlite_only(reason): the test is about SQLite itself; skipped on PostgreSQL")
    if ON_POSTGRES:
        from camroll.server import settings

        # In this process, a library's database is the one made for its data directory (a migration
        # test gets an empty one, as a new SQLite file would be); camroll subprocesses are handed the
        # same URL in $CAMROLL_DATABASE_URL (database_env).
        settings.database_url = lambda data_dir: postgres.database_url_for(data_dir, migrated=False)
        # The xdist controller (it runs no tests) starts one cluster for all its workers.
        if not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("xdist") \
                and config.getoption("numprocesses", None) and postgres.missing_reason() is None:
            postgres.share()


# Marked ``slow`` (the fast lane is ``-m "not slow"``, see README): whole modules whose tests each take
# more than a few seconds because of what they start, a browser, an agent daemon, a cluster, a fuzzer or
# a kill/restart rig, rather than because of a sleep.  Kept here, by path, so the mark needs no edit in
# the modules themselves; a test elsewhere that takes that long gets ``@pytest.mark.slow`` where it is.
SLOW_MODULES = (
    "tests/scale/",  # PostgreSQL, SeaweedFS, Redis, nginx/HAProxy and three camroll processes per module
    "tests/scenarios/",  # a real agent daemon per cause, waiting for it to notice and recover
    "tests/reliability/",  # kill -9 and network-fault rigs
    "tests/web/test_browser.py",  # Chromium
    "tests/web/test_viewer_motion.py",  # Chromium
    "tests/web/test_device_counts.py",  # Chromium and a real agent pass
    "tests/e2e/test_faults.py",  # a fault proxy, kill -9 and restarts
    "tests/e2e/test_watch.py",  # a watching agent daemon and a server restart
    "tests/test_allinone.py",  # `camroll up`, the whole stack
    "tests/server/test_fuzz.py",  # schemathesis over every operation
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        where = Path(str(item.path)).relative_to(root).as_posix()
        if where.startswith(SLOW_MODULES):
            item.add_marker(pytest.mark.slow)
    if not ON_POSTGRES:
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else "about SQLite itself"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    postgres.stop()


@pytest.fixture(scope="module", autouse=True)
def _module_databases() -> Iterator[None]:
    """A module's PostgreSQL databases are dropped when it ends (its servers have stopped by then)."""
    yield
    if ON_POSTGRES:
        postgres.drop_made()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh, running ``camroll serve`` with its own data directory."""
    srv = ServerProcess(data=tmp_path / "server-data")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
