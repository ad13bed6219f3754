"""What the tests need from the machine: outside programs (``require``) and free loopback ports."""

from __future__ import annotations

import os
import random
import re
import socket

import pytest


def require(ok: bool, message: str) -> None:
    """Skip a test whose outside program or package is missing on a developer machine, but fail it in CI
    (``CI`` set), where .ci/run installs everything: a broken CI image must not pass by skipping."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# Ports for servers the tests start come from below the kernel's ephemeral range (32768-60999 on
# Linux), one slice per pytest-xdist worker: a port asked of the kernel (bind to 0) and released is
# the kind of port the kernel also hands to the next outgoing connection, and a server started on it
# a moment later could find it taken (seen in CI: "address already in use").
_LOW, _SLICE = 10_000, 2_500
_handed_out: set[int] = set()


def _slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    m = re.fullmatch(r"gw(\d+)", worker)
    index = int(m.group(1)) % 8 if m else 0
    start = _LOW + index * _SLICE
    return range(start, start + _SLICE)


def free_port() -> int:
    """A loopback port no server holds now, not handed out before in this process, and outside the
    ephemeral range (so no outgoing connection takes it before the server that is given it binds)."""
    ports = _slice()
    for _ in range(200):
        port = random.choice(ports)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {ports.start}-{ports.stop - 1}")
