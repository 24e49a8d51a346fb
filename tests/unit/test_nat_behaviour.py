"""lab.nat_behaviour and the nat/idle steps, pure: the behaviours Linux gives, compose.yaml's values,
the netlink message of the timeout policy, and the scenario language's one-line errors."""

from __future__ import annotations

import socket
import struct

import pytest

from lab import nat_behaviour as nb
from lab.control.actions import nat_restore
from lab.scenario.model import TopologyNames
from lab.scenario.schema import check_scenario_text
from lab.topology.load import load_topology

TOPOLOGY = TopologyNames(networks=frozenset({"home", "cellular", "office", "internet", "datacenter"}),
                         client_networks=frozenset({"home", "cellular", "office"}),
                         routers=frozenset({"home-router", "carrier-nat", "office-router"}), default_network="home")


@pytest.mark.parametrize("mapping, ports, flags", [(nb.EIM, "preserve", ()), (nb.APDM, "random", ("--random-fully",))])
def test_the_two_behaviours_masquerade_gives(mapping, ports, flags):
    assert nb.masquerade_flags(mapping, ports) == flags
    assert nb.NatBehaviour(mapping, ports).flags == flags


@pytest.mark.parametrize("mapping, ports", [(nb.EIM, "random"), (nb.APDM, "preserve")])
def test_a_pair_linux_cannot_give_is_refused_naming_the_pairs_it_can(mapping, ports):
    with pytest.raises(ValueError) as caught:
        nb.masquerade_flags(mapping, ports)
    assert str(caught.value) == (
        f"mapping {mapping} with ports {ports}: Linux MASQUERADE cannot give it; allowed: mapping "
        "endpoint-independent with ports preserve; mapping address-and-port-dependent with ports random")


def test_a_half_given_alone_brings_its_partner_and_nothing_keeps_the_current():
    current = nb.NatBehaviour(nb.EIM, "preserve")
    assert nb.resolve(None, "random", current) == (nb.APDM, "random")
    assert nb.resolve(nb.EIM, None, nb.NatBehaviour()) == (nb.EIM, "preserve")
    assert nb.resolve(None, None, current) == (nb.EIM, "preserve")


def test_compose_values_are_read_and_a_wrong_one_names_its_field():
    assert nb.from_compose({}, {}) == nb.NatBehaviour()
    got = nb.from_compose({"NAT_MAPPING": nb.EIM}, {nb.SYSCTL_UDP: "5", nb.SYSCTL_UDP_STREAM: "7"})
    assert got == nb.NatBehaviour(nb.EIM, "preserve", 5, 7)
    with pytest.raises(nb.ComposeValueError) as caught:
        nb.from_compose({"NAT_PORTS": "sticky"}, {})
    assert caught.value.field == "environment.NAT_PORTS"
    assert str(caught.value) == ("environment.NAT_PORTS: 'sticky' is not allowed; allowed: preserve, random")
    with pytest.raises(nb.ComposeValueError, match=r"sysctls.net.netfilter.nf_conntrack_udp_timeout: '0' .* 1-86400"):
        nb.from_compose({}, {nb.SYSCTL_UDP: "0"})


def test_compose_yaml_gives_every_router_its_default_behaviour():
    topology = load_topology()
    assert set(topology.nat) == set(topology.routers)
    assert all(b == nb.NatBehaviour(nb.APDM, "random", 30, 120) for b in topology.nat.values())


def test_the_timeout_policy_message_is_what_nfnetlink_cttimeout_reads():
    message = nb.timeout_policy_message("lab-udp", 5, 7, sequence=9)
    length, kind, flags, sequence, _ = struct.unpack_from("=IHHII", message)
    assert length == len(message) and kind == (8 << 8) | 0 and sequence == 9
    assert flags == 0x1 | 0x4 | 0x100 | 0x400  # request, ack, replace, create
    attributes, offset = {}, 20  # after nlmsghdr and nfgenmsg
    while offset < len(message):
        size, code = struct.unpack_from("=HH", message, offset)
        attributes[code & 0x7FFF] = message[offset + 4: offset + size]
        offset += (size + 3) & ~3
    assert attributes[1] == b"lab-udp\0"
    assert struct.unpack(">H", attributes[2]) == (socket.AF_INET,) and attributes[3] == bytes([socket.IPPROTO_UDP])
    nested = attributes[4]
    assert struct.unpack_from(">I", nested, 4) == (5,) and struct.unpack_from(">I", nested, 12) == (7,)


def test_an_acknowledgement_and_an_error_reply():
    ack = struct.pack("=IHHII", 36, 2, 0, 1, 0) + struct.pack("=i", 0) + b"\0" * 16
    refused = struct.pack("=IHHII", 36, 2, 0, 1, 0) + struct.pack("=i", -2) + b"\0" * 16
    assert nb.netlink_errno(ack) == 0 and nb.netlink_errno(refused) == 2


def test_the_reset_starts_python_only_after_a_change():
    script = nat_restore(load_topology(), "carrier-nat")
    assert script.startswith(f"{{ [ ! -e {nb.CHANGED_MARKER} ] && iptables -w -t nat -S POSTROUTING | grep -q -- "
                             "'-j MASQUERADE --random-fully$'; } || python -m lab.endpoints.router.nat reset")


SCENARIO = """name: x
description: |
  a
  b
  c
workload: {{transport: quic, kind: {kind}, {extra}migration: passive}}
steps:
{steps}
expect: [connection_survived]
"""


def errors(steps: str, kind: str = "echo", extra: str = "duration: 10s, ") -> list[str]:
    _, found = check_scenario_text(SCENARIO.format(kind=kind, extra=extra, steps=steps), "x.yaml", TOPOLOGY)
    return [str(e) for e in found]


def test_nat_and_idle_steps_that_are_right_pass():
    assert errors("  - {action: nat, router: carrier-nat, udp_timeout: 5s}\n"
                  "  - {at: 2s, action: idle, duration: 3s, keepalive: 1s}\n"
                  "  - {action: nat, router: home-router, mapping: endpoint-independent, ports: preserve}") == []


@pytest.mark.parametrize("step, message", [
    ("{action: nat, router: carrier-nat}", "steps[0]: nat needs at least one of mapping, ports, udp_timeout"),
    ("{action: nat, router: carrier-nat, mapping: full-cone}",
     "steps[0].mapping: 'full-cone' is not allowed; allowed: endpoint-independent, address-and-port-dependent"),
    ("{action: nat, router: carrier-nat, mapping: endpoint-independent, ports: random}",
     "steps[0].ports: mapping endpoint-independent with ports random: Linux MASQUERADE cannot give it"),
    ("{action: nat, router: carrier-nat, udp_timeout: 1500ms}",
     "steps[0].udp_timeout: 1.5s is not allowed; allowed: whole seconds 1-86400"),
    ("{action: nat, router: home, udp_timeout: 5s}", "steps[0].router: 'home' is not allowed"),
])
def test_a_wrong_nat_step_is_one_line_naming_the_field(step, message):
    found = errors(f"  - {step}")
    assert len(found) == 1 and message in found[0], found


def test_idle_needs_the_quic_echo():
    found = errors("  - {action: idle, duration: 2s}", kind="download", extra="size: 1MB, ")
    assert len(found) == 1 and "steps[0].action: idle pauses the QUIC echo" in found[0], found
