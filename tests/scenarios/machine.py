"""A fake machine for scenario tests: a ``/sys`` tree and helper programs (nmcli) that the real agent
CLI reads through ``CAMROLL_PROBE_ROOT`` / ``CAMROLL_PROBE_PATH``.  A test changes the battery, power
profile or network while an agent runs, the way a person plugs in a charger or joins Wi-Fi."""

from __future__ import annotations

import os
import shlex
from pathlib import Path


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    # A running agent may read the file at any moment; it must see the old or the new contents, never half.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)


class FakeMachine:
    def __init__(self, base: Path) -> None:
        self.root = base / "machine-root"
        self.bin = base / "machine-bin"
        self.root.mkdir(parents=True)
        self.bin.mkdir(parents=True)
        # A desktop on mains, no power saver, on unmetered Ethernet: nothing blocks until a test says so.
        self.mains(True)
        self.power_profile("balanced")
        self.network("ethernet", metered=False)

    @property
    def env(self) -> dict[str, str]:
        return {"CAMROLL_PROBE_ROOT": str(self.root), "CAMROLL_PROBE_PATH": str(self.bin)}

    def _file(self, rel: str, text: str) -> None:
        _write_atomic(self.root / rel, text + "\n")

    def mains(self, online: bool) -> None:
        self._file("sys/class/power_supply/AC/type", "Mains")
        self._file("sys/class/power_supply/AC/online", "1" if online else "0")

    def battery(self, level: int, *, charging: bool) -> None:
        base = "sys/class/power_supply/BAT0"
        self._file(f"{base}/type", "Battery")
        self._file(f"{base}/capacity", str(level))
        self._file(f"{base}/status", "Charging" if charging else "Discharging")
        self.mains(charging)

    def power_profile(self, name: str) -> None:
        self._file("sys/firmware/acpi/platform_profile", name)

    def network(self, kind: str, *, metered: bool | None) -> None:
        """``kind`` is an nmcli device type: ethernet, wifi, gsm; ``none`` disconnects everything."""
        dev = {"ethernet": "eth0", "wifi": "wlan0", "gsm": "cdc-wdm0"}.get(kind, "eth0")
        devices = "loopback:connected (externally):lo\n"
        if kind != "none":
            devices += f"{kind}:connected:{dev}\n"
        value = {True: "yes", False: "no", None: "unknown"}[metered]
        outputs = {"-t -f TYPE,STATE,DEVICE dev": devices,
                   f"-t -f GENERAL.METERED dev show {dev}": f"GENERAL.METERED:{value}\n"}
        lines = ["#!/bin/sh", 'case "$*" in']
        for args, out in outputs.items():
            lines.append(f"  {shlex.quote(args)}) printf '%s' {shlex.quote(out)};;")
        lines += ['  *) exit 8;;', "esac"]
        _write_atomic(self.bin / "nmcli", "\n".join(lines) + "\n", 0o755)
