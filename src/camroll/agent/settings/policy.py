"""Whether a backup pass may upload now: the [policy] keys applied to the probed conditions.

:func:`evaluate` is pure (config + conditions + clock in, :class:`Verdict` out), so every rule is tested
with hand-built condition values.  Rules are checked in this order and the first that blocks wins:

1. ``enabled = false``                   -> ``disabled``
2. ``time_window`` and now is outside    -> ``time_window`` (the window is in local time)
3. ``only_while_charging`` / battery     -> ``not_charging``, then ``battery_low``
4. ``pause_on_power_saver``              -> ``power_saver``
5. ``wifi_only`` / ``allow_metered``     -> ``no_network``, ``not_wifi``, ``metered``

How unknown values are treated (a probe that cannot tell reports unknown, never raises):

- No battery (``present is False``, a desktop on mains): never blocks; it counts as charging.
- Battery unknown (``present is None``), level unknown, or charging state unknown: never blocks.
  Blocking on what camroll cannot see would stop backups for good on machines whose battery it cannot
  read; a low level only blocks when the battery is known to be *not* charging.
- Power saver unknown: never blocks.
- Network kind ``unknown`` or ``none`` with ``wifi_only`` on: BLOCKS (``no_network``), with a reason
  that says camroll cannot see a Wi-Fi or wired link and how to turn ``wifi_only`` off.  Whoever turned
  it on asked not to pay for data, so "cannot tell" must not mean "upload".  With ``wifi_only`` off the
  network kind never blocks: the probe misses links it does not classify (VPNs, containers' virtual
  links, a server on loopback) and the connection attempt itself reports a real outage.
- Metered unknown with ``allow_metered = false``: not blocked, unless the link is mobile data, which is
  assumed metered (the network probe already sets that, and this module assumes it again for
  hand-built values).

With the default policy (enabled, no time window, min_battery 20, not only while charging, pause on
power saver, any network, metered allowed) no unknown value blocks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from camroll.agent.settings.conditions import Conditions
from camroll.agent.settings.config import PolicyConfig, in_time_window, parse_time_window

VerdictCode = Literal[
    "ok", "disabled", "time_window", "not_charging", "battery_low", "power_saver", "no_network", "not_wifi",
    "metered",
]

_KIND_LABEL = {"wifi": "Wi-Fi", "ethernet": "Ethernet", "cellular": "mobile data"}


@dataclass(frozen=True)
class Verdict:
    """``blocked`` with a ``reason`` a person reads (the value that blocked and the fix) and a short
    machine ``code``; an unblocked verdict has code ``"ok"`` and an empty reason."""

    blocked: bool
    code: VerdictCode
    reason: str


OK = Verdict(False, "ok", "")


def _set(key: str, value: str) -> str:
    return f"camroll settings set {key} {value}"


def evaluate(policy: PolicyConfig, conditions: Conditions, now: dt.datetime) -> Verdict:
    """The verdict for a pass starting at ``now`` (local wall-clock time is what ``time_window`` means).

    See the module docstring for the order of the rules and how each treats unknown values."""
    # 1. Switched off: nothing else matters.
    if not policy.enabled:
        return Verdict(True, "disabled",
                       f"Off: backup is switched off (enabled = false). Run {_set('enabled', 'true')}.")

    # 2. Time window: the clock is never unknown.
    if policy.time_window is not None:
        window = parse_time_window(policy.time_window)
        if not in_time_window(window, now.time()):
            return Verdict(True, "time_window",
                           f"Paused: outside your backup time window {policy.time_window} (it is "
                           f"{now:%H:%M}). It resumes in the window, or run {_set('time_window', 'none')}.")

    # 3. Battery.  No battery = on mains; unknown level or charging state never blocks.
    bat = conditions.battery
    on_mains = bat.on_mains
    if policy.only_while_charging and on_mains is False:
        level = "" if bat.level is None else f" at {bat.level}%"
        return Verdict(True, "not_charging",
                       f"Paused: the battery is{level} and not charging, and only_while_charging is on. "
                       f"Plug in or run {_set('only_while_charging', 'false')}.")
    if bat.level is not None and on_mains is False and bat.level < policy.min_battery:
        lower = max(0, min(policy.min_battery - 10, bat.level))
        return Verdict(True, "battery_low",
                       f"Paused: battery {bat.level}%, below your {policy.min_battery}% minimum. "
                       f"Plug in or change min_battery ({_set('min_battery', str(lower))}).")

    # 4. Power saver: only a known "on" blocks.
    if policy.pause_on_power_saver and conditions.power_saver.on is True:
        return Verdict(True, "power_saver",
                       f"Paused: power saver is on. Turn it off or run {_set('pause_on_power_saver', 'false')}.")

    # 5. Network.
    net = conditions.network
    if policy.wifi_only:
        if net.kind in ("unknown", "none"):
            seen = "cannot tell the network kind" if net.kind == "unknown" else "sees no network connection"
            return Verdict(True, "no_network",
                           f"Paused: wifi_only is on and camroll {seen}, so it cannot confirm Wi-Fi or a "
                           f"wired network ({net.sentence}) Connect to Wi-Fi or run {_set('wifi_only', 'false')}.")
        if net.kind == "cellular":
            where = f" ({net.interface})" if net.interface else ""
            return Verdict(True, "not_wifi",
                           f"Paused: wifi_only is on and this device is on mobile data{where}. Connect to Wi-Fi "
                           f"or run {_set('wifi_only', 'false')}.")
    metered = net.metered is True or (net.metered is None and net.kind == "cellular")
    if not policy.allow_metered and metered:
        label = _KIND_LABEL.get(net.kind, net.kind)
        assumed = " (assumed for mobile data)" if net.metered is None or net.metered_assumed else ""
        return Verdict(True, "metered",
                       f"Paused: on a metered connection ({label}{assumed}) and allow_metered is off. "
                       f"Connect to an unmetered network or run {_set('allow_metered', 'true')}.")
    return OK
