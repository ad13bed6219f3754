"""What kind of network the machine is on and whether it is metered: NetworkManager, then sysfs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from camroll.agent.settings.conditions.runner import Runner, list_dir, read_text

NetworkKind = Literal["wifi", "ethernet", "cellular", "none", "unknown"]
SYS_NET = "sys/class/net"

# When several links are up, the first in this order is reported: a cable is usually preferred by the
# routing table over Wi-Fi, and Wi-Fi over a modem, so this is the link traffic most likely takes.
_PREFERENCE: tuple[NetworkKind, ...] = ("ethernet", "wifi", "cellular")

# NetworkManager device types we classify; everything else (loopback, bridge, tun, wifi-p2p, wireguard)
# carries traffic over one of these or nowhere, so it says nothing about cost.
_NM_TYPES: dict[str, NetworkKind] = {
    "ethernet": "ethernet",
    "wifi": "wifi",
    "gsm": "cellular",
    "cdma": "cellular",
    "modem": "cellular",
    "wwan": "cellular",
}

# Interface names that Android and Linux modem drivers give to mobile-data links.
_CELLULAR_PREFIXES = ("rmnet", "wwan", "ccmni")


@dataclass(frozen=True)
class Network:
    """``metered`` is True/False when a source says so, None when unknown.  A cellular link whose
    metering nobody reports is taken as metered (``metered_assumed``), because mobile data nearly
    always costs money and guessing wrong the other way could run up a bill."""

    kind: NetworkKind
    metered: bool | None
    interface: str | None
    source: str
    sentence: str
    metered_assumed: bool = False

    @property
    def value(self) -> str:
        if self.kind in ("none", "unknown"):
            return self.kind
        meter = {True: "metered", False: "not metered", None: "metering unknown"}[self.metered]
        return f"{self.kind}, {meter}"


_LABEL: dict[NetworkKind, str] = {"wifi": "Wi-Fi", "ethernet": "Ethernet", "cellular": "mobile data"}


def _connected(kind: NetworkKind, iface: str, metered: bool | None, source: str) -> Network:
    assumed = False
    if metered is None and kind == "cellular":
        metered, assumed = True, True
    if metered is True:
        meter = "metered (assumed for mobile data)" if assumed else "metered"
    elif metered is False:
        meter = "not metered"
    else:
        meter = "not known to be metered or not"
    sentence = f"On {_LABEL[kind]} ({iface}), {meter} (from {source})."
    return Network(kind, metered, iface, source, sentence, assumed)


def _split_terse(line: str) -> list[str]:
    """Split one ``nmcli -t`` line: fields are ':'-separated and a literal ':' or '\\' is escaped."""
    fields, cur, escaped = [], [], False
    for ch in line:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur))
    return fields


def parse_metered(text: str) -> bool | None:
    """NetworkManager's GENERAL.METERED: "yes", "no", "yes (guessed)", "no (guessed)" or "unknown".
    A guess counts: NetworkManager guesses "yes" from signs like a phone's hotspot, which are right."""
    for line in text.splitlines():
        value = line.split(":", 1)[1] if ":" in line else line
        word = value.strip().lower().split(" ", 1)[0]
        if word == "yes":
            return True
        if word == "no":
            return False
    return None


def from_nmcli(runner: Runner) -> Network | None:
    out = runner.run(["nmcli", "-t", "-f", "TYPE,STATE,DEVICE", "dev"])
    # Non-zero: NetworkManager is not running, so it is not managing the links; ask the kernel instead.
    if out is None or out[0] != 0:
        return None
    up: dict[NetworkKind, str] = {}
    for line in out[1].splitlines():
        fields = _split_terse(line.strip())
        if len(fields) < 3:
            continue
        kind = _NM_TYPES.get(fields[0].strip().lower())
        # "connected" and "connected (externally)"; not "connecting (...)", "disconnected", "unavailable".
        if kind is not None and fields[1].strip().lower().startswith("connected"):
            up.setdefault(kind, fields[2].strip())
    for kind in _PREFERENCE:
        if kind in up:
            iface = up[kind]
            shown = runner.run(["nmcli", "-t", "-f", "GENERAL.METERED", "dev", "show", iface])
            metered = parse_metered(shown[1]) if shown is not None and shown[0] == 0 else None
            return _connected(kind, iface, metered, "NetworkManager")
    return Network("none", None, None, "NetworkManager", "No network connection (NetworkManager reports none).")


def _classify(root: Path, name: str) -> NetworkKind | None:
    rel = f"{SYS_NET}/{name}"
    if (root / rel / "wireless").is_dir() or (root / rel / "phy80211").exists():
        return "wifi"
    if name.startswith(_CELLULAR_PREFIXES):
        return "cellular"
    # ARPHRD_ETHER (1) alone also matches docker0, veth and bridges; a physical NIC has a device link.
    if read_text(root, f"{rel}/type") == "1" and (root / rel / "device").exists():
        return "ethernet"
    return None


def from_sysfs(root: Path) -> Network | None:
    entries = list_dir(root, SYS_NET)
    if entries is None:
        return None
    up: dict[NetworkKind, str] = {}
    for d in entries:
        if d.name == "lo":
            continue
        operstate = read_text(root, f"{SYS_NET}/{d.name}/operstate")
        # Some modem and PPP drivers never set operstate and leave "unknown"; carrier 1 still means up.
        if operstate != "up" and not (operstate == "unknown" and read_text(root, f"{SYS_NET}/{d.name}/carrier") == "1"):
            continue
        kind = _classify(root, d.name)
        if kind is not None:
            up.setdefault(kind, d.name)
    for kind in _PREFERENCE:
        if kind in up:
            # The kernel knows nothing of tariffs: metered stays unknown except the mobile-data assumption.
            return _connected(kind, up[kind], None, "/" + SYS_NET)
    return Network("none", None, None, "/" + SYS_NET, f"No network connection (no link is up in /{SYS_NET}).")


def probe_network(root: Path, runner: Runner) -> Network:
    found = from_nmcli(runner)
    if found is not None:
        return found
    found = from_sysfs(root)
    if found is not None:
        return found
    return Network(
        "unknown",
        None,
        None,
        "none",
        f"Network unknown: NetworkManager (nmcli) did not answer and /{SYS_NET} is missing or unreadable.",
    )
