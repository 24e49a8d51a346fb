"""Scenario files: read, validate, and get the typed result (the entry points of the scenario language).

A scenario is a YAML file in ``scenarios/`` (documented in ``scenarios/README.md``): a workload
(a paced download or an echo over QUIC, TCP or both), an ordered list of steps that change the
network under it, and the checks that judge the run from observed events.

Why the care: a typo in a scenario should cost a second at load time, not a 30-second run that
"fails" for the wrong reason. So the file is parsed with PyYAML's *compose* API, which keeps the
line of every node, and every problem becomes a one-line :class:`ScenarioError`
(``scenarios/x.yaml:12: steps[1].action: 'conect' is not allowed; allowed: connect, ...``).
All errors of a file are collected, not only the first.

The language is split by job, and this module puts it back together for its users:

- :mod:`lab.scenario.model`: the dataclasses (``Scenario``, ``Step``, ...) and ``TopologyNames``;
- :mod:`lab.units` and :mod:`lab.addresses`: the value parsers, shared with the CLI and endpoints;
- :mod:`lab.scenario.nodes`: a generic validator of YAML nodes (located, collected errors);
- :mod:`lab.scenario.rules`: the scenario rules, section by section;
- :mod:`lab.scenario.steps`: ``ACTIONS``, one spec per step action (fields, validation, how it runs);
- :mod:`lab.scenario.expectations`: the check vocabulary of ``expect:``.

Topology names (networks, routers) are parameters (:class:`TopologyNames`), read by the caller
from compose.yaml; nothing about the lab's topology is hard-coded here. Pure: no Docker, no I/O
except reading the file in :func:`load_scenario`.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from lab.scenario.errors import ScenarioError, ScenarioInvalid
from lab.scenario.model import (
    Expectation,
    Flap,
    Impairment,
    InitialState,
    Scenario,
    Step,
    TopologyNames,
    Trigger,
    Workload,
    expand_steps,
)
from lab.scenario.rules import ScenarioValidator
from lab.scenario.steps import ACTIONS
from lab.units import parse_bit_rate, parse_byte_rate, parse_duration, parse_percent, parse_size


def check_scenario_text(text: str, file: str, topology: TopologyNames) -> tuple[Scenario | None, list[ScenarioError]]:
    """Validate scenario text; return the scenario (None if invalid) and every error found."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = str(exc.problem or exc.context or "invalid YAML")
        if exc.context and exc.problem:
            started = f" started on line {exc.context_mark.line + 1}" if exc.context_mark is not None else ""
            problem += f" ({exc.context}{started})"
        return None, [ScenarioError(file, line, "<yaml>", f"YAML syntax error: {problem}")]
    except yaml.YAMLError as exc:
        return None, [ScenarioError(file, 1, "<yaml>", f"YAML error: {exc}")]
    if root is None:
        return None, [ScenarioError(file, 1, "<document>", "the file is empty")]
    validator = ScenarioValidator(file, topology)
    scenario = validator.scenario(root)
    return (scenario if not validator.errors else None), validator.errors


def parse_scenario(text: str, file: str, topology: TopologyNames) -> Scenario:
    """Validate scenario text; raise :class:`ScenarioInvalid` listing every error."""
    scenario, errors = check_scenario_text(text, file, topology)
    if errors or scenario is None:
        raise ScenarioInvalid(errors or [ScenarioError(file, 1, "<document>", "invalid scenario")])
    return scenario


def read_scenario_text(path: Path) -> str:
    """The file's text; a file that is not UTF-8 is a located error, not a traceback."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ScenarioInvalid([ScenarioError(str(path), line, "<document>", f"byte {data[exc.start]:#04x} is not "
                                             "UTF-8; allowed: a YAML file in UTF-8 text")]) from None


def load_scenario(path: str | Path, topology: TopologyNames) -> Scenario:
    """Read and validate one scenario file; errors name ``path`` as given."""
    path = Path(path)
    return parse_scenario(read_scenario_text(path), str(path), topology)


def load_catalogue(directory: str | Path, topology: TopologyNames) -> dict[str, Scenario]:
    """Every ``*.yaml`` in ``directory`` by name; raise :class:`ScenarioInvalid` with all errors of all files."""
    scenarios: dict[str, Scenario] = {}
    errors: list[ScenarioError] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            text = read_scenario_text(path)
        except ScenarioInvalid as exc:
            errors.extend(exc.errors)
            continue
        scenario, found = check_scenario_text(text, str(path), topology)
        errors.extend(found)
        if scenario is not None:
            scenarios[scenario.name] = scenario
    if errors:
        raise ScenarioInvalid(errors)
    return scenarios


__all__ = [
    "ACTIONS", "Expectation", "Flap", "Impairment", "InitialState", "Scenario", "ScenarioError", "ScenarioInvalid",
    "Step", "TopologyNames", "Trigger", "Workload", "check_scenario_text", "expand_steps", "load_catalogue",
    "load_scenario", "parse_bit_rate", "parse_byte_rate", "parse_duration", "parse_percent", "parse_scenario",
    "parse_size",
]
