"""Condition probes: battery, power saver and network, each a value plus a sentence a person reads.

Every probe reads through a root directory (default "/") and a command runner, so tests point them at a
fake tree and fake scripts while the real parsing runs.  Probes never raise: missing information is
reported as unknown, because a policy must still be able to decide (and say why) on any machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from camroll.agent.settings.conditions.battery import Battery, probe_battery
from camroll.agent.settings.conditions.network import Network, NetworkKind, probe_network
from camroll.agent.settings.conditions.power import PowerSaver, probe_power_saver
from camroll.agent.settings.conditions.runner import DEFAULT_TIMEOUT, Runner, SubprocessRunner

__all__ = [
    "DEFAULT_TIMEOUT",
    "Battery",
    "Conditions",
    "Network",
    "NetworkKind",
    "PowerSaver",
    "Probes",
    "Runner",
    "SubprocessRunner",
]


@dataclass(frozen=True)
class Conditions:
    battery: Battery
    power_saver: PowerSaver
    network: Network

    def sentences(self) -> list[str]:
        return [self.battery.sentence, self.power_saver.sentence, self.network.sentence]


# Where the probes look, for machines whose host /sys and tools are mounted elsewhere (a container
# backing up a host's camera folder, a chroot on Android) and for tests that run the real CLI against a
# fake tree: a root directory for /sys-style files, and a PATH for helper programs.
PROBE_ROOT_ENV = "CAMROLL_PROBE_ROOT"
PROBE_PATH_ENV = "CAMROLL_PROBE_PATH"


def _default_root() -> Path:
    return Path(os.environ.get(PROBE_ROOT_ENV) or "/")


def _default_runner() -> Runner:
    return SubprocessRunner(os.environ.get(PROBE_PATH_ENV) or None)


@dataclass
class Probes:
    root: Path = field(default_factory=_default_root)
    runner: Runner = field(default_factory=_default_runner)

    def battery(self) -> Battery:
        return probe_battery(self.root, self.runner)

    def power_saver(self) -> PowerSaver:
        return probe_power_saver(self.root, self.runner)

    def network(self) -> Network:
        return probe_network(self.root, self.runner)

    def all(self) -> Conditions:
        return Conditions(self.battery(), self.power_saver(), self.network())
