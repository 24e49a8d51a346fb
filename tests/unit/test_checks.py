"""Checks on recorded timelines: each verdict, and what each check says it observed.

The timelines in tests/data/timelines/ are realistic recordings; the lead may replace or add
timelines recorded from the real lab. Keep the table below in step with them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lab.events import ActivePathChanged, DataGap, EchoRtt, HandshakeCompleted, MigrationCompleted, PeerCidChanged
from lab.observe.timeline import Timeline, read_jsonl
from lab.scenario.schema import TopologyNames, parse_scenario
from lab.verify.checks import CHECKS, CheckResult, Comparison, comparison_parser, evaluate, run_check

TIMELINES = Path(__file__).resolve().parents[1] / "data" / "timelines"
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
TOPOLOGY = TopologyNames(
    networks=frozenset({"home", "cellular", "office", "internet", "datacenter"}),
    client_networks=frozenset({"home", "cellular", "office"}),
    routers=frozenset({"home-router", "carrier-nat", "office-router"}),
    default_network="home",
)


def load(name: str) -> Timeline:
    return read_jsonl(TIMELINES / f"{name}.jsonl")


# (timeline, check, argument, passed, substring of observed)
CASES = [
    ("wifi-to-cellular-pass", "connection_survived", None, True, "one connection 8f3a9c2e"),
    ("wifi-to-cellular-pass", "single_handshake", None, True, "client 1, server 1"),
    ("wifi-to-cellular-pass", "transfer_complete", None, True, "12000000 bytes"),
    ("wifi-to-cellular-pass", "paths_validated", ">= 1", True, "1 (10.0.0.12:30001)"),
    ("wifi-to-cellular-pass", "paths_validated", 2, False, "1 (10.0.0.12:30001)"),
    ("wifi-to-cellular-pass", "server_saw_addresses", 2, True, "10.0.0.11:40001, 10.0.0.12:30001"),
    ("wifi-to-cellular-pass", "server_saw_ips", "== 2", True, "2 (10.0.0.11, 10.0.0.12)"),
    ("wifi-to-cellular-pass", "cid_unchanged", None, True, "0 change(s)"),
    ("wifi-to-cellular-pass", "cid_changed", None, False, "0"),
    # The 210 ms gap before the first network action does not count; the 520 ms one after it does.
    ("wifi-to-cellular-pass", "max_disruption_ms", 1000, True, "520 ms (data_gap) after disconnect home"),
    ("wifi-to-cellular-pass", "max_disruption_ms", 500, False, "520 ms"),
    ("wifi-to-cellular-pass", "validation_ms", 100, True, "22.0 ms (max of 1)"),
    ("wifi-to-cellular-pass", "amplification_respected", None, True,
     "1 amplification_limited event(s) on 2 server path(s), none over 3x"),
    ("wifi-to-cellular-pass", "migrated_to_preferred", None, False, "no client active_path_changed"),
    ("wifi-to-cellular-pass", "reconnects", 0, True, "0 (completed 0)"),
    ("second-handshake", "connection_survived", None, False, "2 QUIC connections (8f3a9c2e, e1b7d390)"),
    ("second-handshake", "connection_survived", None, False, "client closed (idle timeout) before transfer_complete"),
    ("second-handshake", "single_handshake", None, False, "client 2, server 2"),
    ("second-handshake", "transfer_complete", None, True, "sha256"),
    ("second-handshake", "paths_validated", 1, False, "0"),
    ("second-handshake", "max_disruption_ms", 1500, False, "2450 ms (data_gap)"),
    ("unanswered-challenge", "paths_validated", 1, False, "0"),
    ("unanswered-challenge", "validation_ms", 1000, False, "no path validated"),
    ("unanswered-challenge", "transfer_complete", None, False, "no transfer_complete"),
    ("unanswered-challenge", "max_disruption_ms", 1000, False, ">= 7000 ms, data never resumed after rebind"),
    ("unanswered-challenge", "amplification_respected", None, False, "4800 sent for 1200 received"),
    ("unanswered-challenge", "server_saw_addresses", 2, True, "10.0.0.11:40777"),
    ("unanswered-challenge", "server_saw_ips", 1, True, "1 (10.0.0.11)"),
    ("unanswered-challenge", "connection_survived", None, True, "no error close"),
    ("tcp-reconnect", "tcp_reconnected", None, True, "1 reconnect_started, 1 reconnected, took 130 ms"),
    ("tcp-reconnect", "reconnects", 1, True, "1 (completed 1)"),
    ("tcp-reconnect", "connection_survived", None, False, "reconnected 1 time(s)"),
    ("tcp-reconnect", "transfer_complete", None, True, "8000000 bytes"),
    ("tcp-reconnect", "server_saw_ips", 2, True, "10.0.0.11, 10.0.0.12"),
    ("tcp-reconnect", "max_disruption_ms", 2000, True, "1600 ms (data_gap) after disconnect home"),
    ("wifi-to-cellular-pass", "tcp_reconnected", None, False, "0 reconnect_started"),
]


@pytest.mark.parametrize("timeline, check, argument, passed, observed", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_check_on_recorded_timeline(timeline: str, check: str, argument: object, passed: bool, observed: str) -> None:
    result = run_check(load(timeline), check, argument)
    assert result.name == check
    assert result.passed is passed, result
    assert observed in str(result.observed), result
    json.dumps(result.to_dict())  # every result is JSON-serialisable


def test_every_check_runs_on_every_timeline_and_explains_itself() -> None:
    arguments = {"paths_validated": 1, "server_saw_addresses": 1, "server_saw_ips": 1, "max_disruption_ms": 1000,
                 "validation_ms": 100, "reconnects": 0, "rebuffer_events": 0,
                 "max_rebuffer_ms": 1000, "startup_ms": 1000, "freeze_ms": 150}
    for path in TIMELINES.glob("*.jsonl"):
        timeline = read_jsonl(path)
        for name in CHECKS:
            result = run_check(timeline, name, arguments.get(name))
            assert isinstance(result, CheckResult) and str(result.observed) and str(result.expected)


def test_comparison_parser() -> None:
    at_least = comparison_parser(">=")
    assert at_least(2) == Comparison(">=", 2) and str(at_least(2)) == ">= 2"
    assert at_least("== 1") == Comparison("==", 1) and at_least("=3") == Comparison("==", 3)
    assert at_least("<1500") == Comparison("<", 1500) and at_least("2.5").value == 2.5
    for bad in ("=> 2", "two", -1, True, None, ">= -1"):
        with pytest.raises(ValueError):
            at_least(bad)
    assert Comparison("!=", 0).holds(1) and not Comparison(">", 1).holds(1)


def test_registry_parsers_reject_arguments_for_plain_checks() -> None:
    with pytest.raises(ValueError, match="takes no argument"):
        CHECKS["single_handshake"].parse(True)
    assert CHECKS["cid_changed"].parse(None) is None
    assert CHECKS["migrated_to_preferred"].parse("10.9.0.2") == "10.9.0.2"
    assert all(spec.doc for spec in CHECKS.values())


def test_cid_changed_counts_client_switches() -> None:
    timeline = Timeline((HandshakeCompleted(ts=0.5, role="client", peer="10.0.0.2:443"),
                         PeerCidChanged(ts=1.0, role="client", old_cid="aa", new_cid="bb")))
    assert run_check(timeline, "cid_changed").passed
    assert run_check(timeline, "cid_changed", "== 1").passed
    assert not run_check(timeline, "cid_changed", 2).passed
    result = run_check(timeline, "cid_unchanged")
    assert not result.passed and result.observed == "1 change(s) (aa->bb)"


def test_migrated_to_preferred() -> None:
    events = (HandshakeCompleted(ts=0.1, role="client", peer="10.0.0.2:4443"),
              ActivePathChanged(ts=0.3, role="client", old_peer="10.0.0.2:4443", new_peer="10.9.0.2:4443"))
    timeline = Timeline(events)
    assert run_check(timeline, "migrated_to_preferred").observed == "client moved 10.0.0.2:4443 -> 10.9.0.2:4443"
    assert run_check(timeline, "migrated_to_preferred", "10.9.0.2").passed
    assert run_check(timeline, "migrated_to_preferred", "10.9.0.2:4443").passed
    assert not run_check(timeline, "migrated_to_preferred", "10.9.0.3").passed
    port_only = Timeline((events[0], ActivePathChanged(ts=0.3, role="client", old_peer="10.0.0.2:4443",
                                                       new_peer="10.0.0.2:5555")))
    assert run_check(port_only, "migrated_to_preferred").passed  # loopback: only the port differs
    back = Timeline((events[0], ActivePathChanged(ts=0.3, role="client", old_peer="10.0.0.2:5555",
                                                  new_peer="10.0.0.2:4443")))
    assert not run_check(back, "migrated_to_preferred").passed
    reported = Timeline((events[0], MigrationCompleted(ts=0.4, role="client", mode="preferred", peer="10.9.0.2:4443")))
    assert run_check(reported, "migrated_to_preferred").passed


def test_echo_disruption_without_network_action_counts_the_whole_run() -> None:
    echoes = tuple(EchoRtt(ts=t, role="client", seq=i, rtt_ms=5) for i, t in enumerate((1.0, 1.02, 1.04, 1.9, 1.92)))
    result = run_check(Timeline(echoes), "max_disruption_ms", 1000)
    assert result.passed and result.observed == "860 ms (echo) (no network action)"
    assert run_check(Timeline(echoes[:1]), "max_disruption_ms", 1000).observed == "no gap in 1 data samples " \
        "(no network action)"


# Checks with nothing to judge are "not verified", never passed (the empty timeline: no endpoint spoke).
ARGUMENTS = {"paths_validated": 1, "server_saw_addresses": 1, "server_saw_ips": 1, "max_disruption_ms": 1000,
             "validation_ms": 100, "reconnects": 0, "rebuffer_events": 0, "max_rebuffer_ms": 1000, "startup_ms": 1000,
             "freeze_ms": 150}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_no_check_passes_on_an_empty_timeline(name: str) -> None:
    result = run_check(Timeline(), name, ARGUMENTS.get(name), "quic")
    assert not result.passed and result.status == "not verified" and result.evidence == 0, result


def test_absence_checks_are_not_verified_without_a_connection() -> None:
    # The server spoke but the client never connected: nothing proves "no CID change" or "no reconnect".
    timeline = Timeline((DataGap(ts=1.0, role="server", start_ts=0.5, end_ts=1.0, gap_ms=500),))
    for name, argument in (("cid_unchanged", None), ("reconnects", 0), ("max_disruption_ms", 1000),
                           ("amplification_respected", None)):
        result = run_check(timeline, name, argument)
        assert result.status == "not verified", result


def test_a_trailing_stall_is_an_ongoing_disruption() -> None:
    # Data stops at 2 s and the run ends at 9 s without transfer_complete: a stall, not "no gap".
    from lab.events import Action, Progress

    events = (HandshakeCompleted(ts=0.5, role="client", peer="10.0.0.2:443"),
              *(Progress(ts=0.6 + i * 0.2, role="client", bytes=i * 1000) for i in range(8)),
              Action(ts=1.5, role="controller", transport="", action="blackhole", target="home"),
              Action(ts=9.0, role="controller", transport="", action="run_end", target="x"))
    result = run_check(Timeline(events), "max_disruption_ms", 3000, "quic")
    assert not result.passed and result.observed.startswith(">= 7000 ms, data never resumed"), result


def test_evaluate_scopes_expectations_by_transport() -> None:
    scenario = parse_scenario((SCENARIOS / "tcp-vs-quic.yaml").read_text(), "scenarios/tcp-vs-quic.yaml", TOPOLOGY)
    tcp = evaluate(load("tcp-reconnect"), scenario.expect, "tcp")
    assert [(r.name, r.passed, r.transport) for r in tcp] == [
        ("transfer_complete", True, "tcp"), ("tcp_reconnected", True, "tcp"), ("reconnects", True, "tcp")]
    quic = evaluate(load("wifi-to-cellular-pass"), scenario.expect, "quic")
    assert [r.name for r in quic] == ["transfer_complete", "connection_survived", "single_handshake",
                                      "max_disruption_ms"]
    assert all(r.passed for r in quic)


def test_evaluate_on_one_timeline_holding_both_runs() -> None:
    """tcp-vs-quic may record both runs in one timeline: each transport sees its own actions only."""
    tcp, quic = load("tcp-reconnect"), load("wifi-to-cellular-pass")
    shift = tcp.end + 5.0 - quic.start

    def move(e: object) -> object:
        if isinstance(e, DataGap):
            return dataclasses.replace(e, ts=e.ts + shift, start_ts=e.start_ts + shift, end_ts=e.end_ts + shift)
        return dataclasses.replace(e, ts=e.ts + shift)

    moved = [move(e) for e in quic]
    both = Timeline.from_streams(tcp, moved)
    assert run_check(both, "max_disruption_ms", 1000, "quic").observed == "520 ms (data_gap) after disconnect home"
    assert run_check(both, "max_disruption_ms", 2000, "tcp").observed == "1600 ms (data_gap) after disconnect home"
    assert len(both.for_transport("tcp").actions()) == 4 and len(both.for_transport("quic").actions()) == 4
    assert both.for_transport("quic").first_network_action().ts == pytest.approx(moved[0].ts + 2.0)


def test_flagship_scenario_passes_on_the_passing_timeline_and_fails_on_the_broken_one() -> None:
    scenario = parse_scenario((SCENARIOS / "wifi-to-cellular.yaml").read_text(), "scenarios/wifi-to-cellular.yaml",
                              TOPOLOGY)
    passing = evaluate(load("wifi-to-cellular-pass"), scenario.expect, "quic")
    assert all(r.passed for r in passing), [r for r in passing if not r.passed]
    broken = evaluate(load("second-handshake"), scenario.expect, "quic")
    assert {r.name for r in broken if not r.passed} == {"connection_survived", "single_handshake", "paths_validated"}
