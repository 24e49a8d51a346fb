"""Metrics, goodput series and plot markers computed from recorded timelines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.events import Action, EchoRtt, HandshakeCompleted, Progress
from lab.observe.timeline import Timeline, read_jsonl
from lab.report.metrics import compute_metrics, goodput_series, network_events

TIMELINES = Path(__file__).resolve().parents[1] / "data" / "timelines"


def load(name: str) -> Timeline:
    return read_jsonl(TIMELINES / f"{name}.jsonl")


def test_metrics_of_the_passing_run() -> None:
    metrics = compute_metrics(load("wifi-to-cellular-pass"))
    assert metrics.disruption_ms == 520.0 and not metrics.disruption_ongoing
    assert metrics.validation_ms == 22.0
    assert (metrics.handshakes, metrics.paths_seen, metrics.ips_seen, metrics.paths_validated) == (1, 2, 2, 1)
    assert metrics.bytes == 12_000_000
    assert metrics.duration_s == pytest.approx(6.498)
    assert metrics.goodput_mbps == pytest.approx(12_000_000 * 8 / 6.498 / 1e6)
    assert metrics.reconnects == 0 and metrics.cid_changes == 0
    assert metrics.time_to_first_byte_ms == pytest.approx(148.0, abs=0.01)
    assert metrics.network_actions == 3 and metrics.first_action_s == pytest.approx(2.0)
    json.dumps(metrics.to_dict())


def test_metrics_of_broken_runs() -> None:
    broken = compute_metrics(load("second-handshake"))
    assert broken.handshakes == 2 and broken.disruption_ms == 2450.0 and broken.validation_ms is None
    stalled = compute_metrics(load("unanswered-challenge"))
    assert stalled.disruption_ongoing and stalled.disruption_ms == pytest.approx(7000.0)
    assert stalled.bytes == 1_800_000
    tcp = compute_metrics(load("tcp-reconnect"), transport="tcp")
    assert tcp.transport == "tcp" and tcp.reconnects == 1 and tcp.disruption_ms == 1600.0
    assert compute_metrics(load("tcp-reconnect"), transport="quic").bytes == 0


def test_disruption_is_none_without_a_network_action() -> None:
    timeline = Timeline((HandshakeCompleted(ts=0.0, role="client"), Progress(ts=0.5, role="client", bytes=10),
                         Action(ts=0.6, role="controller", action="impair", target="home")))
    metrics = compute_metrics(timeline)
    assert metrics.disruption_ms is None and metrics.first_action_s is None
    assert metrics.time_to_first_byte_ms == pytest.approx(500.0)


def test_echo_rtt_summary() -> None:
    echoes = tuple(EchoRtt(ts=0.1 * i, role="client", seq=i, rtt_ms=rtt) for i, rtt in enumerate((10, 30, 20, 400)))
    metrics = compute_metrics(Timeline(echoes))
    assert metrics.echo_rtt_ms_median == 25.0 and metrics.echo_rtt_ms_max == 400
    assert metrics.goodput_mbps is None and metrics.bytes == 0


def test_goodput_series_shows_the_gap_as_empty_bins() -> None:
    timeline = load("wifi-to-cellular-pass")
    series = goodput_series(timeline, bin_ms=100)
    times = [t for t, _ in series]
    assert times == sorted(times) and times[0] == pytest.approx(0.1)
    assert all(b - a == pytest.approx(0.1) for a, b in zip(times, times[1:], strict=False))
    # 2 MB/s paced = 16 Mbit/s in steady state.
    by_time = {round(t, 1): mbps for t, mbps in series}
    assert by_time[1.5] == pytest.approx(16.0)
    assert by_time[2.2] == 0.0 and by_time[2.4] == 0.0  # during the handover: nothing
    total_bits = sum(mbps * 1e6 * 0.1 for _, mbps in series)
    assert total_bits == pytest.approx(timeline.last("progress", "client").bytes * 8)


def test_goodput_series_options() -> None:
    timeline = Timeline(tuple(Progress(ts=10.0 + 0.25 * i, role="client", bytes=250_000 * i) for i in range(9)))
    series = goodput_series(timeline, bin_ms=1000)
    assert series == [(0.0, 6.0), (1.0, 8.0), (2.0, 2.0)]
    shifted = goodput_series(timeline, bin_ms=1000, t0=9.0)
    assert [t for t, _ in shifted] == [1.0, 2.0, 3.0]
    restarted = Timeline((Progress(ts=0.0, role="client", bytes=100), Progress(ts=0.5, role="client", bytes=50)))
    assert goodput_series(restarted, bin_ms=1000) == [(0.0, 150 * 8 / 1e6)]
    assert goodput_series(Timeline()) == []
    with pytest.raises(ValueError):
        goodput_series(timeline, bin_ms=0)


def test_network_events_are_relative_controller_actions() -> None:
    markers = network_events(load("wifi-to-cellular-pass"))
    assert [(m.action, m.target, m.network_changing) for m in markers] == [
        ("start_workload", "client", False), ("disconnect", "home", True), ("connect", "cellular", True),
        ("route", "cellular", True)]
    assert [round(m.t, 3) for m in markers] == [0.0, 2.0, 2.3, 2.31]
    assert markers[2].detail == {"address": "10.2.0.10"}
    assert network_events(load("wifi-to-cellular-pass"), t0=1763769601.0)[1].t == pytest.approx(1.0)
