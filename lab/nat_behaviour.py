"""NAT behaviours of a lab router (RFC 4787) and how Linux netfilter gives them (pure).

Shared by compose.yaml's reader (:mod:`lab.topology.model`), the scenario language's ``nat`` step,
the controller and the router itself (:mod:`lab.endpoints.router.nat`), so a name means the same
everywhere.

What netfilter really does, measured on this lab's 6.18 kernel (``tests/integration/
test_nat_behaviour.py``; one client socket towards the server's two addresses):

- MASQUERADE without a flag keeps the inside port when the outside tuple is free
  (``get_unique_tuple``): both destinations see the same outside port, endpoint-independent
  mapping (§4.1.1) with port preservation (§4.2.1). After an idle expiry the new entry gets the
  same port again, so the server sees no rebinding.
- ``--random`` and ``--random-fully`` draw a port for every new conntrack entry: each destination
  gets its own outside port (address-and-port-dependent mapping, §4.1.3), and a new entry after
  an expiry gets a new one. Both behave alike on this kernel; ``--random-fully`` says the intent.

Linux cannot give the other two pairs with MASQUERADE (random ports that stay the same per inside
socket, or preserved ports that change per destination), so they are refused by name.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

EIM = "endpoint-independent"
APDM = "address-and-port-dependent"
MAPPINGS = (EIM, APDM)
PORTS = ("preserve", "random")

# (mapping, ports) -> MASQUERADE's options: the only pairs Linux gives.
MASQUERADE_FLAGS: dict[tuple[str, str], tuple[str, ...]] = {
    (EIM, "preserve"): (),
    (APDM, "random"): ("--random-fully",),
}
# What a behaviour given alone implies (the other half of its only pair).
IMPLIED: dict[str, str] = {EIM: "preserve", APDM: "random", "preserve": EIM, "random": APDM}

# The comment of the router's CT rule in raw PREROUTING that attaches every LAN UDP binding to the
# timeout policy TIMEOUT_POLICY (nfnetlink_cttimeout), which holds the sysctls' values until a
# scenario's `nat` step changes them.
TIMEOUT_TAG = "lab-nat-timeout"
TIMEOUT_POLICY = "lab-udp"
CHANGED_MARKER = "/run/lab/nat-changed"
MAX_TIMEOUT_S = 86_400

# compose.yaml: the router's environment and sysctls that set its behaviour.
ENV_MAPPING = "NAT_MAPPING"
ENV_PORTS = "NAT_PORTS"
SYSCTL_UDP = "net.netfilter.nf_conntrack_udp_timeout"
SYSCTL_UDP_STREAM = "net.netfilter.nf_conntrack_udp_timeout_stream"


@dataclass(frozen=True)
class NatBehaviour:
    """One router's NAT: mapping (RFC 4787 §4.1), port choice (§4.2), UDP binding timeouts (§4.3).

    ``udp_timeout`` is conntrack's timeout before a reply is seen, ``udp_timeout_stream`` after
    (both whole seconds; every packet either way restarts the timer, REQ-6).
    """

    mapping: str = APDM
    ports: str = "random"
    udp_timeout: int = 30
    udp_timeout_stream: int = 120

    def __post_init__(self) -> None:
        masquerade_flags(self.mapping, self.ports)
        for name in ("udp_timeout", "udp_timeout_stream"):
            check_timeout(getattr(self, name), name)

    @property
    def flags(self) -> tuple[str, ...]:
        return masquerade_flags(self.mapping, self.ports)

    def describe(self) -> str:
        return (f"{self.mapping} mapping, {self.ports} ports, UDP binding {self.udp_timeout} s "
                f"({self.udp_timeout_stream} s once replied)")


def check_timeout(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TIMEOUT_S:
        raise ValueError(f"{name}: {value!r} is not allowed; allowed: whole seconds 1-{MAX_TIMEOUT_S}")
    return value


def mapping_name(value: object) -> str:
    if value not in MAPPINGS:
        raise ValueError(f"{value!r} is not allowed; allowed: {', '.join(MAPPINGS)}")
    return str(value)


def ports_name(value: object) -> str:
    if value not in PORTS:
        raise ValueError(f"{value!r} is not allowed; allowed: {', '.join(PORTS)}")
    return str(value)


def masquerade_flags(mapping: str, ports: str) -> tuple[str, ...]:
    """MASQUERADE's options for a behaviour; one line naming the pair when Linux cannot give it."""
    mapping_name(mapping)
    ports_name(ports)
    try:
        return MASQUERADE_FLAGS[(mapping, ports)]
    except KeyError:
        pairs = "; ".join(f"mapping {m} with ports {p}" for m, p in MASQUERADE_FLAGS)
        raise ValueError(f"mapping {mapping} with ports {ports}: Linux MASQUERADE cannot give it; allowed: "
                         f"{pairs}") from None


def resolve(mapping: str | None, ports: str | None, current: NatBehaviour) -> tuple[str, str]:
    """The pair a partial change means: a half given alone brings its only partner."""
    if mapping is None and ports is None:
        return current.mapping, current.ports
    if mapping is None:
        assert ports is not None
        return IMPLIED[ports_name(ports)], ports
    if ports is None:
        return mapping, IMPLIED[mapping_name(mapping)]
    return mapping, ports


def seconds(value: float) -> int:
    """A scenario duration -> conntrack's whole seconds (it keeps no finer timer)."""
    if value != int(value) or not 1 <= value <= MAX_TIMEOUT_S:
        raise ValueError(f"{value:g}s is not allowed; allowed: whole seconds 1-{MAX_TIMEOUT_S} "
                         "(conntrack counts seconds)")
    return int(value)


class ComposeValueError(ValueError):
    """A router's NAT value in compose.yaml is wrong; ``field`` is its path under the service."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def from_compose(environment: dict[str, str], sysctls: dict[str, str]) -> NatBehaviour:
    """A router's behaviour from its compose service (``environment``, ``sysctls``); the kernel's own
    defaults where a sysctl is not set. Raises :class:`ComposeValueError` naming the field."""
    defaults = NatBehaviour()
    values: dict[str, object] = {}
    for name, field, given, read in (
            ("mapping", f"environment.{ENV_MAPPING}", environment.get(ENV_MAPPING), mapping_name),
            ("ports", f"environment.{ENV_PORTS}", environment.get(ENV_PORTS), ports_name),
            ("udp_timeout", f"sysctls.{SYSCTL_UDP}", sysctls.get(SYSCTL_UDP), _whole_seconds),
            ("udp_timeout_stream", f"sysctls.{SYSCTL_UDP_STREAM}", sysctls.get(SYSCTL_UDP_STREAM), _whole_seconds)):
        if given is None:
            continue
        try:
            values[name] = read(given)
        except ValueError as exc:
            raise ComposeValueError(field, str(exc)) from None
    mapping, ports = resolve(values.get("mapping"), values.get("ports"), defaults)  # type: ignore[arg-type]
    try:
        masquerade_flags(mapping, ports)
    except ValueError as exc:
        raise ComposeValueError(f"environment.{ENV_MAPPING}", str(exc)) from None
    return NatBehaviour(mapping, ports, int(values.get("udp_timeout", defaults.udp_timeout)),  # type: ignore[call-overload]
                        int(values.get("udp_timeout_stream", defaults.udp_timeout_stream)))  # type: ignore[call-overload]


def _whole_seconds(value: object) -> int:
    text = str(value)
    if not text.isdigit() or not 1 <= int(text) <= MAX_TIMEOUT_S:
        raise ValueError(f"{text!r} is not allowed; allowed: whole seconds 1-{MAX_TIMEOUT_S}")
    return int(text)


# --- the conntrack timeout policy, as nfnetlink_cttimeout takes it --------------------------------
# /proc/sys is read-only in a container (moby's oci defaults), and the image has no nft or nfct, so
# the router sends the one netlink message nfct would: IPCTNL_MSG_TIMEOUT_NEW for UDP.

NETLINK_NETFILTER = 12
_SUBSYS_CTTIMEOUT = 8
_MSG_TIMEOUT_NEW = 0
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_REPLACE, _NLM_F_CREATE = 0x1, 0x4, 0x100, 0x400
_NLMSG_ERROR = 2
_NLA_F_NESTED = 0x8000
_CTA_TIMEOUT_NAME, _CTA_TIMEOUT_L3PROTO, _CTA_TIMEOUT_L4PROTO, _CTA_TIMEOUT_DATA = 1, 2, 3, 4
_CTA_TIMEOUT_UDP_UNREPLIED, _CTA_TIMEOUT_UDP_REPLIED = 1, 2


def _attribute(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def timeout_policy_message(name: str, unreplied: int, replied: int, sequence: int = 1) -> bytes:
    """The netlink request that creates (or replaces) a UDP timeout policy ``name``."""
    timeouts = (_attribute(_CTA_TIMEOUT_UDP_UNREPLIED, struct.pack(">I", unreplied))
                + _attribute(_CTA_TIMEOUT_UDP_REPLIED, struct.pack(">I", replied)))
    attributes = (_attribute(_CTA_TIMEOUT_NAME, name.encode() + b"\0")
                  + _attribute(_CTA_TIMEOUT_L3PROTO, struct.pack(">H", socket.AF_INET))
                  + _attribute(_CTA_TIMEOUT_L4PROTO, struct.pack("B", socket.IPPROTO_UDP))
                  + _attribute(_CTA_TIMEOUT_DATA | _NLA_F_NESTED, timeouts))
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0) + attributes
    flags = _NLM_F_REQUEST | _NLM_F_ACK | _NLM_F_CREATE | _NLM_F_REPLACE
    return struct.pack("=IHHII", 16 + len(body), (_SUBSYS_CTTIMEOUT << 8) | _MSG_TIMEOUT_NEW, flags, sequence, 0) + body


def netlink_errno(reply: bytes) -> int:
    """0 for an acknowledgement, else the (positive) errno the kernel answered."""
    _, kind = struct.unpack_from("=IH", reply)
    return -struct.unpack_from("=i", reply, 16)[0] if kind == _NLMSG_ERROR else 0
