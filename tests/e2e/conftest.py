from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import Agent
from .proxy import Proxy


@pytest.fixture
def agent(server: Any, tmp_path: Path) -> Agent:
    """A logged-in agent home with one (empty) photo folder added."""
    pw = server.add_user("ann")
    a = Agent(home=tmp_path / "agent-home", server=server, password=pw)
    a.login()
    photos = tmp_path / "photos"
    photos.mkdir()
    a.run("folder", "add", str(photos))
    return a


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return tmp_path / "photos"


@pytest.fixture
def proxy(server: Any) -> Iterator[Proxy]:
    p = Proxy(server.port)
    try:
        yield p
    finally:
        p.close()
