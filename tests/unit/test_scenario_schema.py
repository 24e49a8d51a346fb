"""The scenario schema: the catalogue validates, and every bad file fails at the right line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.scenario.schema import (
    ScenarioError,
    ScenarioInvalid,
    TopologyNames,
    check_scenario_text,
    load_catalogue,
    load_scenario,
    parse_bit_rate,
    parse_byte_rate,
    parse_duration,
    parse_percent,
    parse_scenario,
    parse_size,
)
from lab.verify.checks import Comparison

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
BAD = ROOT / "tests" / "data" / "bad_scenarios"

# The lab's topology as compose.yaml names it; the schema takes it as a parameter.
TOPOLOGY = TopologyNames(
    networks=frozenset({"home", "cellular", "office", "cellular6", "internet", "datacenter"}),
    client_networks=frozenset({"home", "cellular", "office", "cellular6"}),
    routers=frozenset({"home-router", "carrier-nat", "office-router", "carrier-nat64"}),
    default_network="home",
)

# file -> (line, field, start of the message): each bad file has exactly one error.
EXPECTED_ERRORS = {
    "unknown-key.yaml": (5, "workload.sise", "unknown key 'sise'; allowed: transport, kind, size"),
    "bad-action.yaml": (10, "steps[1].action", "'conect' is not allowed; allowed: connect, disconnect"),
    "bad-network.yaml": (9, "steps[0].network", "'wifi' is not allowed; allowed: cellular, cellular6, home, office"),
    "bad-size-unit.yaml": (4, "workload.size", "unknown size unit 'Mb'"),
    "missing-description.yaml": (1, "description", "is required"),
    "at-and-after.yaml": (8, "steps[0]", "'at' and 'after' both given"),
    "unknown-event.yaml": (10, "steps[1].after", "unknown event type 'path_validatd'"),
    "bad-check.yaml": (8, "expect[1]", "unknown check 'paths_valid'"),
    "bad-comparison.yaml": (8, "expect[1].paths_validated", "not a comparison: '=> 2'"),
    "negative-duration.yaml": (7, "steps[0].at", "must not be negative"),
    "yaml-syntax.yaml": (9, "<yaml>", "YAML syntax error"),
    "name-mismatch.yaml": (1, "name", "'name-mismatched' does not match the file name"),
    "not-attached.yaml": (11, "steps[0].network", "cannot route 'cellular'"),
    "too-slow.yaml": (6, "workload.rate", "80MB at 2MB/s takes 40s"),
    "video-too-long.yaml": (6, "workload.segments", "15 segments of 2s play for 30s, not less than the timeout"),
    "call-with-size.yaml": (6, "workload.size", "only applies to kind download (kind is call)"),
    "tcp-datagrams.yaml": (7, "workload.datagrams", "DATAGRAM frames are QUIC's (RFC 9221)"),
    "bad-freeze.yaml": (7, "expect[0].freeze_ms", "not a comparison: 'short'"),
    # issue 14: bad input at every entry (types, YAML, keys, ranges, stacks, ports)
    "workload-list.yaml": (4, "workload", "must be a mapping (key: value), got a list"),
    "empty.yaml": (1, "<document>", "the file is empty"),
    "not-a-mapping.yaml": (2, "<document>", "must be a mapping (key: value), got a list"),
    "duplicate-key.yaml": (6, "workload.size", "duplicate key"),
    "tab-indent.yaml": (4, "<yaml>", "YAML syntax error: found character '\\t'"),
    "unknown-top-key.yaml": (6, "expects", "unknown key 'expects'; allowed: name, description"),
    "bad-stack.yaml": (4, "stacks.client", "client 'Bad Image!': not a known stack (lab, aioquic, qh3)"),
    "closed-port.yaml": (6, "workload.port", "the server listens on no port 8443; allowed: 443, 4443"),
    "bad-evidence.yaml": (6, "optional_evidence[0]", "'telepathy' is not allowed; allowed: events, qlog, captures"),
    "timeout-too-long.yaml": (3, "timeout", "600s is too long; at most 300s"),
    "loss-over-100.yaml": (5, "initial.impair.home.loss", "must be between 0 and 100: '120%'"),
    "bad-rotate.yaml": (7, "workload.rotate_cid", "must be true or false, got 'maybe'"),
    "not-utf8.yaml": (2, "<document>", "byte 0xe9 is not UTF-8; allowed: a YAML file in UTF-8 text"),
}


# --- the catalogue ---------------------------------------------------------------------------


def catalogue_files() -> list[Path]:
    return sorted(SCENARIOS.glob("*.yaml"))


def test_catalogue_is_complete() -> None:
    names = {p.stem for p in catalogue_files()}
    assert {"nat-rebinding", "wifi-to-cellular", "wifi-to-cellular-active", "ip-change", "preferred-address",
            "cid-privacy", "commute", "flapping", "tcp-vs-quic"} <= names


@pytest.mark.parametrize("path", catalogue_files(), ids=lambda p: p.stem)
def test_catalogue_file_validates(path: Path) -> None:
    scenario = load_scenario(path, TOPOLOGY)
    assert scenario.name == path.stem
    assert 3 <= len(scenario.description.splitlines()) <= 6, "teaching text of 3-6 lines"
    assert "RFC 9000" in scenario.description and "§" in scenario.description
    assert scenario.timeout <= 30.0, "every catalogue scenario finishes within 30 s"
    workload = scenario.workload
    if workload.kind == "download" and workload.rate:
        transfer_s = workload.size / workload.rate
        assert transfer_s < scenario.timeout
        last_at = max((s.trigger.at for s in scenario.steps if s.trigger.at is not None), default=0.0)
        assert transfer_s > last_at, "the transfer must still run when the network changes"


def test_load_catalogue_returns_every_scenario_by_name() -> None:
    catalogue = load_catalogue(SCENARIOS, TOPOLOGY)
    assert set(catalogue) == {p.stem for p in catalogue_files()}


def test_flagship_is_break_before_make() -> None:
    scenario = load_catalogue(SCENARIOS, TOPOLOGY)["wifi-to-cellular"]
    assert [(s.action, s.network) for s in scenario.steps] == [
        ("disconnect", "home"), ("connect", "cellular"), ("route", "cellular")]
    assert scenario.workload.migration == "passive"


def test_active_scenario_is_make_before_break_with_new_cid() -> None:
    scenario = load_catalogue(SCENARIOS, TOPOLOGY)["wifi-to-cellular-active"]
    assert [s.action for s in scenario.steps] == ["connect", "route", "migrate", "disconnect"]
    assert scenario.workload.rotate_cid is True
    assert scenario.steps[3].trigger.kind == "after"
    assert (scenario.steps[3].trigger.role, scenario.steps[3].trigger.event) == ("client", "migration_completed")


def test_flapping_expands_to_ten_route_switches_starting_away_from_the_default() -> None:
    scenario = load_catalogue(SCENARIOS, TOPOLOGY)["flapping"]
    plan = scenario.plan()
    assert [s.network for s in plan] == ["cellular", "home"] * 5
    assert all(s.action == "route" for s in plan)
    assert plan[0].trigger.kind == "at" and plan[0].trigger.at == 1.0
    assert all(s.trigger.kind == "after_step" and s.delay == 1.0 for s in plan[1:])
    assert plan[3].origin == "steps[0] flap 4/10"


def test_tcp_vs_quic_scopes_expectations_by_transport() -> None:
    scenario = load_catalogue(SCENARIOS, TOPOLOGY)["tcp-vs-quic"]
    assert scenario.transports == ("quic", "tcp")
    scoped = {(e.check, e.transport) for e in scenario.expect}
    assert ("transfer_complete", None) in scoped
    assert ("tcp_reconnected", "tcp") in scoped and ("connection_survived", "quic") in scoped


def test_preferred_sets_the_preferred_port() -> None:
    scenario = load_catalogue(SCENARIOS, TOPOLOGY)["preferred-address"]
    assert scenario.workload.port == TOPOLOGY.preferred_port
    assert scenario.workload.rotate_cid is True


# --- the bad files ---------------------------------------------------------------------------


def test_every_bad_file_has_an_expected_error() -> None:
    assert {p.name for p in BAD.glob("*.yaml")} == set(EXPECTED_ERRORS)


@pytest.mark.parametrize("name", sorted(EXPECTED_ERRORS))
def test_bad_file_error_is_located(name: str) -> None:
    path = BAD / name
    line, field, message = EXPECTED_ERRORS[name]
    with pytest.raises(ScenarioInvalid) as caught:
        load_scenario(path, TOPOLOGY)
    errors = caught.value.errors
    assert len(errors) == 1, [str(e) for e in errors]
    error = errors[0]
    assert (error.file, error.line, error.field) == (str(path), line, field)
    assert error.message.startswith(message), error.message
    text = str(error)
    assert text.startswith(f"{path}:{line}: {field}: ")
    assert "\n" not in text


def test_catalogue_of_bad_files_reports_them_all() -> None:
    with pytest.raises(ScenarioInvalid) as caught:
        load_catalogue(BAD, TOPOLOGY)
    assert len(caught.value.errors) == len(EXPECTED_ERRORS)
    assert isinstance(caught.value, ScenarioError)


# --- inline cases --------------------------------------------------------------------------

BASE = """\
name: sample
description: A sample.
workload:
  size: 8MB
  rate: 2MB/s
"""


def errors_of(text: str) -> list[str]:
    _, errors = check_scenario_text(text, "scenarios/sample.yaml", TOPOLOGY)
    return [str(e) for e in errors]


def parse(text: str) -> object:
    return parse_scenario(text, "scenarios/sample.yaml", TOPOLOGY)


def test_defaults() -> None:
    scenario = parse(BASE + "expect: [transfer_complete]\n")
    assert scenario.timeout == 30.0
    assert scenario.initial.networks == ("home",)
    workload = scenario.workload
    assert (workload.transport, workload.kind, workload.migration, workload.rotate_cid, workload.port) == (
        "quic", "download", "passive", False, 443)
    assert (workload.size, workload.rate) == (8_000_000, 2_000_000)


def test_active_defaults_to_rotating_the_cid() -> None:
    scenario = parse(BASE + "  migration: active\nexpect: [cid_changed]\n")
    assert scenario.workload.rotate_cid is True


def test_all_errors_are_collected() -> None:
    text = BASE.replace("8MB", "8XB") + "timeout: 500s\nsteps:\n  - action: wait\nexpect: [nope]\n"
    found = errors_of(text)
    assert len(found) == 4, found
    assert any("workload.size" in e for e in found)
    assert any("timeout: 500s is too long; at most 300s" in e for e in found)
    assert any("steps[0].duration: is required" in e for e in found)
    assert any("unknown check 'nope'" in e for e in found)


def test_steps_are_played_on_the_attachment_state() -> None:
    text = BASE + """\
steps:
  - at: 1s
    action: disconnect
    network: home
  - action: disconnect
    network: home
  - action: connect
    network: cellular
  - action: connect
    network: cellular
expect: [transfer_complete]
"""
    found = errors_of(text)
    assert found == [
        "scenarios/sample.yaml:11: steps[1].network: cannot disconnect 'home': the client is not attached to it "
        "at this step (attached: none)",
        "scenarios/sample.yaml:15: steps[3].network: the client is already attached to 'cellular'",
    ]


def test_triggers() -> None:
    text = BASE + """\
steps:
  - at: 1s
    action: rebind
    router: carrier-nat
  - after: path_validated
    delay: 500ms
    action: rebind
    router: home-router
  - after_bytes: 4MB
    action: blackhole
    network: internet
    state: on
  - action: impair
    network: cellular
    impair: {delay: 40ms, jitter: 5ms, loss: 1%, rate: 10mbit}
  - action: impair
    network: cellular
    reset: true
  - action: wait
    duration: 1s
  - action: connect
    network: office
    address: 7
  - action: renumber
    network: office
    address: 10.3.0.99
expect: [transfer_complete]
"""
    steps = parse(text).steps
    assert [s.trigger.kind for s in steps] == ["at", "after", "after_bytes"] + ["after_step"] * 5
    assert (steps[1].trigger.event, steps[1].trigger.role, steps[1].delay) == ("path_validated", None, 0.5)
    assert steps[2].trigger.bytes == 4_000_000 and steps[2].state is True
    impairment = steps[3].impairment
    assert (impairment.delay, impairment.jitter, impairment.loss, impairment.rate) == (0.04, 0.005, 1.0, 10_000_000)
    assert steps[4].reset is True and steps[4].impairment is None
    assert steps[5].duration == 1.0
    assert steps[6].address == 7 and steps[7].address == "10.3.0.99"
    assert [s.line for s in steps] == [7, 10, 14, 18, 21, 24, 26, 29]


@pytest.mark.parametrize("step, message", [
    ("  - action: migrate\n    network: home\n", "migrate needs workload.migration: active"),
    ("  - action: rebind\n    router: edge\n",
     "'edge' is not allowed; allowed: carrier-nat, carrier-nat64, home-router"),
    ("  - action: blackhole\n    network: home\n    state: maybe\n", "'maybe' is not allowed; allowed: on, off"),
    ("  - action: impair\n    network: home\n", "impair needs either"),
    ("  - action: impair\n    network: home\n    impair: {jitter: 5ms}\n", "needs a delay to vary around"),
    ("  - action: impair\n    network: home\n    impair: {loss: 120}\n", "must be between 0 and 100"),
    ("  - action: connect\n    network: office\n    address: 300\n", "host number must be from 2 to 254"),
    ("  - after_bytes: 9MB\n    action: wait\n    duration: 1s\n", "not less than the download size"),
    ("  - at: 40s\n    action: wait\n    duration: 1s\n", "41s is not before the timeout 30s"),
    ("  - at: 2s\n    action: wait\n    duration: 1s\n  - at: 1s\n    action: wait\n    duration: 1s\n",
     "1s is earlier than at: 2s of steps[0]; steps run in order"),
    ("  - after: bogus:path_validated\n    action: wait\n    duration: 1s\n", "role 'bogus' is not allowed"),
    ("  - action: flap\n    networks: [home, cellular]\n    times: 3\n    interval: 1s\n",
     "the client is not attached to 'cellular'"),
    ("  - at: 1\n    action: wait\n    duration: 1s\n", "1 needs a unit"),
    ("  - at: 25s\n    action: wait\n    duration: 10s\n", "35s is not before the timeout 30s"),
    ("  - action: wait\n    duration: 1s\n    router: home-router\n", "unknown key 'router'"),
])
def test_step_errors(step: str, message: str) -> None:
    found = errors_of(BASE + "steps:\n" + step + "expect: [transfer_complete]\n")
    assert len(found) == 1 and message in found[0], found


@pytest.mark.parametrize("workload, message", [
    ("  transport: tcp\n  migration: active\n", "'active' is QUIC-only"),
    ("  transport: both\n  migration: preferred\n", "no TCP equivalent"),
    ("  rotate_cid: true\n", "needs a client that knows it migrates"),
    ("  migration: preferred\n  port: 443\n", "needs the server port that advertises a preferred address (4443)"),
    ("  interval: 10ms\n", "only applies to kind echo"),
    ("  transport: udp\n", "'udp' is not allowed; allowed: quic, tcp, both"),
])
def test_workload_errors(workload: str, message: str) -> None:
    found = errors_of(BASE + workload + "expect: [transfer_complete]\n")
    assert len(found) == 1 and message in found[0], found


def test_echo_workload() -> None:
    text = "name: sample\ndescription: x\nworkload:\n  kind: echo\n  duration: 6s\nexpect: [max_disruption_ms: 800]\n"
    scenario = parse(text)
    assert (scenario.workload.kind, scenario.workload.interval, scenario.workload.duration) == ("echo", 0.02, 6.0)
    assert scenario.workload.size is None
    assert errors_of(text.replace("  duration: 6s\n", "  size: 1MB\n")) == [
        "scenarios/sample.yaml:5: workload.size: only applies to kind download (kind is echo)",
        "scenarios/sample.yaml:4: workload.duration: is required for an echo (e.g. duration: 6s)",
    ]


def test_expectations() -> None:
    text = BASE + """\
expect:
  - transfer_complete
  - paths_validated: 2
  - paths_validated: "== 1"
  - max_disruption_ms: 1500
  - reconnects: 0
  - cid_changed
  - migrated_to_preferred: 10.9.0.2:4443
"""
    expect = parse(text).expect
    assert [e.argument for e in expect] == [None, Comparison(">=", 2), Comparison("==", 1), Comparison("<=", 1500),
                                            Comparison("==", 0), None, "10.9.0.2:4443"]
    assert expect[1].line == 8


@pytest.mark.parametrize("item, message", [
    ("  - tcp_reconnected\n", "tcp_reconnected applies to tcp only; this workload runs quic"),
    ("  - tcp:reconnects: 1\n", "transport prefix 'tcp' is not a transport of this workload"),
    ("  - transfer_complete: yes\n", "takes no argument"),
    ("  - max_disruption_ms: fast\n", "not a comparison: 'fast'"),
    ("  - {a: 1, b: 2}\n", "must be a check name or a single-key mapping"),
])
def test_expectation_errors(item: str, message: str) -> None:
    found = errors_of(BASE + "expect:\n" + item)
    assert len(found) == 1 and message in found[0], found


def test_initial_state_and_impairment_profiles() -> None:
    topology = TopologyNames(TOPOLOGY.networks, TOPOLOGY.client_networks, TOPOLOGY.routers,
                             default_network=None, profiles=frozenset({"lte", "wifi"}))
    text = BASE + "initial:\n  networks: [cellular, home]\n  impair:\n    cellular: lte\n" \
        "    internet: {profile: wifi, delay: 10ms}\nexpect: [transfer_complete]\n"
    scenario = parse_scenario(text, "sample.yaml", topology)
    assert scenario.initial.networks == ("cellular", "home")
    assert scenario.initial.impair["cellular"].profile == "lte"
    assert scenario.initial.impair["internet"].delay == 0.01
    _, errors = check_scenario_text(BASE + "expect: [transfer_complete]\n", "sample.yaml", topology)
    assert [e.field for e in errors] == ["initial.networks"]
    _, errors = check_scenario_text(text.replace("lte", "5g"), "sample.yaml", topology)
    assert [(e.field, e.message) for e in errors] == [
        ("initial.impair.cellular", "'5g' is not allowed; allowed: lte, wifi")]


def test_flap_longer_than_the_timeout() -> None:
    text = BASE + "initial:\n  networks: [home, office]\nsteps:\n  - at: 5s\n    action: flap\n" \
        "    networks: [home, office]\n    times: 30\n    interval: 1s\nexpect: [transfer_complete]\n"
    assert errors_of(text) == [
        "scenarios/sample.yaml:9: steps[0].at: runs until 34s or later; 34s is not before the timeout 30s"]


def test_topology_names_are_consistent() -> None:
    with pytest.raises(ValueError):
        TopologyNames(frozenset({"a"}), frozenset({"a", "b"}), frozenset())
    with pytest.raises(ValueError):
        TopologyNames(frozenset({"a", "b"}), frozenset({"a"}), frozenset(), default_network="b")


def test_value_parsers() -> None:
    assert parse_duration("500ms") == 0.5 and parse_duration("2s") == 2.0 and parse_duration("1min") == 60.0
    assert parse_size("512KB") == 512_000 and parse_size("1MiB") == 2**20 and parse_size(1234) == 1234
    assert parse_byte_rate("2MB/s") == 2_000_000
    assert parse_bit_rate("10mbit") == 10_000_000 and parse_bit_rate("500kbit") == 500_000
    assert parse_percent("2.5%") == 2.5
    for parser, bad in ((parse_duration, "2 hours"), (parse_size, "8mb"), (parse_byte_rate, "2MB"),
                        (parse_bit_rate, "10MB"), (parse_percent, "lots")):
        with pytest.raises(ValueError):
            parser(bad)
