"""Where the server's alert sends may connect: an allow-list of apprise schemes and public addresses.

Alert URLs come from users, so without a rule a user could make the server call its own admin ports,
the cloud metadata service or anything else on the private network and read the answers back (a
server-side request forgery).  The rule is applied twice:

- when a URL is added: its scheme must be on the list and its host, resolved, must be public;
- while it is sent: every ``connect``/``sendto`` a sending thread makes is checked against the same
  rule by an audit hook (:func:`guarded`), whatever host name, redirect or SMTP relay led there.  A name
  that resolved to a public address when it was added and to 127.0.0.1 now (DNS rebinding) is refused
  at the socket, and nothing the plugin does can skip the check.

Admins widen the rule with environment variables (README, "Backup alerts"): more schemes, networks
allowed although private (``CAMROLL_NOTIFY_ALLOW_NETWORKS=192.168.1.0/24``), or every address
(``CAMROLL_NOTIFY_ALLOW_PRIVATE=1``)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMES_ENV = "CAMROLL_NOTIFY_SCHEMES"
NETWORKS_ENV = "CAMROLL_NOTIFY_ALLOW_NETWORKS"
PRIVATE_ENV = "CAMROLL_NOTIFY_ALLOW_PRIVATE"

# Services that deliver a message to a person, where the URL's host is either fixed by the service
# (Telegram, Discord, Slack, Pushover) or a server of the user's own (ntfy, Gotify, Matrix, SMTP).  The
# generic json/xml/form webhooks can call any URL with any method and headers, so only their https
# forms are allowed, and like everything else only towards public addresses.
DEFAULT_SCHEMES: frozenset[str] = frozenset({
    "ntfy", "ntfys", "mailto", "mailtos", "tgram", "discord", "slack", "gotify", "gotifys", "pover",
    "matrix", "matrixs", "jsons", "xmls", "forms",
})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Refusal = Literal["loopback", "private", "link-local", "multicast", "reserved", "unspecified", "not public"]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressRefused(PermissionError):
    """A sending thread tried to reach an address the policy does not allow."""

    def __init__(self, address: str, why: Refusal | Literal["not an IP address"]) -> None:
        super().__init__(f"camroll does not send alerts to {address} ({why})")
        self.address = address
        self.why = why


@dataclass(frozen=True)
class EgressPolicy:
    schemes: frozenset[str] = DEFAULT_SCHEMES
    allow_networks: tuple[Network, ...] = ()
    allow_private: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EgressPolicy:
        """The policy the admin chose with the ``CAMROLL_NOTIFY_*`` variables; ValueError naming a bad one."""
        env = os.environ if env is None else env
        schemes = DEFAULT_SCHEMES
        if raw := env.get(SCHEMES_ENV, "").strip():
            # "default,json" adds to the list; a list without "default" replaces it.
            named = {s.strip().lower().removesuffix("://") for s in raw.split(",") if s.strip()}
            schemes = frozenset(named - {"default"}) | (DEFAULT_SCHEMES if "default" in named else frozenset())
        networks: list[Network] = []
        for part in env.get(NETWORKS_ENV, "").split(","):
            if part.strip():
                try:
                    networks.append(ipaddress.ip_network(part.strip(), strict=False))
                except ValueError:
                    raise ValueError(f"{NETWORKS_ENV}: '{part.strip()}' is not a network; write it like "
                                     "192.168.1.0/24 or 10.0.0.5/32") from None
        private = env.get(PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
        return cls(schemes=schemes, allow_networks=tuple(networks), allow_private=private)

    def refusal(self, address: str) -> Refusal | None:
        """Why ``address`` (an IP literal) may not be reached, or None if it may."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if self.allow_private or any(ip in net for net in self.allow_networks):
            return None
        return non_public(ip)


def non_public(ip: Address) -> Refusal | None:
    """What kind of non-public address ``ip`` is (IPv4 inside IPv6 forms checked as IPv4), or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and (why := non_public(embedded)):
            return why
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not public"
    return None


def resolve(host: str, port: int | None) -> list[str]:
    """Every address ``host`` resolves to (an IP literal resolves to itself); OSError if none."""
    infos = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


# --- the send-time guard ---------------------------------------------------------------------------
_state = threading.local()
_install_lock = threading.Lock()
_installed = False


@dataclass
class _Guard:
    policy: EgressPolicy
    refused: list[EgressRefused] = field(default_factory=list)


_SOCKET_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})


def _check_address(guard: _Guard, address: object) -> None:
    why: Refusal | Literal["not an IP address"] | None
    if not isinstance(address, tuple) or not address or not isinstance(address[0], str):
        shown, why = repr(address), "not an IP address"  # a Unix socket or something stranger
    else:
        shown = address[0]
        try:
            why = guard.policy.refusal(shown)
        except ValueError:
            # A socket given a host name resolves it in C, out of this hook's sight: insist on addresses.
            why = "not an IP address"
    if why is None:
        return
    error = EgressRefused(shown, why)
    guard.refused.append(error)
    raise error


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # Called for every audit event in the process: return at once unless this thread is sending alerts.
    guard: _Guard | None = getattr(_state, "guard", None)
    if guard is None or event not in _SOCKET_EVENTS:
        return
    if event == "socket.sendmsg" and args[1] is None:  # on a connected socket, whose connect was checked
        return
    _check_address(guard, args[1])


def _install() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            # An audit hook cannot be removed again; it costs one attribute lookup per event elsewhere.
            sys.addaudithook(_audit)
            _installed = True


@contextlib.contextmanager
def guarded(policy: EgressPolicy) -> Iterator[list[EgressRefused]]:
    """Within the block, this thread's sockets may reach only what ``policy`` allows; yields the list of
    refusals (so a failed send can say why).  Threads the block starts are not covered: apprise sends a
    single URL on the calling thread."""
    _install()
    guard = _Guard(policy)
    previous = getattr(_state, "guard", None)
    _state.guard = guard
    try:
        yield guard.refused
    finally:
        _state.guard = previous
