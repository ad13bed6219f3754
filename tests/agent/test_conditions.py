"""Condition probes against fake ``/`` trees and fake programs (shell scripts on a private PATH): the
real file reading, process running and parsing all run; nothing is mocked."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from camroll.agent.settings.conditions import Probes, SubprocessRunner


class Machine:
    """A fake machine: ``root`` is its "/" and ``bin`` the only directory on its PATH."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "root"
        self.root.mkdir()
        self.bin = tmp_path / "bin"
        self.bin.mkdir()

    def file(self, rel: str, text: str) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text + "\n")

    def dir(self, rel: str) -> None:
        (self.root / rel).mkdir(parents=True, exist_ok=True)

    def program(self, name: str, outputs: dict[str, str], default_rc: int = 0) -> None:
        """A script printing ``outputs[args]`` for the matching argument string; other args exit 8."""
        lines = ["#!/bin/sh", 'case "$*" in']
        for args, out in outputs.items():
            lines.append(f"  {shlex.quote(args)}) printf '%s' {shlex.quote(out)}; exit {default_rc};;")
        lines += ['  *) echo unexpected "$*" >&2; exit 8;;', "esac"]
        p = self.bin / name
        p.write_text("\n".join(lines) + "\n")
        p.chmod(0o755)

    def probes(self) -> Probes:
        return Probes(root=self.root, runner=SubprocessRunner(path=str(self.bin)))


@pytest.fixture
def m(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def battery_dir(m: Machine, name: str, capacity: str, status: str) -> None:
    base = f"sys/class/power_supply/{name}"
    m.file(f"{base}/type", "Battery")
    m.file(f"{base}/capacity", capacity)
    m.file(f"{base}/status", status)


def mains(m: Machine, name: str, online: str, kind: str = "Mains") -> None:
    m.file(f"sys/class/power_supply/{name}/type", kind)
    m.file(f"sys/class/power_supply/{name}/online", online)


# --- battery -----------------------------------------------------------------------------------------


def test_battery_low_discharging_sysfs(m: Machine) -> None:
    battery_dir(m, "BAT0", "10", "Discharging")
    mains(m, "AC", "0")
    b = m.probes().battery()
    assert (b.level, b.charging, b.present) == (10, False, True)
    assert b.value == "10% discharging"
    assert b.on_mains is False
    assert b.sentence == "Battery at 10%, not charging (from /sys/class/power_supply/BAT0)."


def test_battery_charging_sysfs(m: Machine) -> None:
    battery_dir(m, "BAT1", "80", "Charging")
    b = m.probes().battery()
    assert (b.level, b.charging) == (80, True)
    assert "80%" in b.sentence and "external power" in b.sentence


def test_battery_unknown_status_but_adapter_online(m: Machine) -> None:
    battery_dir(m, "BAT0", "55", "Unknown")
    mains(m, "ADP1", "1")
    b = m.probes().battery()
    assert (b.level, b.charging) == (55, True)


def test_battery_full_counts_as_on_power(m: Machine) -> None:
    battery_dir(m, "BAT0", "100", "Full")
    assert m.probes().battery().charging is True


def test_peripheral_battery_ignored(m: Machine) -> None:
    # A wireless mouse at 5% must not read as the laptop's battery; with only AC left, a desktop.
    battery_dir(m, "hidpp_battery_0", "5", "Discharging")
    m.file("sys/class/power_supply/hidpp_battery_0/scope", "Device")
    mains(m, "AC", "1")
    b = m.probes().battery()
    assert b.present is False
    assert b.value == "no battery"


def test_ac_online_no_battery_is_mains(m: Machine) -> None:
    mains(m, "AC", "1")
    b = m.probes().battery()
    assert b.value == "no battery"
    assert b.on_mains is True
    assert "No battery" in b.sentence and "mains" in b.sentence


def test_empty_power_supply_dir_is_desktop(m: Machine) -> None:
    m.dir("sys/class/power_supply")
    assert m.probes().battery().value == "no battery"


def test_unreadable_entries_are_not_proof_of_no_battery(m: Machine) -> None:
    # Android lists entries but SELinux hides their files: with no other source that is unknown.
    m.dir("sys/class/power_supply/battery")
    b = m.probes().battery()
    assert b.present is None
    assert b.value == "unknown"


def test_termux_json(m: Machine) -> None:
    data = {"health": "GOOD", "percentage": 42, "plugged": "UNPLUGGED", "status": "DISCHARGING", "temperature": 30.1}
    m.program("termux-battery-status", {"": json.dumps(data)})
    b = m.probes().battery()
    assert (b.level, b.charging, b.source) == (42, False, "termux-battery-status")
    assert b.sentence == "Battery at 42%, not charging (from termux-battery-status)."


def test_termux_json_plugged(m: Machine) -> None:
    data = {"percentage": 91, "plugged": "PLUGGED_USB", "status": "CHARGING"}
    m.program("termux-battery-status", {"": json.dumps(data)})
    b = m.probes().battery()
    assert (b.level, b.charging) == (91, True)


def test_termux_garbage_falls_through_to_unknown(m: Machine) -> None:
    m.program("termux-battery-status", {"": "Termux:API is not installed"})
    assert m.probes().battery().value == "unknown"


PMSET_BATT = (
    "Now drawing from 'Battery Power'\n"
    " -InternalBattery-0 (id=4653155)\t85%; discharging; 4:12 remaining present: true\n"
)
PMSET_BATT_AC = (
    "Now drawing from 'AC Power'\n -InternalBattery-0 (id=4653155)\t97%; charging; 0:20 remaining present: true\n"
)


def test_pmset_discharging(m: Machine) -> None:
    m.program("pmset", {"-g batt": PMSET_BATT})
    b = m.probes().battery()
    assert (b.level, b.charging, b.source) == (85, False, "pmset -g batt")


def test_pmset_on_ac(m: Machine) -> None:
    m.program("pmset", {"-g batt": PMSET_BATT_AC})
    b = m.probes().battery()
    assert (b.level, b.charging) == (97, True)


def test_pmset_desktop_mac(m: Machine) -> None:
    m.program("pmset", {"-g batt": "Now drawing from 'AC Power'\n"})
    assert m.probes().battery().value == "no battery"


def test_sysfs_wins_over_programs(m: Machine) -> None:
    battery_dir(m, "BAT0", "33", "Discharging")
    m.program("pmset", {"-g batt": PMSET_BATT})
    assert m.probes().battery().level == 33


# --- power saver -------------------------------------------------------------------------------------


def test_power_saver_platform_profile(m: Machine) -> None:
    m.file("sys/firmware/acpi/platform_profile", "low-power")
    p = m.probes().power_saver()
    assert (p.on, p.value) == (True, "on")
    assert p.sentence == "Power saver is on (/sys/firmware/acpi/platform_profile says 'low-power')."


def test_power_saver_platform_profile_balanced(m: Machine) -> None:
    m.file("sys/firmware/acpi/platform_profile", "balanced")
    assert m.probes().power_saver().on is False


@pytest.mark.parametrize(("profile", "on"), [("power-saver", True), ("balanced", False), ("performance", False)])
def test_power_saver_powerprofilesctl(m: Machine, profile: str, on: bool) -> None:
    m.program("powerprofilesctl", {"get": profile + "\n"})
    p = m.probes().power_saver()
    assert (p.on, p.source) == (on, "powerprofilesctl get")


def test_powerprofilesctl_without_daemon_is_unknown(m: Machine) -> None:
    m.program("powerprofilesctl", {"get": ""}, default_rc=1)
    assert m.probes().power_saver().on is None


PMSET_G = (
    "System-wide power settings:\nCurrently in use:\n standby              1\n lowpowermode         {}\n sleep 1\n"
)


@pytest.mark.parametrize(("flag", "on"), [("1", True), ("0", False)])
def test_power_saver_pmset(m: Machine, flag: str, on: bool) -> None:
    m.program("pmset", {"-g": PMSET_G.format(flag)})
    p = m.probes().power_saver()
    assert (p.on, p.source) == (on, "pmset -g")


def test_pmset_without_low_power_mode_is_unknown(m: Machine) -> None:
    m.program("pmset", {"-g": "Currently in use:\n standby 1\n"})
    assert m.probes().power_saver().value == "unknown"


# --- network -----------------------------------------------------------------------------------------


def nmcli(m: Machine, devices: str, metered: dict[str, str]) -> None:
    outputs = {"-t -f TYPE,STATE,DEVICE dev": devices}
    for dev, value in metered.items():
        outputs[f"-t -f GENERAL.METERED dev show {dev}"] = f"GENERAL.METERED:{value}\n"
    m.program("nmcli", outputs)


NM_WIFI = "wifi:connected:wlp2s0\nethernet:unavailable:enp3s0\nloopback:connected (externally):lo\n"


@pytest.mark.parametrize(
    ("value", "metered"),
    [("yes", True), ("yes (guessed)", True), ("no", False), ("no (guessed)", False), ("unknown", None)],
)
def test_nmcli_metered(m: Machine, value: str, metered: bool | None) -> None:
    nmcli(m, NM_WIFI, {"wlp2s0": value})
    n = m.probes().network()
    assert (n.kind, n.metered, n.interface, n.source) == ("wifi", metered, "wlp2s0", "NetworkManager")


def test_nmcli_sentence(m: Machine) -> None:
    nmcli(m, NM_WIFI, {"wlp2s0": "yes (guessed)"})
    n = m.probes().network()
    assert n.sentence == "On Wi-Fi (wlp2s0), metered (from NetworkManager)."
    assert n.value == "wifi, metered"


def test_nmcli_prefers_ethernet(m: Machine) -> None:
    nmcli(m, "wifi:connected:wlan0\nethernet:connected:eth0\n", {"eth0": "no", "wlan0": "yes"})
    n = m.probes().network()
    assert (n.kind, n.metered, n.interface) == ("ethernet", False, "eth0")


def test_nmcli_cellular_assumed_metered(m: Machine) -> None:
    nmcli(m, "gsm:connected:cdc-wdm0\nwifi:disconnected:wlan0\n", {"cdc-wdm0": "unknown"})
    n = m.probes().network()
    assert (n.kind, n.metered, n.metered_assumed) == ("cellular", True, True)
    assert "assumed" in n.sentence


def test_nmcli_nothing_connected(m: Machine) -> None:
    nmcli(m, "wifi:disconnected:wlan0\nbridge:connected (externally):docker0\n", {})
    n = m.probes().network()
    assert (n.kind, n.source) == ("none", "NetworkManager")
    assert "No network connection" in n.sentence


def test_nmcli_escaped_device_name(m: Machine) -> None:
    nmcli(m, "ethernet:connected:en\\:x\n", {"en:x": "no"})
    n = m.probes().network()
    assert (n.kind, n.interface, n.metered) == ("ethernet", "en:x", False)


def netdev(
    m: Machine, name: str, operstate: str, *, type_: str = "1", wireless: bool = False, device: bool = True
) -> None:
    base = f"sys/class/net/{name}"
    m.file(f"{base}/operstate", operstate)
    m.file(f"{base}/type", type_)
    if wireless:
        m.dir(f"{base}/wireless")
    if device:
        m.dir(f"{base}/device")


def test_sysfs_wifi_when_nm_not_running(m: Machine) -> None:
    m.program("nmcli", {}, default_rc=8)  # nmcli present but NetworkManager down: exits non-zero
    netdev(m, "lo", "unknown", type_="772", device=False)
    netdev(m, "wlan0", "up", wireless=True)
    netdev(m, "eth0", "down")
    n = m.probes().network()
    assert (n.kind, n.interface, n.metered, n.source) == ("wifi", "wlan0", None, "/sys/class/net")
    assert n.sentence == "On Wi-Fi (wlan0), not known to be metered or not (from /sys/class/net)."


def test_sysfs_ethernet(m: Machine) -> None:
    netdev(m, "enp3s0", "up")
    netdev(m, "wlan0", "down", wireless=True)
    netdev(m, "docker0", "up", device=False)  # a bridge: type 1 too, but no hardware behind it
    n = m.probes().network()
    assert (n.kind, n.interface) == ("ethernet", "enp3s0")


def test_sysfs_virtual_only_is_none(m: Machine) -> None:
    netdev(m, "docker0", "up", device=False)
    netdev(m, "eth0", "down")
    assert m.probes().network().kind == "none"


def test_sysfs_cellular(m: Machine) -> None:
    netdev(m, "rmnet_data0", "up", type_="530", device=False)
    netdev(m, "wlan0", "down", wireless=True)
    n = m.probes().network()
    assert (n.kind, n.metered, n.metered_assumed) == ("cellular", True, True)


def test_sysfs_unknown_operstate_with_carrier_counts_as_up(m: Machine) -> None:
    netdev(m, "wwan0", "unknown", type_="65534", device=False)
    m.file("sys/class/net/wwan0/carrier", "1")
    netdev(m, "lo", "unknown", type_="772", device=False)
    m.file("sys/class/net/lo/carrier", "1")
    n = m.probes().network()
    assert (n.kind, n.interface) == ("cellular", "wwan0")


def test_battery_level_clamped(m: Machine) -> None:
    battery_dir(m, "BAT0", "101", "Full")
    assert m.probes().battery().level == 100


def test_termux_float_percentage(m: Machine) -> None:
    m.program("termux-battery-status", {"": json.dumps({"percentage": 64.0, "status": "CHARGING"})})
    b = m.probes().battery()
    assert (b.level, b.charging) == (64, True)


# --- nothing at all ----------------------------------------------------------------------------------


def test_everything_absent_is_unknown(m: Machine) -> None:
    c = m.probes().all()
    assert c.battery.value == "unknown" and c.battery.level is None and c.battery.charging is None
    assert c.power_saver.value == "unknown"
    assert c.network.kind == "unknown" and c.network.metered is None
    assert c.battery.sentence.startswith("Battery unknown:")
    assert c.power_saver.sentence.startswith("Power saver unknown:")
    assert c.network.sentence.startswith("Network unknown:")
    assert all(s.endswith(".") for s in c.sentences())


def test_missing_program_is_none(m: Machine) -> None:
    assert SubprocessRunner(path=str(m.bin)).run(["no-such-program"]) is None


def test_hung_program_is_treated_as_absent(m: Machine) -> None:
    p = m.bin / "slow"
    p.write_text("#!/bin/sh\nwhile :; do :; done\n")  # PATH holds only bin: no sleep(1)
    p.chmod(0o755)
    assert SubprocessRunner(path=str(m.bin)).run(["slow"], timeout=0.2) is None


def test_default_probes_on_this_machine_never_raise() -> None:
    c = Probes().all()
    assert all(s for s in c.sentences())


def test_default_probes_follow_the_environment(m: Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    """CAMROLL_PROBE_ROOT / CAMROLL_PROBE_PATH redirect the default probes (containers, the CLI in tests)."""
    battery_dir(m, "BAT0", "14", "Discharging")
    m.program("nmcli", {})
    monkeypatch.setenv("CAMROLL_PROBE_ROOT", str(m.root))
    monkeypatch.setenv("CAMROLL_PROBE_PATH", str(m.bin))
    probes = Probes()
    assert probes.battery().level == 14
    assert probes.root == m.root


def test_psutil_battery_reading() -> None:
    from collections import namedtuple

    from camroll.agent.settings.conditions.battery import from_psutil

    Sbattery = namedtuple("Sbattery", "percent secsleft power_plugged")
    b = from_psutil(lambda: Sbattery(14.2, 3000, False))
    assert b is not None and (b.level, b.charging, b.source) == (14, False, "psutil")
    assert from_psutil(lambda: None) is None  # no battery known to psutil: the other sources decide
    plugged_unknown = from_psutil(lambda: Sbattery(80, -2, None))
    assert plugged_unknown is not None and plugged_unknown.charging is None
