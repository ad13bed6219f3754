"""Fixtures for scenario tests: a real server, a logged-in agent driven through the real CLI, and a fake
machine (battery, power profile, network) the agent probes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e.helpers import Agent
from support.server import camroll_cmd

from .machine import FakeMachine


def _drop_root_read_override() -> list[str]:
    """As root, file permissions do not stop reads; drop the capabilities that bypass them so a mode-000
    photo is as unreadable to the agent as it is on a user's machine."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:  # pragma: no cover - util-linux is part of every Debian install
        raise RuntimeError("setpriv (util-linux) is needed to run scenario tests as root")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


@dataclass
class ScenarioAgent(Agent):
    machine: FakeMachine | None = None
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {"CAMROLL_HOME": str(self.home)}
        if self.machine is not None:
            env.update(self.machine.env)
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = _drop_root_read_override() + camroll_cmd(*args)
        proc = subprocess.run(cmd, env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"camroll {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(_drop_root_read_override() + camroll_cmd(*args), env={**os.environ, **self.env},
                             text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def json(self, *args: str, check: bool = False) -> Any:
        r = self.run(*args, "--json", check=check)
        try:
            return json.loads(r.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"camroll {' '.join(args)} --json printed no JSON (exit {r.returncode})\n"
                                 f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}") from exc

    def outputs(self) -> str:
        """Stop the background agents and return what they printed (for a failing test's message)."""
        self.stop_all()
        return "\n".join(p.stdout.read() if p.stdout else "" for p in self.procs)

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


@pytest.fixture
def machine(tmp_path: Path) -> FakeMachine:
    return FakeMachine(tmp_path)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    p = tmp_path / "photos"
    p.mkdir()
    return p


@pytest.fixture
def agent(server: Any, tmp_path: Path, machine: FakeMachine, photos: Path) -> Iterator[ScenarioAgent]:
    pw = server.add_user("ann")
    a = ScenarioAgent(home=tmp_path / "agent-home", server=server, password=pw, machine=machine)
    a.login()
    a.run("folder", "add", str(photos))
    try:
        yield a
    finally:
        a.stop_all()
