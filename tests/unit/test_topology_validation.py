"""`lab up` validates the topology before it changes anything (pure: on a recorded compose config).

The overrides themselves (environment, .env) are checked before Compose runs: tests/unit/test_bad_input.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lab.topology.load import COMPOSE_FILE
from lab.topology.model import topology_from_config, validate
from lab.topology.overrides import KINDS, check_overrides, compose_variables, field_variables, read_dotenv

CONFIG = json.loads((Path(__file__).resolve().parents[1] / "data" / "runs" / "recorded-rebinding" /
                     "topology.json").read_text())
VARIABLES = compose_variables(COMPOSE_FILE.read_text())


def problems(edit) -> list[str]:
    config = copy.deepcopy(CONFIG)
    edit(config)
    return validate(topology_from_config(config, field_variables(VARIABLES)))


def subnet(name: str, value: str):
    return lambda c: c["networks"][name]["ipam"]["config"][0].update(subnet=value)


def test_the_recorded_topology_is_valid():
    assert validate(topology_from_config(CONFIG)) == []


def test_every_variable_of_compose_yaml_has_a_kind_its_values_are_checked_against():
    assert VARIABLES and all(v.kind in KINDS for v in VARIABLES.values()), \
        {v.name: v.fields for v in VARIABLES.values() if v.kind not in KINDS}
    assert VARIABLES["HOME_SUBNET"].kind == "subnet" and VARIABLES["SERVER_IP"].kind == "address"
    assert VARIABLES["LAB_IMAGE"].kind == "image" and VARIABLES["SERVER_IP"].default == "10.203.100.10"


def test_a_subnet_that_does_not_parse_is_named():
    found = problems(subnet("home", "999.1.1.0/24"))
    assert found == ["network home: subnet '999.1.1.0/24' (set by HOME_SUBNET): not a network in CIDR form "
                     f"(address/prefix); allowed: {KINDS['subnet'].allowed}"]


@pytest.mark.parametrize("value, reason", [
    ("fd00:1::/64", "an IPv6 network in an IPv4 field"),
    ("127.0.0.0/24", "a loopback, link-local, multicast or reserved range cannot be a Docker network"),
    ("10.203.1.0/30", "too small"),
    ("10.203.1.7/24", "its host bits are set (the network is 10.203.1.0/24)"),
])
def test_a_subnet_docker_cannot_use_is_refused_with_its_reason(value, reason):
    found = problems(subnet("home", value))
    assert found[0].startswith(f"network home: subnet {value!r} (set by HOME_SUBNET): {reason}"), found


def test_overlapping_lab_subnets_are_refused():
    home = CONFIG["networks"]["home"]["ipam"]["config"][0]["subnet"]
    found = problems(subnet("cellular", home))
    assert any("cellular" in p and "home" in p and "overlap" in p for p in found), found


def test_an_address_outside_its_subnet_is_refused():
    found = problems(lambda c: c["x-lab"]["client_addresses"].update(home="10.99.0.10"))
    assert found == ["x-lab.client_addresses.home: 10.99.0.10 (set by CLIENT_HOME_IP) is not inside home's subnet "
                     "10.203.1.0/24"]


@pytest.mark.parametrize("value", ["not-an-ip", "10.203.1.300"])
def test_a_malformed_address_is_refused(value):
    found = problems(lambda c: c["x-lab"]["gateways"]["home"].update(address=value))
    assert found == [f"x-lab.gateways.home (router home-router): {value!r} (set by HOME_ROUTER_LAN_IP): not an IP "
                     f"address; allowed: {KINDS['address'].allowed}"]


@pytest.mark.parametrize("value, role", [("10.203.100.0", "network address"), ("10.203.100.255", "broadcast address"),
                                         ("10.203.100.1", "bridge's own address (Docker's gateway)")])
def test_an_address_the_bridge_keeps_is_refused(value, role):
    def edit(c):
        c["services"]["server"]["networks"]["internet"]["ipv4_address"] = value
        c["x-lab"]["server"]["address"] = value

    found = problems(edit)
    assert f"service server on internet: {value} (set by SERVER_IP) is internet's {role}; allowed: a host of " \
           "10.203.100.0/24 other than 10.203.100.0, 10.203.100.1 and 10.203.100.255" in found, found


def test_two_hosts_with_one_address_are_refused():
    found = problems(lambda c: c["x-lab"]["client_addresses"].update(cellular="10.203.2.2"))
    assert found == ["10.203.2.2 on cellular is given to 2 hosts: service carrier-nat on cellular (set by "
                     "CARRIER_NAT_LAN_IP); x-lab.client_addresses.cellular (set by CLIENT_CELLULAR_IP); every host "
                     "needs an address of its own"]


def test_compose_yaml_defaults_are_allowed_values():
    assert {name: KINDS[v.kind].check(v.default) for name, v in VARIABLES.items()} == dict.fromkeys(VARIABLES)


def test_a_well_formed_dotenv_is_read_as_compose_reads_it():
    text = ("# lab overrides\n\nexport HOME_SUBNET=10.203.1.0/24\nSERVER_IP = 10.203.100.11  # the server\n"
            "LAB_IMAGE=\"quic-migration-lab:dev\"\nCOMPOSE_PROJECT_NAME=quic-lab\nCLIENT_HOME_IP\nOFFICE_SUBNET=\n")
    settings, problems = read_dotenv(text)
    assert problems == []
    assert [(s.name, s.value, s.where) for s in settings] == [
        ("HOME_SUBNET", "10.203.1.0/24", ".env:3"), ("SERVER_IP", "10.203.100.11", ".env:4"),
        ("LAB_IMAGE", "quic-migration-lab:dev", ".env:5"), ("COMPOSE_PROJECT_NAME", "quic-lab", ".env:6"),
        ("OFFICE_SUBNET", "", ".env:8")]
    assert check_overrides(VARIABLES, {"PATH": "/bin", "HOME": "/root"}, settings) == []  # the environment's own


def test_the_environment_wins_over_dotenv_as_in_compose():
    settings, _ = read_dotenv("SERVER_IP=not-an-address\n")
    assert check_overrides(VARIABLES, {"SERVER_IP": "10.203.100.11"}, settings) == []
    assert check_overrides(VARIABLES, {"SERVER_IP": ""}, []) == []  # empty: the default (${VAR:-default})
