"""Whether the system is in a power-saving mode: ACPI platform profile, power-profiles-daemon, macOS."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from camroll.agent.settings.conditions.runner import Runner, read_text

PLATFORM_PROFILE = "sys/firmware/acpi/platform_profile"


@dataclass(frozen=True)
class PowerSaver:
    """``on`` is True in a power-saving mode, False when a source says otherwise, None when unknown."""

    on: bool | None
    source: str
    sentence: str

    @property
    def value(self) -> str:
        return {True: "on", False: "off", None: "unknown"}[self.on]


def _result(on: bool, setting: str, source: str) -> PowerSaver:
    state = "on" if on else "off"
    return PowerSaver(on, source, f"Power saver is {state} ({source} says '{setting}').")


def from_platform_profile(root: Path) -> PowerSaver | None:
    profile = read_text(root, PLATFORM_PROFILE)
    if not profile:
        return None
    return _result(profile == "low-power", profile, "/" + PLATFORM_PROFILE)


def from_powerprofilesctl(runner: Runner) -> PowerSaver | None:
    out = runner.run(["powerprofilesctl", "get"])
    # A non-zero exit means the daemon is not running: the program exists but knows nothing.
    if out is None or out[0] != 0 or not out[1].strip():
        return None
    profile = out[1].strip().splitlines()[0].strip()
    return _result(profile == "power-saver", profile, "powerprofilesctl get")


_LOW_POWER = re.compile(r"^\s*lowpowermode\s+(\d+)\s*$", re.MULTILINE)


def from_pmset(runner: Runner) -> PowerSaver | None:
    out = runner.run(["pmset", "-g"])
    if out is None or out[0] != 0:
        return None
    # macOS before 12 has no Low Power Mode and prints no such line: that is "unknown", not "off".
    m = _LOW_POWER.search(out[1])
    if m is None:
        return None
    return _result(m.group(1) != "0", f"lowpowermode {m.group(1)}", "pmset -g")


def probe_power_saver(root: Path, runner: Runner) -> PowerSaver:
    found = from_platform_profile(root)
    if found is not None:
        return found
    for probe in (from_powerprofilesctl, from_pmset):
        found = probe(runner)
        if found is not None:
            return found
    return PowerSaver(
        None,
        "none",
        f"Power saver unknown: no /{PLATFORM_PROFILE}, and neither powerprofilesctl nor pmset answered.",
    )
