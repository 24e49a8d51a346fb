"""An idle step that outlasts its NAT binding is a client move: the judge then applies the
capture's migration checks (lab.verify.judge.idle_outlasts_binding). Each condition is also
broken once (a mutation) to show the judgement follows it."""

import json
from pathlib import Path

import pytest

from lab.scenario.names import topology_names
from lab.scenario.schema import parse_scenario
from lab.topology.model import topology_from_config
from lab.verify.judge import expects_migration, idle_outlasts_binding

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = topology_from_config(json.loads((ROOT / "tests/data/runs/recorded-rebinding/topology.json").read_text()))


def scenario(name: str, replace: tuple[str, str] | None = None):
    text = (ROOT / "scenarios" / f"{name}.yaml").read_text()
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    return parse_scenario(text, f"{name}.yaml", topology_names(TOPOLOGY))


def test_idle_past_the_carrier_timeout_moves_the_client():
    timeout = scenario("nat-idle-timeout")
    assert idle_outlasts_binding(timeout, TOPOLOGY)
    assert expects_migration(timeout, TOPOLOGY)
    assert not expects_migration(timeout)  # without the topology, no router timeout to compare with


def test_a_keepalive_inside_the_timeout_keeps_the_binding():
    assert not idle_outlasts_binding(scenario("nat-idle-keepalive"), TOPOLOGY)
    # mutation: a PING only every 6 s, beyond the 5 s binding
    assert idle_outlasts_binding(scenario("nat-idle-keepalive", ("keepalive: 2s", "keepalive: 6s")), TOPOLOGY)


@pytest.mark.parametrize("replace", [
    ("duration: 8s\n    description: The user", "duration: 4s\n    description: The user"),  # shorter than 5 s
    ("udp_timeout: 5s", "udp_timeout: 30s"),  # the binding outlasts the pause
])
def test_idle_within_the_binding_moves_nothing(replace):
    assert not idle_outlasts_binding(scenario("nat-idle-timeout", replace), TOPOLOGY)


def test_the_timeout_is_the_routed_networks_router():
    # The 5 s policy is the home router's; the client idles on cellular, whose binding lasts 120 s.
    moved = scenario("nat-idle-timeout", ("router: carrier-nat", "router: home-router"))
    assert not idle_outlasts_binding(moved, TOPOLOGY)
    assert TOPOLOGY.nat["carrier-nat"].udp_timeout_stream > 8
