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
    # nat-idle-keepalive sets the timeout with a nat step, nat-idle-timeout with initial.nat
    assert not idle_outlasts_binding(scenario("nat-idle-keepalive"), TOPOLOGY)
    # mutation: a PING only every 6 s, beyond the 5 s binding
    assert idle_outlasts_binding(scenario("nat-idle-keepalive", ("keepalive: 2s", "keepalive: 6s")), TOPOLOGY)


@pytest.mark.parametrize("replace", [
    ("duration: 8s\n    description: The user", "duration: 4s\n    description: The user"),  # shorter than 5 s
    ("udp_timeout: 5s", "udp_timeout: 30s"),  # the binding outlasts the pause (initial.nat)
])
def test_idle_within_the_binding_moves_nothing(replace):
    assert not idle_outlasts_binding(scenario("nat-idle-timeout", replace), TOPOLOGY)


def test_the_timeout_is_the_routed_networks_router():
    # The 5 s policy is the home router's; the client idles on cellular, whose binding lasts 120 s.
    moved = scenario("nat-idle-timeout", ("carrier-nat: {udp_timeout", "home-router: {udp_timeout"))
    assert not idle_outlasts_binding(moved, TOPOLOGY)
    assert TOPOLOGY.nat["carrier-nat"].udp_timeout_stream > 8


def test_initial_nat_is_a_nat_step_before_the_plan():
    (step,) = scenario("nat-idle-timeout").initial.nat
    assert (step.action, step.router, step.udp_timeout) == ("nat", "carrier-nat", 5.0)


@pytest.mark.parametrize("block, message", [
    ("  nat:\n    carrier-nat: {}\n", "nat needs at least one of mapping, ports, udp_timeout"),
    ("  nat:\n    home-router: {udp_timeout: 0s}\n", "initial.nat.home-router.udp_timeout"),
    ("  nat:\n    nowhere: {udp_timeout: 5s}\n", "initial.nat"),
    ("  nat:\n    carrier-nat: {mapping: endpoint-independent, ports: random}\n", "initial.nat.carrier-nat.ports"),
    ("  nat:\n    carrier-nat: {router: home-router}\n", "initial.nat.carrier-nat"),
])
def test_initial_nat_refusals_name_the_field(block, message):
    from lab.scenario.schema import ScenarioInvalid

    text = (ROOT / "scenarios/baseline.yaml").read_text()
    assert "initial:\n  networks:" in text
    text = text.replace("initial:\n", "initial:\n" + block, 1)
    with pytest.raises(ScenarioInvalid) as caught:
        parse_scenario(text, "x.yaml", topology_names(TOPOLOGY))
    assert message in str(caught.value)
