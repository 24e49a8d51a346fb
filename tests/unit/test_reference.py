"""The generated reference is current, and the editors' JSON Schema agrees with the validator.

``scenarios/scenario.schema.json`` and the actions table of ``scenarios/README.md`` are generated
from ``lab/scenario/steps.py`` and ``lab/scenario/expectations.py`` by ``python -m
lab.scenario.reference``; when a spec changes, these tests say to run it.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from lab.scenario import reference
from lab.scenario.expectations import (
    COMPARISON,
    EXPECTATIONS,
    NO_ARGUMENT,
    OPTIONAL_ADDRESS,
    OPTIONAL_COMPARISON,
)
from lab.scenario.schema import TopologyNames, check_scenario_text

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
BAD = ROOT / "tests" / "data" / "bad_scenarios"
TOPOLOGY = TopologyNames(
    networks=frozenset({"home", "cellular", "office", "internet", "datacenter"}),
    client_networks=frozenset({"home", "cellular", "office"}),
    routers=frozenset({"home-router", "carrier-nat", "office-router"}),
    default_network="home",
)
STALE = "stale: run `python -m lab.scenario.reference` and commit the result"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(reference.SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_the_committed_json_schema_is_current() -> None:
    assert reference.SCHEMA_FILE.read_text(encoding="utf-8") == reference.schema_text(), STALE


def test_the_readme_actions_table_is_current() -> None:
    text = reference.README.read_text(encoding="utf-8")
    assert reference.readme_with_table(text) == text, STALE
    for name in reference.ACTIONS:
        assert f"| `{name}` |" in text


def test_the_readme_tells_editors_where_the_schema_is() -> None:
    assert "# yaml-language-server: $schema=scenario.schema.json" in reference.README.read_text(encoding="utf-8")


def test_check_mode_passes_on_the_committed_files() -> None:
    assert reference.main(["--check"]) == 0


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_catalogue_file_validates_against_the_json_schema(path: Path, validator) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(
        yaml.safe_load(path.read_text(encoding="utf-8")))]
    assert not errors, errors


# Bad files whose mistake is one of structure, keys, units or vocabulary: the schema sees it too.
# (A network name, the attachments, the timeout and the file name need the validator.)
SCHEMA_SEES = ["at-and-after", "bad-action", "bad-check", "bad-comparison", "bad-size-unit", "missing-description",
               "negative-duration", "unknown-event", "unknown-key"]


@pytest.mark.parametrize("name", SCHEMA_SEES)
def test_bad_files_fail_the_json_schema_too(name: str, validator) -> None:
    assert not validator.is_valid(yaml.safe_load((BAD / f"{name}.yaml").read_text(encoding="utf-8")))


BASE = "name: sample\ndescription: A sample.\nworkload:\n  size: 8MB\n  rate: 2MB/s\n"
STEPS = """\
steps:
  - at: 1s
    action: rebind
    router: carrier-nat
  - after: server:path_validated
    delay: 500ms
    action: blackhole
    network: internet
    state: on
  - after_bytes: 4MB
    action: impair
    network: cellular
    impair: {delay: 40ms, jitter: 5ms, loss: 1%, rate: 10mbit}
  - action: impair
    network: cellular
    reset: true
  - action: impair
    network: home
    impair: lte
  - action: wait
    duration: 1s
  - action: connect
    network: office
    address: 7
  - action: renumber
    network: office
    address: 10.3.0.99
  - action: flap
    networks: [home, office]
    times: 3
    interval: 1s
expect:
  - transfer_complete
  - quic:paths_validated: ">= 1"
  - cid_changed
  - migrated_to_preferred: 10.9.0.2:4443
"""


def judged(text: str, validator) -> tuple[bool, bool]:
    """(the validator accepts it, the JSON Schema accepts it)."""
    topology = TopologyNames(TOPOLOGY.networks, TOPOLOGY.client_networks, TOPOLOGY.routers, "home",
                             profiles=frozenset({"lte"}))
    scenario, _ = check_scenario_text(text, "scenarios/sample.yaml", topology)
    return scenario is not None, validator.is_valid(yaml.safe_load(text))


def test_a_scenario_using_every_kind_of_step_passes_both(validator) -> None:
    assert judged(BASE + STEPS, validator) == (True, True)


@pytest.mark.parametrize("old, new", [
    ("    reset: true\n", "    reset: true\n    impair: {delay: 1ms}\n"),  # impair and reset
    ("    reset: true\n", "    reset: false\n"),  # neither
    ("    state: on\n", "    state: maybe\n"),
    ("    times: 3\n", "    times: 0\n"),
    ("    networks: [home, office]\n", "    networks: [home]\n"),
    ("    address: 7\n", "    address: 300\n"),
    ("  - at: 1s\n", "  - at: 1s\n    after: path_validated\n"),
    ("  - at: 1s\n", "  - at: 1\n"),
    ("    duration: 1s\n", "    duration: 1s\n    router: home-router\n"),
    ("jitter: 5ms, ", "jitter: 5ms, delay_ms: 4, "),
    ("  rate: 2MB/s\n", "  rate: 2MB\n"),
    ("  size: 8MB\n", "  size: 8Mb\n"),
    ("  rate: 2MB/s\n", "  rate: 2MB/s\n  rotate_cid: true\n"),
    ("  rate: 2MB/s\n", "  rate: 2MB/s\n  transport: tcp\n  migration: active\n"),
    ("  - cid_changed\n", "  - tcp:cid_changed\n"),
    ("  - cid_changed\n", "  - paths_validated\n"),
    ("  - transfer_complete\n", "  - transfer_complete: yes\n"),
])
def test_mistakes_fail_both(old: str, new: str, validator) -> None:
    text = BASE + STEPS
    assert old in text
    assert judged(text.replace(old, new, 1), validator) == (False, False)


def test_each_check_states_the_argument_its_parser_takes() -> None:
    for name, spec in EXPECTATIONS.items():
        if spec.argument in (NO_ARGUMENT, OPTIONAL_COMPARISON, OPTIONAL_ADDRESS):
            assert spec.parse(None) is None, name
        else:
            with pytest.raises(ValueError):
                spec.parse(None)
        if spec.argument in (COMPARISON, OPTIONAL_COMPARISON):
            assert str(spec.parse(">= 2")).endswith("2"), name
        if spec.argument == OPTIONAL_ADDRESS:
            assert spec.parse("10.9.0.2:4443") == "10.9.0.2:4443"
        if spec.argument == NO_ARGUMENT:
            with pytest.raises(ValueError):
                spec.parse(1)
