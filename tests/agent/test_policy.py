"""The backup policy rules, on hand-built condition values (data, not mocks)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from camroll.agent.settings.conditions import Battery, Conditions, Network, NetworkKind, PowerSaver
from camroll.agent.settings.config import PolicyConfig
from camroll.agent.settings.policy import evaluate

NOON = dt.datetime(2026, 11, 24, 12, 0)


def bat(level: int | None = 80, charging: bool | None = False, present: bool | None = True) -> Battery:
    return Battery(level, charging, present, "test", "battery sentence")


NO_BATTERY = bat(None, None, False)
UNKNOWN_BATTERY = bat(None, None, None)


def net(kind: NetworkKind = "wifi", metered: bool | None = False, iface: str | None = "wlan0",
        assumed: bool = False) -> Network:
    return Network(kind, metered, iface, "test", f"Network is {kind}.", assumed)


def cond(battery: Battery | None = None, saver: bool | None = False, network: Network | None = None) -> Conditions:
    return Conditions(battery or bat(), PowerSaver(saver, "test", "saver sentence"), network or net())


def pol(**kw: Any) -> PolicyConfig:
    return PolicyConfig(**kw)


UNKNOWN_ALL = cond(UNKNOWN_BATTERY, None, net("unknown", None, None))


def test_all_clear() -> None:
    v = evaluate(pol(), cond(), NOON)
    assert (v.blocked, v.code, v.reason) == (False, "ok", "")


@pytest.mark.parametrize("c", [
    UNKNOWN_ALL,
    cond(NO_BATTERY, None, net("none", None, None)),
    cond(bat(None, False), None, net("ethernet", None, "eth0")),   # level unknown
    cond(bat(5, None), None, net("wifi", None)),                   # low, charging state unknown
    cond(NO_BATTERY, None, net("ethernet", None, "eth0")),         # this kind of machine (desktop, server)
])
def test_unknown_values_never_block_the_default_policy(c: Conditions) -> None:
    assert not evaluate(pol(), c, NOON).blocked


def test_disabled_comes_first() -> None:
    v = evaluate(pol(enabled=False, time_window="01:00-02:00", wifi_only=True), cond(bat(1), True, net("cellular")),
                 NOON)
    assert (v.blocked, v.code) == (True, "disabled")
    assert v.reason == "Off: backup is switched off (enabled = false). Run camroll settings set enabled true."


@pytest.mark.parametrize(("window", "hhmm", "blocked"), [
    ("22:00-06:00", (12, 0), True),
    ("22:00-06:00", (23, 30), False),
    ("22:00-06:00", (5, 59), False),
    ("22:00-06:00", (6, 0), True),        # end excluded
    ("09:00-17:00", (9, 0), False),       # start included
    ("09:00-17:00", (17, 30), True),
])
def test_time_window(window: str, hhmm: tuple[int, int], blocked: bool) -> None:
    now = dt.datetime(2026, 11, 24, *hhmm)
    v = evaluate(pol(time_window=window), cond(), now)
    assert v.blocked is blocked
    if blocked:
        assert v.code == "time_window"
        assert v.reason.startswith(f"Paused: outside your backup time window {window} (it is {now:%H:%M}).")
        assert "camroll settings set time_window none" in v.reason


def test_time_window_before_battery() -> None:
    v = evaluate(pol(time_window="22:00-06:00"), cond(bat(5)), NOON)
    assert v.code == "time_window"


def test_battery_low() -> None:
    v = evaluate(pol(), cond(bat(14, False)), NOON)
    assert (v.blocked, v.code) == (True, "battery_low")
    assert v.reason == ("Paused: battery 14%, below your 20% minimum. Plug in or change min_battery "
                        "(camroll settings set min_battery 10).")


@pytest.mark.parametrize(("battery", "minimum", "blocked"), [
    (bat(19, False), 20, True),
    (bat(20, False), 20, False),           # at the minimum is enough
    (bat(5, True), 20, False),             # charging
    (bat(5, None), 20, False),             # charging state unknown: not blocked
    (bat(None, False), 20, False),         # level unknown: not blocked
    (NO_BATTERY, 100, False),              # mains
    (UNKNOWN_BATTERY, 100, False),
    (bat(0, False), 0, False),             # min_battery 0 turns the rule off
])
def test_min_battery(battery: Battery, minimum: int, blocked: bool) -> None:
    v = evaluate(pol(min_battery=minimum), cond(battery), NOON)
    assert v.blocked is blocked
    assert v.code == ("battery_low" if blocked else "ok")


@pytest.mark.parametrize(("battery", "blocked"), [
    (bat(90, False), True),
    (bat(None, False), True),
    (bat(90, True), False),
    (bat(90, None), False),                # charging state unknown: not blocked
    (NO_BATTERY, False),                   # no battery = on mains
    (UNKNOWN_BATTERY, False),
])
def test_only_while_charging(battery: Battery, blocked: bool) -> None:
    v = evaluate(pol(only_while_charging=True), cond(battery), NOON)
    assert v.blocked is blocked
    if blocked:
        assert v.code == "not_charging"
        assert "not charging" in v.reason and "camroll settings set only_while_charging false" in v.reason


def test_not_charging_wins_over_low_battery() -> None:
    v = evaluate(pol(only_while_charging=True), cond(bat(5, False)), NOON)
    assert v.code == "not_charging" and "at 5%" in v.reason


@pytest.mark.parametrize(("on", "setting", "blocked"), [
    (True, True, True), (False, True, False), (None, True, False), (True, False, False),
])
def test_power_saver(on: bool | None, setting: bool, blocked: bool) -> None:
    v = evaluate(pol(pause_on_power_saver=setting), cond(saver=on), NOON)
    assert v.blocked is blocked
    if blocked:
        assert v.code == "power_saver"
        assert v.reason == ("Paused: power saver is on. Turn it off or run camroll settings set "
                            "pause_on_power_saver false.")


def test_battery_before_power_saver_before_network() -> None:
    c = cond(bat(5, False), True, net("cellular", True, "rmnet0"))
    p = pol(wifi_only=True, allow_metered=False)
    assert evaluate(p, c, NOON).code == "battery_low"
    assert evaluate(p, cond(bat(90, False), True, c.network), NOON).code == "power_saver"
    assert evaluate(p, cond(bat(90, False), False, c.network), NOON).code == "not_wifi"


@pytest.mark.parametrize(("network", "code"), [
    (net("wifi", None), "ok"),
    (net("wifi", True), "ok"),              # wifi_only is about the link kind; metering is allow_metered
    (net("ethernet", None, "eth0"), "ok"),  # wired counts (the key means "Wi-Fi or wired")
    (net("cellular", True, "rmnet0"), "not_wifi"),
    (net("unknown", None, None), "no_network"),
    (net("none", None, None), "no_network"),
])
def test_wifi_only(network: Network, code: str) -> None:
    v = evaluate(pol(wifi_only=True), cond(network=network), NOON)
    assert v.code == code and v.blocked is (code != "ok")
    if code == "not_wifi":
        assert v.reason.startswith("Paused: wifi_only is on and this device is on mobile data (rmnet0).")
    if code != "ok":
        assert v.reason.endswith("camroll settings set wifi_only false.")
    if network.kind == "unknown":
        assert "cannot tell the network kind" in v.reason


@pytest.mark.parametrize(("network", "blocked"), [
    (net("wifi", True), True),
    (net("wifi", False), False),
    (net("wifi", None), False),                       # unknown metering on Wi-Fi: not blocked
    (net("ethernet", None, "eth0"), False),
    (net("cellular", None, "rmnet0"), True),          # mobile data is assumed metered
    (net("cellular", True, "rmnet0", assumed=True), True),
    (net("cellular", False, "rmnet0"), False),        # a source said unmetered (e.g. unlimited plan)
    (net("unknown", None, None), False),
    (net("none", None, None), False),
])
def test_allow_metered_false(network: Network, blocked: bool) -> None:
    v = evaluate(pol(allow_metered=False), cond(network=network), NOON)
    assert v.blocked is blocked
    if blocked:
        assert v.code == "metered"
        assert v.reason.startswith("Paused: on a metered connection (")
        assert "allow_metered is off" in v.reason and "camroll settings set allow_metered true" in v.reason
    assert not evaluate(pol(allow_metered=True), cond(network=network), NOON).blocked


def test_network_kind_does_not_block_without_wifi_only() -> None:
    for kind in ("unknown", "none", "cellular"):
        assert not evaluate(pol(), cond(network=net(kind, None, None)), NOON).blocked  # type: ignore[arg-type]
