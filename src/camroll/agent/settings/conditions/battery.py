"""Battery level and whether the machine is on external power: Linux sysfs, Termux, macOS pmset, then
psutil (Windows, the BSDs)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from camroll.agent.settings.conditions.runner import Runner, list_dir, read_text

POWER_SUPPLY = "sys/class/power_supply"


@dataclass(frozen=True)
class Battery:
    """``level`` in percent; ``charging`` means "on external power" (charging, full or held by a charge
    limit), which is what a backup policy cares about.  ``present`` is False on a machine with no
    battery (treated as on mains) and None when nothing could be learned."""

    level: int | None
    charging: bool | None
    present: bool | None
    source: str
    sentence: str

    @property
    def value(self) -> str:
        if self.present is False:
            return "no battery"
        if self.level is None and self.charging is None:
            return "unknown"
        level = "?" if self.level is None else f"{self.level}%"
        state = {True: "charging", False: "discharging", None: "unknown"}[self.charging]
        return f"{level} {state}"

    @property
    def on_mains(self) -> bool | None:
        return True if self.present is False else self.charging


def _describe(level: int | None, charging: bool | None, source: str) -> Battery:
    lvl = "at an unknown level" if level is None else f"at {level}%"
    if charging is True:
        power = "on external power"
    elif charging is False:
        power = "not charging"
    else:
        power = "charging state unknown"
    return Battery(level, charging, True, source, f"Battery {lvl}, {power} (from {source}).")


def _no_battery(source: str) -> Battery:
    return Battery(None, None, False, source, f"No battery found ({source}): treated as on mains power.")


def _percent(raw: str | float | None) -> int | None:
    """A level clamped to 0..100 (some firmware reports 101), or None if absent or not a number."""
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return max(0, min(100, round(float(raw))))
    except ValueError:
        return None


# sysfs "status" words; "Full" and "Not charging" (a charge limit holding the level) mean plugged in.
_SYSFS_STATUS = {"charging": True, "full": True, "not charging": True, "discharging": False}


def from_sysfs(root: Path) -> tuple[Battery | None, bool]:
    """(result, conclusive).  ``conclusive`` says every power_supply entry could be read, so finding no
    battery among them means a desktop, not missing information."""
    entries = list_dir(root, POWER_SUPPLY)
    if entries is None:
        return None, False
    # Android lists the entries but SELinux may refuse reading them: then an empty result proves nothing.
    conclusive = True
    mains_online: bool | None = None
    batteries: list[tuple[str, int | None, bool | None]] = []
    for d in entries:
        rel = f"{POWER_SUPPLY}/{d.name}"
        kind_text = read_text(root, f"{rel}/type")
        if kind_text is None:
            conclusive = False
            continue
        kind = kind_text.lower()
        if kind == "battery":
            # Wireless mice and headsets report scope "Device": their charge says nothing about ours.
            if (read_text(root, f"{rel}/scope") or "").lower() == "device":
                continue
            status = (read_text(root, f"{rel}/status") or "").lower()
            batteries.append((rel, _percent(read_text(root, f"{rel}/capacity")), _SYSFS_STATUS.get(status)))
        elif kind in ("mains", "wireless") or kind.startswith("usb"):  # USB, USB_C, USB_PD, USB_DCP...
            online = read_text(root, f"{rel}/online")
            if online == "1":
                mains_online = True
            elif online == "0" and mains_online is None:
                mains_online = False
    if not batteries:
        return None, conclusive
    rel, level, charging = batteries[0]
    # An adapter that says it is online outranks a battery status of "Unknown" (common while plugging in).
    if mains_online is True or (charging is None and mains_online is not None):
        charging = mains_online
    return _describe(level, charging, "/" + rel), True


def from_termux(runner: Runner) -> Battery | None:
    out = runner.run(["termux-battery-status"])
    if out is None or out[0] != 0:
        return None
    try:
        data = json.loads(out[1])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    pct = data.get("percentage")
    level = _percent(pct) if isinstance(pct, int | float | str) else None
    charging: bool | None = None
    plugged = data.get("plugged")
    status = data.get("status")
    # "plugged" says where power comes from, which is what we want; "status" only as a fallback.
    if isinstance(plugged, str) and plugged:
        charging = plugged.upper() != "UNPLUGGED"
    elif isinstance(status, str):
        charging = _SYSFS_STATUS.get(status.lower().replace("_", " "))
    if level is None and charging is None:
        return None
    return _describe(level, charging, "termux-battery-status")


_PMSET_PCT = re.compile(r"(\d+)%;\s*([^;]+)")
_PMSET_FROM = re.compile(r"drawing from '([^']+)'")


def from_pmset(runner: Runner) -> Battery | None:
    out = runner.run(["pmset", "-g", "batt"])
    if out is None or out[0] != 0:
        return None
    text = out[1]
    drawing = _PMSET_FROM.search(text)
    ac = None if drawing is None else drawing.group(1).lower().startswith("ac")
    m = _PMSET_PCT.search(text)
    if m is None:
        # A desktop Mac prints only "Now drawing from 'AC Power'".
        return _no_battery("pmset -g batt") if ac else None
    state = m.group(2).strip().lower()
    charging: bool | None
    if ac is not None:
        charging = ac
    elif state in ("charging", "charged", "finishing charge") or state.startswith("ac attached"):
        charging = True
    elif state == "discharging":
        charging = False
    else:
        charging = None
    return _describe(_percent(m.group(1)), charging, "pmset -g batt")


def from_psutil(read: Callable[[], object | None] | None = None) -> Battery | None:
    """psutil's ``sensors_battery()`` (percent, secsleft, power_plugged), or None when it knows nothing.
    It reads the real machine, so it is only asked when the probes look at the real "/"."""
    if read is None:
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil is a dependency
            return None
        read = getattr(psutil, "sensors_battery", None)
        if read is None:
            return None
    try:
        found = read()
    except Exception:  # a platform quirk in psutil must not stop a backup decision
        return None
    if found is None:
        return None
    level = _percent(getattr(found, "percent", None))
    plugged = getattr(found, "power_plugged", None)
    return _describe(level, plugged if isinstance(plugged, bool) else None, "psutil")


def probe_battery(root: Path, runner: Runner) -> Battery:
    found, sysfs_conclusive = from_sysfs(root)
    if found is not None:
        return found
    for probe in (from_termux, from_pmset):
        found = probe(runner)
        if found is not None:
            return found
    if root == Path("/") and not sysfs_conclusive and (found := from_psutil()) is not None:
        return found
    if sysfs_conclusive:
        return _no_battery(f"/{POWER_SUPPLY} lists none")
    return Battery(
        None,
        None,
        None,
        "none",
        f"Battery unknown: /{POWER_SUPPLY} is missing or unreadable and neither termux-battery-status nor pmset "
        "is available.",
    )
