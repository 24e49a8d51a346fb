"""The scenario language's farm: `farm: {mode, connection}` and the `farm_rebind` step (one-line errors),
the client aimed at the farm's address, the replicas' unicast addresses validated on the internet
network, and the balancer balancing the preferred port too (pure)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lab.endpoints.balancer.rules import commands
from lab.scenario.model import FarmSpec
from lab.scenario.runner import client_command
from lab.scenario.schema import ScenarioInvalid, parse_scenario
from lab.topology.farm import farm_of
from lab.topology.model import topology_from_config, validate
from tests.unit.test_scenario_schema import TOPOLOGY

CONFIG = json.loads((Path(__file__).resolve().parents[1] / "data" / "runs" / "recorded-rebinding" /
                     "topology.json").read_text())
FARM = {"address": "10.203.100.30", "port": 443, "preferred_port": 4443,
        "balancer": {"service": "balancer", "address": "10.203.210.2"},
        "replicas": {"replica-1": {"address": "10.203.210.11", "server_id": 1, "unicast": "10.203.100.31"},
                     "replica-2": {"address": "10.203.210.12", "server_id": 2, "unicast": "10.203.100.32"}}}


def farm_config(**changes) -> dict:
    config = copy.deepcopy(CONFIG)
    config["x-lab"]["farm"] = {**copy.deepcopy(FARM), **changes}
    return config


def scenario(farm: str = "{mode: hash, connection: breaks}", workload: str = "transport: quic",
             steps: str = "[{at: 1s, action: farm_rebind, router: home-router, tries: 4, give_up: 2s}]",
             extra: str = "") -> str:
    return f"""name: lb
description: |
  a farm scenario (RFC 9000 §9)
  two
  three
{f"farm: {farm}" if farm else ""}
workload: {{{workload}, kind: download, size: 8MB, rate: 1MB/s, migration: passive}}
steps: {steps}
expect: [single_handshake]
{extra}
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ScenarioInvalid) as info:
        parse_scenario(text, "lb.yaml", TOPOLOGY)
    return str(info.value).splitlines()


def test_a_farm_scenario_and_its_step_are_read() -> None:
    parsed = parse_scenario(scenario(), "lb.yaml", TOPOLOGY)
    assert parsed.farm == FarmSpec("hash", "breaks")
    step = parsed.steps[0]
    assert (step.action, step.router, step.tries, step.give_up) == ("farm_rebind", "home-router", 4, 2.0)
    assert parse_scenario(scenario("{mode: cid}"), "lb.yaml", TOPOLOGY).farm == FarmSpec("cid", "survives")
    assert parse_scenario(scenario(None, steps="[]"), "lb.yaml", TOPOLOGY).farm is None


@pytest.mark.parametrize(("text", "message"), [
    (scenario("{mode: round-robin}"), "farm.mode: 'round-robin' is not allowed; allowed: hash, cid"),
    (scenario("{connection: breaks}"), "farm"),
    (scenario("{mode: hash, connection: maybe}"), "farm.connection: 'maybe' is not allowed; allowed: breaks, "
                                                   "survives"),
    (scenario("{mode: hash, size: 2}"), "farm.size"),
    (scenario(workload="transport: both"), "the farm serves QUIC only (its replicas run no TCP)"),
    (scenario(extra="stacks: {server: qh3}"), "the farm's replicas are the lab's own server"),
    (scenario(None), "farm_rebind needs the scenario to run against the farm (farm: {mode: hash|cid})"),
    (scenario(steps="[{action: farm_rebind, router: home-router, tries: 99}]"), "steps[0].tries"),
])
def test_bad_farm_input_is_one_located_line(text: str, message: str) -> None:
    found = errors(text)
    assert len(found) == 1 and message in found[0] and found[0].startswith("lb.yaml:"), found
    assert all("\n" not in line and "Traceback" not in line for line in found)


def test_the_client_targets_the_farm_and_its_preferred_port() -> None:
    topology = topology_from_config(farm_config())
    plain = parse_scenario(scenario(), "lb.yaml", TOPOLOGY)
    assert "--server=10.203.100.30:443" in client_command(plain, topology, "quic", "r1")
    moving = parse_scenario(scenario("{mode: hash}", workload="transport: quic",
                                     steps="[]").replace("migration: passive", "migration: preferred"),
                            "lb.yaml", TOPOLOGY)
    assert "--server=10.203.100.30:4443" in client_command(moving, topology, "quic", "r1")
    lone = parse_scenario(scenario(None, steps="[]"), "lb.yaml", TOPOLOGY)
    assert f"--server={topology.server_address}:443" in client_command(lone, topology, "quic", "r1")


def test_the_farm_and_its_unicast_addresses_from_compose() -> None:
    topology = topology_from_config(farm_config())
    farm = farm_of(topology)
    assert farm is not None and farm.addresses == ("10.203.100.30", "10.203.100.31", "10.203.100.32")
    assert farm.replica_at("10.203.100.32").name == "replica-2" and farm.preferred_port == 4443
    assert validate(topology) == []
    outside = farm_config()
    outside["x-lab"]["farm"]["replicas"]["replica-1"]["unicast"] = "10.203.99.31"
    assert any(p.startswith("x-lab.farm.replicas.replica-1.unicast: 10.203.99.31")
               for p in validate(topology_from_config(outside)))
    clash = farm_config()
    clash["x-lab"]["farm"]["replicas"]["replica-2"]["unicast"] = topology.server_address
    assert any("is given to 2 hosts" in p for p in validate(topology_from_config(clash)))


def test_the_balancer_balances_the_preferred_port_like_the_main_one() -> None:
    farm = farm_of(topology_from_config(farm_config()))
    rules = [r for r in commands(farm.as_balancer(), "cid") if "-A" in r]
    assert rules and all(r[r.index("--dports") + 1] == "443,4443" for r in rules)
    single = farm_of(topology_from_config(farm_config(preferred_port=None)))
    assert all(r[r.index("--dport") + 1] == "443" for r in commands(single.as_balancer(), "hash") if "-A" in r)


def test_a_farm_scenario_refuses_another_stack_before_touching_the_lab() -> None:
    from lab.control.preflight import PreflightError
    from lab.scenario.runner import ScenarioRunner
    from lab.scenario.stacks import Endpoints, resolve

    topology = topology_from_config(farm_config())
    parsed = parse_scenario(scenario(), "lb.yaml", TOPOLOGY)
    runner = ScenarioRunner(parsed, topology, endpoints=Endpoints(client=resolve("qh3", "client")))
    with pytest.raises(PreflightError, match="a farm scenario runs the lab's own replicas"):
        runner.run()
