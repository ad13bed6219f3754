"""A throwaway Redis for the tests: Debian's ``redis-server`` on 127.0.0.1 and a free port, nothing on
disk (``--save '' --appendonly no``, its working folder a temp directory), stopped when the session
ends and killed with its parent (PR_SET_PDEATHSIG), so a crashed pytest leaves nothing behind.  A
missing ``redis-server`` or redis client skips the test, or fails it when ``CI`` is set.

Use the session fixture ``redis_service`` (tests/conftest.py offers it to every test) or the context manager
``redis_server()``.  ``RedisService.fresh_url()`` hands each test a database of its own, emptied
first, so tests sharing the server never see each other's queues.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import itertools
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.env import free_port, require

DATABASES = 64
START_TIMEOUT_S = 20.0


@dataclass
class RedisService:
    port: int
    _dbs: Iterator[int] = field(default_factory=lambda: itertools.cycle(range(1, DATABASES)))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def fresh_url(self) -> str:
        """A database no other test uses now, emptied: ``redis://127.0.0.1:PORT/N``."""
        import redis

        db = next(self._dbs)
        client = redis.Redis(host="127.0.0.1", port=self.port, db=db)
        try:
            client.flushdb()
        finally:
            client.close()
        return f"redis://127.0.0.1:{self.port}/{db}"


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def redis_server(root: Path | None = None) -> Iterator[RedisService]:
    binary = shutil.which("redis-server")
    require(binary is not None, "redis-server is not installed: apt-get install redis-server")
    require(importlib.util.find_spec("redis") is not None, "the redis client is missing: pip install -e '.[test]'")
    assert binary is not None
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="camroll-redis-")))
        port = free_port()
        log_path = root / "redis.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(root), "--databases", str(DATABASES)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _accepts(port):
                if proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited {proc.returncode}: {log_path.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not accept connections in {START_TIMEOUT_S:g} s")
                time.sleep(0.02)
            yield RedisService(port)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def redis_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisService]:
    with redis_server(tmp_path_factory.mktemp("redis")) as svc:
        yield svc
