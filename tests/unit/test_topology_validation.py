"""`lab up` validates the topology before it changes anything (pure: on a recorded compose config)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lab.topology.model import topology_from_config, validate

CONFIG = json.loads((Path(__file__).resolve().parents[1] / "data" / "runs" / "recorded-rebinding" /
                     "topology.json").read_text())


def problems(edit) -> list[str]:
    config = copy.deepcopy(CONFIG)
    edit(config)
    return validate(topology_from_config(config))


def test_the_recorded_topology_is_valid():
    assert validate(topology_from_config(CONFIG)) == []


def test_a_subnet_that_does_not_parse_is_named():
    found = problems(lambda c: c["networks"]["home"]["ipam"]["config"][0].update(subnet="999.1.1.0/24"))
    assert found and found[0].startswith("network home: subnet '999.1.1.0/24' is not valid")
    assert "HOME_SUBNET" in found[0]


def test_overlapping_lab_subnets_are_refused():
    home = CONFIG["networks"]["home"]["ipam"]["config"][0]["subnet"]
    found = problems(lambda c: c["networks"]["cellular"]["ipam"]["config"][0].update(subnet=home))
    assert any("cellular" in p and "home" in p and "overlap" in p for p in found), found


def test_an_address_outside_its_subnet_is_refused():
    found = problems(lambda c: c["x-lab"]["client_addresses"].update(home="10.99.0.10"))
    assert found == ["x-lab.client_addresses.home: 10.99.0.10 is not inside home's subnet 10.203.1.0/24"]


@pytest.mark.parametrize("value", ["not-an-ip", "10.203.1.300"])
def test_a_malformed_address_is_refused(value):
    found = problems(lambda c: c["x-lab"]["gateways"]["home"].update(address=value))
    assert found and "is not an IP address" in found[0]
