"""A real server and a real logged-in agent on loopback, driven as a user would (the `camroll` CLI in
subprocesses), for the reliability proofs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from e2e.helpers import Agent
from support.server import ServerProcess

from camroll.agent.settings.config import load_config, save_config

from .corpus import FOLDERS


@dataclass
class Rig:
    server: ServerProcess
    agent: Agent
    photos: Path  # the agent's folders live under here (see corpus.FOLDERS)

    @property
    def state_db(self) -> Path:
        return self.agent.home / "state.db"

    def configure(self, *, chunk_mib: int | None = None, bandwidth: str | None = None,
                  concurrency: int | None = None) -> None:
        cfg = load_config(self.agent.home / "config.toml")
        if chunk_mib is not None:
            cfg.policy.chunk_size_mib = chunk_mib
        if concurrency is not None:
            cfg.policy.upload_concurrency = concurrency
        cfg.policy.bandwidth_limit = bandwidth
        save_config(self.agent.home / "config.toml", cfg)


@contextlib.contextmanager
def rig(work: Path, *, server_args: tuple[str, ...] = ()) -> Iterator[Rig]:
    """A fresh server data dir and agent home under ``work``; the agent's folders exist and are empty."""
    work.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(data=work / "server-data", extra_args=server_args)
    server.start()
    try:
        pw = server.add_user("ann")
        agent = Agent(home=work / "agent-home", server=server, password=pw)
        agent.login()
        photos = work / "photos"
        for f in FOLDERS:
            (photos / f).mkdir(parents=True, exist_ok=True)
            agent.run("folder", "add", str(photos / f))
        yield Rig(server, agent, photos)
    finally:
        server.stop()
