"""The dual-stack lab's pure parts (issue 15): the topology's IPv6 half and its validation, the
client's IPv6 policy routing, the routers' IPv6 firewall, the host guard and what `down` restores,
the 464XLAT translators' configuration, and the capture checks across families. Each check is also
shown failing on a wrong input (a mutation)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lab.addresses import host_of
from lab.control import host6
from lab.endpoints.router.nat import firewall6_rules, host_addresses6, nat64_rules6
from lab.endpoints.shared import tayga
from lab.endpoints.shared.netconf import route_script
from lab.topology.load import COMPOSE_FILE
from lab.topology.model import topology_from_config, validate
from lab.topology.overrides import KINDS, compose_variables, field_variables
from lab.verify import capture_checks as cc
from tests.unit.test_capture_checks import Trace

CONFIG = json.loads((Path(__file__).resolve().parents[1] / "data" / "topology-dual-stack.json").read_text())
VARIABLES = compose_variables(COMPOSE_FILE.read_text())


def problems(edit) -> list[str]:
    config = copy.deepcopy(CONFIG)
    edit(config)
    return validate(topology_from_config(config, field_variables(VARIABLES)))


# --- topology ------------------------------------------------------------------------------------

def test_every_network_is_dual_stack_and_the_topology_reads_both_families():
    topology = topology_from_config(CONFIG)
    assert validate(topology) == []
    assert all(n.subnet6 and n.subnet6.endswith("::/64") for n in topology.networks.values())
    assert topology.networks["home"].bridge_address6 == "fd00:203:1::1"
    assert topology.gateways["home"].address6 == "fd00:203:1::2" and not topology.gateways["home"].ipv6_only
    assert topology.gateways["cellular6"].ipv6_only and topology.gateways["cellular6"].router == "carrier-nat64"
    assert topology.server_address6 == "fd00:203:100::10"
    assert topology.services["server"].addresses6 == {"internet": "fd00:203:100::10",
                                                      "datacenter": "fd00:203:200::10"}
    assert topology.network_of("fd00:203:2::10") == "cellular"  # contains() knows both families
    assert topology.address_on("home", 0x50, version=6) == "fd00:203:1::50"


def test_the_nat64_of_the_topology_synthesizes_rfc6052_addresses():
    xlat = topology_from_config(CONFIG).nat64
    assert xlat is not None
    assert xlat.synthesize("10.203.100.10") == "fd00:203:64::acb:640a"  # prefix::10.203.100.10
    assert xlat.clat_address6 == "fd00:203:c1a7::1"


def test_ipv6_variables_have_kinds_and_their_values_are_checked():
    assert VARIABLES["HOME_SUBNET6"].kind == "subnet6" and VARIABLES["SERVER_IP6"].kind == "address6"
    assert VARIABLES["NAT64_PREFIX"].kind == "prefix96" and VARIABLES["CLAT_PREFIX"].kind == "subnet6"
    assert KINDS["subnet6"].check("fd00:203:1::/64") is None
    for bad, reason in (("10.0.0.0/24", "an IPv4 network in an IPv6 field"), ("fd00:203:1::/80", "/48 to /64"),
                        ("2001:db8::/64", "unique local"), ("fd00:203:1::1/64", "host bits")):
        assert reason in (KINDS["subnet6"].check(bad) or ""), bad
    assert KINDS["address6"].check("fd00::10") is None
    assert "an IPv4 address in an IPv6 field" in (KINDS["address6"].check("10.0.0.1") or "")
    assert KINDS["prefix96"].check("fd00:203:64::/96") is None and KINDS["prefix96"].check("fd00:203:64::/64")


def ipv6_pool(network: str):
    return lambda c: c["networks"][network]["ipam"]["config"][1]


def test_an_ipv6_subnet_docker_cannot_use_is_named_with_its_variable():
    found = problems(lambda c: ipv6_pool("home")(c).update(subnet="fd00:203:1::/96"))
    assert found == ["network home: IPv6 subnet 'fd00:203:1::/96' (set by HOME_SUBNET6): an IPv6 lab network is "
                     f"a /48 to /64; allowed: {KINDS['subnet6'].allowed}"]


def test_overlapping_ipv6_subnets_are_refused():
    found = problems(lambda c: ipv6_pool("office")(c).update(subnet="fd00:203:1::/64"))
    assert any("overlap (IPv6)" in p and "HOME_SUBNET6" in p and "OFFICE_SUBNET6" in p for p in found), found


def test_an_ipv6_address_outside_its_subnet_or_the_bridges_own_is_refused():
    found = problems(lambda c: c["x-lab"]["client_addresses6"].update(home="fd00:203:9::10"))
    assert found == ["x-lab.client_addresses6.home: fd00:203:9::10 (set by CLIENT_HOME_IP6) is not inside home's "
                     "IPv6 subnet fd00:203:1::/64"]

    def gateway(c):
        c["services"]["server"]["networks"]["internet"]["ipv6_address"] = "fd00:203:100::1"
        c["x-lab"]["server"]["address6"] = "fd00:203:100::1"
    found = problems(gateway)
    assert found and all("bridge's own address" in p for p in found), found


def test_two_hosts_with_one_ipv6_address_are_refused_whatever_its_spelling():
    found = problems(lambda c: c["x-lab"]["client_addresses6"].update(cellular="fd00:0203:0002:0000::2"))
    assert len(found) == 1 and "is given to 2 hosts" in found[0] and "CLIENT_CELLULAR6" not in found[0], found


def test_a_nat64_pool_inside_a_lab_network_is_refused():
    found = problems(lambda c: c["x-lab"]["nat64"].update(pool="10.203.1.0/24"))
    assert found == ["x-lab.nat64.pool: 10.203.1.0/24 (set by NAT64_POOL) overlaps the lab network 10.203.1.0/24"]
    assert problems(lambda c: c["x-lab"]["nat64"].update(prefix="fd00:203:64::/64"))


def test_an_ipv4_only_config_still_loads():
    def strip(c):
        for network in c["networks"].values():
            network.pop("enable_ipv6", None)
            network["ipam"]["config"] = network["ipam"]["config"][:1]
        for service in c["services"].values():
            for attach in (service.get("networks") or {}).values():
                (attach or {}).pop("ipv6_address", None)
        c["x-lab"].pop("client_addresses6")
        c["x-lab"]["server"].pop("address6")
        c["x-lab"]["server"].pop("preferred_address6")
        for g in c["x-lab"]["gateways"].values():
            g.pop("address6")
    config = copy.deepcopy(CONFIG)
    strip(config)
    topology = topology_from_config(config)
    assert topology.networks["home"].subnet6 is None and topology.server_address6 is None
    assert validate(topology) == []


# --- routes and rules ----------------------------------------------------------------------------

def test_the_clients_ipv6_policy_routing_mirrors_ipv4s():
    v4 = route_script("10.0.1.2", [("10.0.1.10", "10.0.1.2", 101)])
    v6 = route_script("fd00:1::2", [("fd00:1::10", "fd00:1::2", 101)], family=6)
    assert len(v4) == len(v6)
    assert all(line.count("ip -6 ") == line.count("ip ") and "ip -6" in line for line in v6 if "ip " in line)
    assert v6[0].endswith("ip -6 rule add from all lookup main suppress_prefixlength 0 priority 1500")
    assert v6[-1] == "ip -6 route replace default via fd00:1::2 table 100"
    assert route_script(None, [], family=6)[-1] == "ip -6 route replace unreachable default table 100"
    clat = route_script("dev clat src 192.0.0.1", [])
    assert clat[-1] == "ip route replace default dev clat src 192.0.0.1 table 100"  # IPv4 via the CLAT


def test_a_routers_ipv6_firewall_routes_its_lan_out_and_only_replies_in():
    rules = firewall6_rules("eth0", "eth1", "fd00:1::/64", host_addresses6("fd00:1::/64", "fd00:100::/64"))
    assert ["-P", "FORWARD", "DROP"] in rules
    assert ["-A", "FORWARD", "-d", "fd00:1::1", "-j", "DROP"] in rules  # never to the host's bridge address
    assert ["-A", "FORWARD", "-d", "fd00:100::1", "-j", "DROP"] in rules
    accept = [r for r in rules if r[-1] == "ACCEPT"]
    assert accept == [["-A", "FORWARD", "-i", "eth0", "-o", "eth1", "-s", "fd00:1::/64", "-j", "ACCEPT"],
                      ["-A", "FORWARD", "-i", "eth1", "-o", "eth0", "-m", "conntrack", "--ctstate",
                       "ESTABLISHED,RELATED", "-j", "ACCEPT"]]
    # The drops come before the accepts, or a LAN host's packet to the host would pass.
    assert max(i for i, r in enumerate(rules) if r[-1] == "DROP" and "-d" in r) < rules.index(accept[0])
    assert nat64_rules6("eth0", "nat64", "fd00:c1a7::/64")[0][-3:] == ["fd00:c1a7::/64", "-j", "ACCEPT"]


def test_the_host_guard_drops_routed_ipv6_of_lab_bridges_but_not_bridged_frames():
    rules = host6.guard_rules()
    forward = rules[host6.FORWARD_CHAIN]
    assert forward[0] == ["-m", "physdev", "--physdev-is-bridged", "-j", "RETURN"]  # first: the lab's own L2
    assert ["-i", "lab-+", "-j", "DROP"] in forward and ["-o", "lab-+", "-j", "DROP"] in forward
    inbound = rules[host6.INPUT_CHAIN]
    assert inbound[-1] == ["-i", "lab-+", "-j", "DROP"] and len(inbound) == 3


@pytest.mark.parametrize("saved, current, others, wanted", [
    ({"all": "0", "default": "0"}, {"all": "1", "default": "1"}, [], {"all": "0", "default": "0"}),
    ({"all": "1", "default": "1"}, {"all": "1", "default": "1"}, [], {}),  # it was on before the lab
    ({"all": "0", "default": "0"}, {"all": "1", "default": "1"}, ["other_net"], {}),  # someone needs it
    (None, {"all": "1", "default": "1"}, [], {}),
])
def test_down_restores_what_up_found_unless_another_network_needs_forwarding(saved, current, others, wanted):
    plan = host6.restore_plan(saved, current, others)
    assert plan.values == wanted
    assert bool(plan.why) == (saved is None or bool(others))


# --- 464XLAT -------------------------------------------------------------------------------------

def test_the_nat64_and_the_clat_are_configured_as_rfc_6877_says():
    plat = tayga.plat("10.203.64.0/24", "fd00:203:64::/96", "fd00:203:c1a7::/64", "fd00:203:4::10")
    assert plat.config.splitlines() == ["tun-device nat64", "ipv4-addr 10.203.64.2", "prefix fd00:203:64::/96",
                                        "dynamic-pool 10.203.64.128/25", "data-dir /run/lab/tayga"]
    assert "ip addr replace 10.203.64.1/24 dev nat64" in plat.setup  # the pool is the router's IPv4 "LAN"
    assert "ip -6 route replace fd00:203:c1a7::/64 via fd00:203:4::10" in plat.setup  # the delegated /64
    assert plat.setup[-1].startswith("tayga --config")
    clat = tayga.clat("fd00:203:64::/96", "fd00:203:c1a7::/64")
    assert "map 192.0.0.1 fd00:203:c1a7::1" in clat.config and "ipv4-addr 192.0.0.2" in clat.config
    assert "dynamic-pool" not in clat.config  # stateless, one to one


# --- capture checks across families --------------------------------------------------------------

def test_addresses_are_one_text_across_families():
    assert cc.canonical_ip("::ffff:10.0.0.1") == "10.0.0.1"
    assert cc.canonical_ip("fd00:0203:0100:0000:0000:0000:0000:0010") == "fd00:203:100::10"
    assert cc.canonical_ip("not-an-ip") == "not-an-ip"
    assert cc.endpoint("fd00::2", 443) == "[fd00::2]:443" and cc.endpoint("::ffff:10.0.0.2", 5) == "10.0.0.2:5"


def six_trace(server="fd00:100::10", spelled=None):
    """A handshake over IPv6 and a move to a new (temporary) address of the client."""
    t = Trace()
    shown = spelled or server
    old, new = ("fd00:1::10", 5000), ("fd00:1:0:0:b5fb:f727:161a:b461", 5000)
    t._add(old, (shown, 443), "initial", "odcid", [0x06], 1200, scid="c0")
    t._add((shown, 443), old, "initial", "c0", [0x02, 0x06], 1200, scid="s0")
    t._add(old, (shown, 443), "1rtt", "s0", [0x08], 50)
    t._add(new, (shown, 443), "1rtt", "s0", [0x01], 40)
    t._add((shown, 443), new, "1rtt", "c0", [0x1A, 0x00], 100, challenge=("aa",))
    t._add(new, (shown, 443), "1rtt", "s0", [0x1B, 0x00], 1200, response=("aa",))
    return t.packets


def test_the_capture_checks_find_an_ipv6_server_however_the_capture_spells_it():
    servers = {"10.203.100.10", "fd00:100::10"}
    packets = six_trace(spelled="fd00:0100:0000:0000:0000:0000:0000:0010")
    assert cc.handshakes(packets, servers).passed
    assert cc.paths(packets, servers).passed
    # Mutation: with only the server's IPv4 address (as the judge had it) nothing is the server's.
    assert not cc.paths(packets, {"10.203.100.10"}).passed


def test_the_summary_writes_ipv6_endpoints_as_the_events_do():
    """cross_checks compares these with the server's events ("[v6]:port", lab.events.normalise_address);
    "fd00:100::10:443" (the form before) is no address host_of can split."""
    summary = cc.summarize(six_trace(), {"fd00:100::10"})
    challenge = summary["path_challenges"][0]
    assert challenge["src"] == "[fd00:100::10]:443"
    assert challenge["dst"] == "[fd00:1::b5fb:f727:161a:b461]:5000"
    assert host_of(challenge["src"]) == "fd00:100::10"
    assert host_of("fd00:100::10:443") != "fd00:100::10"  # the mutation: unbracketed, the check found no server


def test_a_routed_ipv6_flow_is_no_nat_mapping_but_a_natted_one_is():
    """The router skips conntrack entries whose reply goes back to the inside address (no mapping)."""
    from lab.endpoints.router.nat import parse_conntrack_event

    v6 = ("[NEW] udp      17 30 src=fd00:203:1::10 dst=fd00:203:100::10 sport=50910 dport=443 [UNREPLIED] "
          "src=fd00:203:100::10 dst=fd00:203:1::10 sport=443 dport=50910")
    v4 = ("[NEW] udp      17 30 src=10.203.1.10 dst=10.203.100.10 sport=50910 dport=443 [UNREPLIED] "
          "src=10.203.100.10 dst=10.203.100.21 sport=443 dport=37843")
    _, _, inside, outside = parse_conntrack_event(v6)
    assert inside == outside == "fd00:203:1::10:50910"
    _, _, inside, outside = parse_conntrack_event(v4)
    assert (inside, outside) == ("10.203.1.10:50910", "10.203.100.21:37843")
