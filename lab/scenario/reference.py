"""The scenario language's reference, generated from its specs: the README's actions table and the
editors' JSON Schema (pure, except :func:`main`, which writes them).

    python -m lab.scenario.reference          # rewrite scenarios/scenario.schema.json and the README table
    python -m lab.scenario.reference --check  # exit 1 when either is stale (what the unit test checks)

Both come from the same tables the validator reads: ``lab.scenario.steps.ACTIONS`` (step actions
and their fields), ``lab.scenario.expectations.EXPECTATIONS`` (checks and their arguments),
``lab.units`` (unit spellings) and ``lab.events.EVENT_TYPES`` (trigger events).

The JSON Schema (draft-07, which yaml-language-server reads) gives an editor the structure, the
keys, the actions, the checks, the events and the units, with completion and hover text. It is a
help, not the judge: network, router and profile names come from compose.yaml, and rules such as
"route only via an attached network" or "the download must finish before the timeout" need the
validator (``python -m lab scenario validate FILE``), which stays the one authority.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from lab.control.attacks import KINDS as ATTACK_KINDS
from lab.events import EVENT_TYPES, family_of
from lab.nat_behaviour import MAPPINGS as NAT_MAPPINGS
from lab.nat_behaviour import PORTS as NAT_PORTS
from lab.scenario.expectations import (
    COMPARISON,
    COMPARISON_TEXT,
    EVIDENCE_SOURCES,
    EXPECTATIONS,
    KNOWN_FAILURE_CHECKS,
    NO_ARGUMENT,
    OPTIONAL_ADDRESS,
    OPTIONAL_COMPARISON,
)
from lab.scenario.model import (
    FARM_MODES,
    FARM_OUTCOMES,
    KINDS,
    MAX_TIMEOUT,
    MIGRATIONS,
    NAME_PATTERN,
    ROLES,
    TRANSPORTS,
    TRIGGERS,
)
from lab.scenario.rules import IMPAIRMENT_KEYS, KIND_KEYS, TOP_KEYS, WORKLOAD_KEYS
from lab.scenario.stacks import ROLES as STACK_ROLES
from lab.scenario.stacks import STACKS
from lab.scenario.steps import ACTIONS, FARM_TRIES, FLAP_TIMES, ActionSpec, Field
from lab.units import BIT_RATE_UNITS, DURATION_UNITS, SIZE_UNITS

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "scenarios" / "scenario.schema.json"
README = ROOT / "scenarios" / "README.md"
TABLE_START = "<!-- actions table: generated from lab/scenario/steps.py by `python -m lab.scenario.reference` -->"
TABLE_END = "<!-- end of the generated actions table -->"


# --- the README's actions table -------------------------------------------------------------------


def _field_doc(field: Field) -> str:
    if field.doc:
        return field.doc
    return f"`{field.name}`" + (f" ({field.kind.doc})" if field.kind.doc else "")


def fields_cell(spec: ActionSpec) -> str:
    """``network`` (any), either ``impair`` (...) or ``reset: true``: an action's fields as prose."""
    parts = []
    for field in spec.fields:
        if field.name in spec.one_of:
            continue
        parts.append(_field_doc(field) if field.required else f"optional {_field_doc(field)}")
    if spec.one_of:
        chosen = [_field_doc(f) for f in spec.fields if f.name in spec.one_of]
        parts.append("either " + " or ".join(chosen))
    return ", ".join(parts)


def actions_table() -> str:
    """The markdown table of every action: its fields and what the controller does."""
    rows = ["| Action | Fields | What the controller does |", "|---|---|---|"]
    rows += [f"| `{spec.name}` | {fields_cell(spec)} | {spec.does} |" for spec in ACTIONS.values()]
    return "\n".join(rows) + "\n"


def readme_with_table(text: str) -> str:
    """The README text with its generated section replaced by the current table."""
    head, start, rest = text.partition(TABLE_START)
    _, end, tail = rest.partition(TABLE_END)
    if not start or not end:
        raise ValueError(f"{README.name}: the markers of the generated actions table are missing")
    return f"{head}{TABLE_START}\n\n{actions_table()}\n{TABLE_END}{tail}"


# --- the JSON Schema ------------------------------------------------------------------------------


def _any_case(word: str) -> str:
    """``mbit`` -> ``[mM][bB][iI][tT]``: JSON Schema patterns (ECMA 262) have no case-insensitive flag."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


def _either(units: Any, any_case: bool = False) -> str:
    """``(min|ms|s|m)``: unit spellings as a regex group, longest first."""
    words = sorted(units, key=len, reverse=True)
    return "(" + "|".join(_any_case(w) if any_case else w for w in words) + ")"


_NUMBER = r"\d+(\.\d+)?"
DURATION_PATTERN = rf"^\s*{_NUMBER}\s*{_either(DURATION_UNITS)}\s*$"
SIZE_PATTERN = rf"^\s*{_NUMBER}\s*{_either(SIZE_UNITS)}?\s*$"
BYTE_RATE_PATTERN = rf"^\s*{_NUMBER}\s*{_either(SIZE_UNITS)}?/s\s*$"
BIT_RATE_PATTERN = rf"^\s*{_NUMBER}\s*{_either(BIT_RATE_UNITS, any_case=True)}\s*$"
PERCENT_PATTERN = rf"^\s*{_NUMBER}\s*%?\s*$"
IPV4_PATTERN = r"^\d{1,3}(\.\d{1,3}){3}$"
ADDRESS_PATTERN = r"^[0-9A-Fa-f.:\[\]]+$"  # an IP or ip:port; the validator parses it for real


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/definitions/{name}"}


def _value_definitions() -> dict[str, Any]:
    """The kinds of value the language uses (units, names, addresses)."""
    profile = {"type": "string", "pattern": NAME_PATTERN.pattern,
               "description": "an impairment profile (python -m lab impair set --help lists them)"}
    return {
        "duration": {"type": "string", "pattern": DURATION_PATTERN,
                     "description": "a duration with its unit: 500ms, 2s, 1.5s, 1min (a unit is required)"},
        "size": {"description": "bytes: 512KB, 8MB, 1GB (powers of 10), 1KiB, 1MiB (powers of 2), or a whole "
                                "number; a lower-case b is a bit, so 8Mb is refused",
                 "oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": SIZE_PATTERN}]},
        "byte_rate": {"type": "string", "pattern": BYTE_RATE_PATTERN, "description": "bytes per second: 2MB/s"},
        "bit_rate": {"type": "string", "pattern": BIT_RATE_PATTERN,
                     "description": "a link rate in tc's units: 500kbit, 10mbit, 1gbit"},
        "percent": {"description": "0-100: 1, 0.5, 2%",
                    "oneOf": [{"type": "number", "minimum": 0, "maximum": 100},
                              {"type": "string", "pattern": PERCENT_PATTERN}]},
        "boolean": {"type": "boolean"},
        "client_network": {"type": "string", "minLength": 1,
                           "description": "a client network of compose.yaml (today home, cellular, office)"},
        "network": {"type": "string", "minLength": 1,
                    "description": "any network of compose.yaml (client-side, internet, datacenter)"},
        "router": {"type": "string", "minLength": 1,
                   "description": "a NAT router of compose.yaml (today home-router, carrier-nat, office-router)"},
        "address": {"description": "a host number within the network (2-254) or a full IPv4 address",
                    "oneOf": [{"type": "integer", "minimum": 2, "maximum": 254},
                              {"type": "string", "pattern": IPV4_PATTERN}]},
        "on_off": {"enum": [True, False, "on", "off"]},
        "nat_mapping": {"enum": list(NAT_MAPPINGS), "description": "RFC 4787 §4.1 mapping behaviour"},
        "nat_ports": {"enum": list(NAT_PORTS), "description": "RFC 4787 §4.2.1 port preservation or random ports"},
        "attack_kind": {"enum": list(ATTACK_KINDS),
                        "description": "; ".join(f"{k.name}: {k.does}" for k in ATTACK_KINDS.values())},
        "flap_networks": {"type": "array", "items": _ref("client_network"), "minItems": 2, "uniqueItems": True,
                          "description": "the attached client networks to switch the default route between"},
        "flap_times": {"type": "integer", "minimum": FLAP_TIMES[0], "maximum": FLAP_TIMES[1]},
        "farm_tries": {"type": "integer", "minimum": FARM_TRIES[0], "maximum": FARM_TRIES[1],
                       "description": "rebindings at most (default 16: all on one replica has odds 2**-16)"},
        "profile": profile,
        "impairment": {
            "type": "object", "minProperties": 1, "additionalProperties": False,
            "description": "link quality; delay and jitter are one way, in each direction (netem semantics)",
            "properties": {"delay": _ref("duration"), "jitter": _ref("duration"), "loss": _ref("percent"),
                           "rate": _ref("bit_rate"), "blackhole": _ref("boolean"), "profile": _ref("profile")},
            "dependencies": {"jitter": {"anyOf": [{"required": ["delay"]}, {"required": ["profile"]}]}},
        },
        "impairment_or_profile": {"oneOf": [_ref("profile"), _ref("impairment")]},
        "event": {"description": "an event type (docs/events.md), optionally from one role: server:path_validated",
                  "anyOf": [{"enum": sorted(EVENT_TYPES)},
                            {"type": "string", "pattern": f"^({'|'.join(ROLES)}):({'|'.join(sorted(EVENT_TYPES))})$"}]},
    }


def _step_definition(spec: ActionSpec) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "action": {"const": spec.name},
        "at": {**_ref("duration"), "description": "seconds after the workload started"},
        "after": _ref("event"),
        "after_bytes": {**_ref("size"), "description": "once the client has received that much (download only)"},
        "delay": {**_ref("duration"), "description": "waited after the trigger"},
        "description": {"type": "string", "description": "teaching text printed when the step runs"},
    }
    properties.update({field.name: _ref(field.kind.json) for field in spec.fields})
    rules: list[dict[str, Any]] = [
        {"not": {"anyOf": [{"required": list(pair)} for pair in itertools.combinations(TRIGGERS, 2)]}}]
    if spec.one_of:
        rules.append(_exactly_one(spec))
    return {"type": "object", "description": spec.does, "properties": properties,
            "required": ["action", *spec.required], "additionalProperties": False, "allOf": rules}


def _exactly_one(spec: ActionSpec) -> dict[str, Any]:
    """Exactly one of ``spec.one_of`` given; a flag (``reset``) counts as given when it is true."""
    flags = {f.name for f in spec.fields if f.kind.json == "boolean"}
    branches = []
    for name in spec.one_of:
        branch: dict[str, Any] = {"required": [name], "properties": {name: {"const": True}} if name in flags else {}}
        others = [o for o in spec.one_of if o != name]
        branch["properties"].update({o: {"const": False} for o in others if o in flags})
        if [o for o in others if o not in flags]:
            branch["not"] = {"anyOf": [{"required": [o]} for o in others if o not in flags]}
        branches.append(branch)
    return {"oneOf": branches}


def _argument(kind: str) -> dict[str, Any]:
    comparison = {"oneOf": [{"type": "number", "minimum": 0},
                            {"type": "string", "pattern": COMPARISON_TEXT.pattern}]}
    return {
        NO_ARGUMENT: {"type": "null"},
        COMPARISON: comparison,
        OPTIONAL_COMPARISON: {"oneOf": [{"type": "null"}, *comparison["oneOf"]]},
        OPTIONAL_ADDRESS: {"oneOf": [{"type": "null"}, {"type": "string", "pattern": ADDRESS_PATTERN}]},
    }[kind]


def _expectation_definition() -> dict[str, Any]:
    """A check name, or {check: argument}; a transport prefix (quic:, tcp:) where the check applies."""
    from lab.scenario.model import STRATEGIES

    names: dict[str, str] = {}
    for check, spec in EXPECTATIONS.items():
        names[check] = check
        for transport in sorted(spec.transports):  # reconnect-vs-migrate's strategies are labels too
            for label in [transport] + [s for s in STRATEGIES if s != transport and family_of(s) == transport]:
                names[f"{label}:{check}"] = check
    bare = [name for name, check in names.items() if EXPECTATIONS[check].argument != COMPARISON]
    return {"description": "a check name, or a single-key mapping {check: argument} (scenarios/README.md, expect)",
            "anyOf": [{"type": "string", "enum": bare},
                      {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
                       "properties": {name: {**_argument(EXPECTATIONS[check].argument),
                                             **({"description": EXPECTATIONS[check].argument_help}
                                                if EXPECTATIONS[check].argument_help else {})}
                                      for name, check in names.items()}}]}


def _workload_definition() -> dict[str, Any]:
    def when(key: str, value: Any) -> dict[str, Any]:
        return {"properties": {key: {"const": value}}, "required": [key]}

    def none_of(*keys: str) -> dict[str, Any]:
        return {"not": {"anyOf": [{"required": [k]} for k in keys]}}

    properties = {
        "transport": {"enum": list(TRANSPORTS), "default": "quic"},
        "kind": {"enum": list(KINDS), "default": "download"},
        "size": _ref("size"), "rate": _ref("byte_rate"), "interval": _ref("duration"), "duration": _ref("duration"),
        "migration": {"enum": list(MIGRATIONS), "default": "passive"},
        "rotate_cid": _ref("boolean"), "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "probe_after": _ref("duration"),
        "bitrate": _ref("bit_rate"), "segment": _ref("duration"),
        "segments": {"type": "integer", "minimum": 1, "maximum": 10_000},
        "startup": _ref("duration"), "buffer": _ref("duration"), "datagrams": _ref("boolean"),
        "family": {"enum": [4, 6], "default": 4},
    }
    assert tuple(properties) == WORKLOAD_KEYS
    kinds: dict[str, list[str]] = {}
    for key, allowed in KIND_KEYS.items():
        for kind in KINDS:
            if kind not in allowed:
                kinds.setdefault(kind, []).append(key)
    required = {"download": ["size"], "echo": ["duration"], "call": ["duration"], "video": ["segments"]}
    return {"type": "object", "properties": properties, "additionalProperties": False, "allOf": [
        *({"if": when("kind", kind), "then": {"required": required[kind], **none_of(*kinds[kind])}}
          for kind in KINDS if kind != "download"),
        {"if": {"not": {"required": ["kind"]}}, "then": {"required": ["size"], **none_of(*kinds["download"])}},
        {"if": when("kind", "download"), "then": {"required": ["size"], **none_of(*kinds["download"])}},
        {"if": when("transport", "tcp"), "then": {"properties": {"migration": {"enum": ["none", "passive"]}}}},
        {"if": when("transport", "both"), "then": {"properties": {"migration": {"not": {"const": "preferred"}}}}},
        {"if": when("rotate_cid", True),
         "then": {"properties": {"migration": {"enum": ["active", "preferred"]}}, "required": ["migration"]}},
    ]}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft-07) of a scenario file."""
    definitions = _value_definitions()
    definitions.update({f"step_{name}": _step_definition(spec) for name, spec in ACTIONS.items()})
    definitions["step"] = {"oneOf": [_ref(f"step_{name}") for name in ACTIONS]}
    definitions["expectation"] = _expectation_definition()
    definitions["workload"] = _workload_definition()
    assert set(definitions["impairment"]["properties"]) == set(IMPAIRMENT_KEYS)
    properties = {
        "name": {"type": "string", "pattern": NAME_PATTERN.pattern, "description": "the file name without .yaml"},
        "description": {"type": "string", "minLength": 1,
                        "description": "3-6 lines of teaching text, with the RFC 9000 section"},
        "timeout": {**_ref("duration"), "description": f"default 30s, at most {MAX_TIMEOUT:g}s"},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "initial": {"type": "object", "additionalProperties": False, "properties": {
            "networks": {"type": "array", "items": _ref("client_network"), "minItems": 1, "uniqueItems": True,
                         "description": "client networks attached at start; the first carries the default route"},
            "impair": {"type": "object", "additionalProperties": _ref("impairment_or_profile"),
                       "description": "network -> impairment (or a profile name)"},
            "nat": {"type": "object", "additionalProperties": {
                        "type": "object", "additionalProperties": False, "minProperties": 1,
                        "properties": {f.name: _ref(f.kind.json) for f in ACTIONS["nat"].fields if f.name != "router"}},
                    "description": "router -> its NAT behaviour before the client starts (the fields of a nat step)"}}},
        "workload": _ref("workload"),
        "steps": {"type": "array", "items": _ref("step")},
        "expect": {"type": "array", "items": _ref("expectation"), "minItems": 1},
        "optional_evidence": {"type": "array", "items": {"enum": list(EVIDENCE_SOURCES)}, "uniqueItems": True},
        "stacks": {"type": "object", "additionalProperties": False,
                   "properties": {role: {"type": "string", "minLength": 1} for role in STACK_ROLES},
                   "description": "the stack of each end: lab (default), " + ", ".join(n for n in STACKS if n != "lab")
                                  + ", or an image speaking the interop-runner contract (a black-box run)"},
        "known_failures": {"type": "object", "additionalProperties": False,
                           "properties": {name: {"type": "string", "minLength": 1} for name in KNOWN_FAILURE_CHECKS},
                           "description": "check -> why the lab's own stack is known to fail it: shown as an "
                                          "expected failure, never as a pass; a pass fails the run (stale record)"},
        "farm": {"type": "object", "additionalProperties": False, "required": ["mode"],
                 "description": "run against the server farm (compose profile farm, docs/load-balancers.md): the "
                                "client targets the balancer's address; the farm checks judge the replicas",
                 "properties": {"mode": {"enum": list(FARM_MODES), "description": "the balancer's mode: hash "
                                                                                   "(4-tuple) or cid (QUIC-LB)"},
                                "connection": {"enum": list(FARM_OUTCOMES), "default": "survives",
                                               "description": "what the scenario expects of the connection"}}},
    }
    assert tuple(properties) == TOP_KEYS
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "quic-migration-lab scenario",
        "description": "A scenario of scenarios/ (see scenarios/README.md). Generated by python -m "
                       "lab.scenario.reference from lab/scenario/steps.py and lab/scenario/expectations.py; "
                       "`python -m lab scenario validate FILE` checks the rest (names from compose.yaml, the "
                       "client's attachments step by step, the timeout).",
        "type": "object",
        "properties": properties,
        "required": ["name", "description", "workload", "expect"],
        "additionalProperties": False,
        "definitions": definitions,
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.scenario.reference", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated file is stale; write nothing")
    args = parser.parse_args(argv)
    wanted = {SCHEMA_FILE: schema_text(), README: readme_with_table(README.read_text(encoding="utf-8"))}
    stale = [path for path, text in wanted.items() if not path.exists() or path.read_text(encoding="utf-8") != text]
    for path in stale:
        if args.check:
            print(f"{path.relative_to(ROOT)} is stale: run python -m lab.scenario.reference", file=sys.stderr)
        else:
            path.write_text(wanted[path], encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
