"""Checks and metrics on timelines recorded from the real lab (tests/data/timelines/lab/).

Each recording is a run's events.jsonl from a clean-clone `make test` run, with the figures its
report gave. The checks must reach the same verdicts on the recording, and must catch the same
runs broken in the ways the lab cares about (a lost validation, a second handshake).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lab import events as ev
from lab.observe.timeline import Timeline, read_jsonl
from lab.report.metrics import compute_metrics
from lab.scenario.schema import TopologyNames, load_scenario
from lab.verify.checks import evaluate, run_check

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "data" / "timelines" / "lab"
TOPOLOGY = TopologyNames(networks=frozenset({"home", "cellular", "office", "internet", "datacenter"}),
                         client_networks=frozenset({"home", "cellular", "office"}),
                         routers=frozenset({"home-router", "carrier-nat", "office-router"}), default_network="home")
NAMES = sorted(p.stem for p in RECORDED.glob("*.jsonl"))


def scenario_file(name: str) -> Path:
    path = ROOT / "scenarios" / f"{name}.yaml"
    return path if path.exists() else ROOT / "tests" / "data" / "runtime" / f"{name}.yaml"


def recorded(name: str) -> tuple[Timeline, dict]:
    return read_jsonl(RECORDED / f"{name}.jsonl"), json.loads((RECORDED / f"{name}.report.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_checks_reach_the_recorded_verdict(name):
    timeline, report = recorded(name)
    scenario = load_scenario(scenario_file(name), TOPOLOGY)
    results = [r for t in scenario.transports for r in evaluate(timeline, scenario.expect, t)]
    assert results
    assert all(r.passed for r in results) == report["passed"], [r for r in results if not r.passed]


@pytest.mark.parametrize("name", NAMES)
def test_metrics_match_the_recorded_report(name):
    timeline, report = recorded(name)
    for transport, expected in report["metrics"].items():
        metrics = compute_metrics(timeline, transport)
        for key, value in expected.items():
            assert getattr(metrics, key) == pytest.approx(value), (transport, key)


def test_a_lost_validation_fails_paths_validated():
    timeline, _ = recorded("wifi-to-cellular")
    assert run_check(timeline, "paths_validated", ">= 1", "quic").passed
    broken = Timeline.from_streams([e for e in timeline if not isinstance(e, ev.PathValidated)])
    assert not run_check(broken, "paths_validated", ">= 1", "quic").passed


def test_a_second_handshake_fails_single_handshake():
    timeline, _ = recorded("wifi-to-cellular")
    handshake = timeline.first(ev.HandshakeCompleted, "client")
    again = dataclasses.replace(handshake, ts=handshake.ts + 5, conn="0000000000000000")
    broken = Timeline.from_streams(list(timeline) + [again])
    result = run_check(broken, "single_handshake", None, "quic")
    assert not result.passed and "client 2" in str(result.observed)


def test_the_tcp_baseline_reconnected_in_the_recorded_comparison():
    timeline, report = recorded("tcp-vs-quic")
    assert run_check(timeline, "tcp_reconnected", None, "tcp").passed
    assert report["metrics"]["tcp"]["handshakes"] == 2 and report["metrics"]["quic"]["handshakes"] == 1
