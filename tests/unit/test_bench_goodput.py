"""The goodput part of the bench: figures from recorded events, the ratio against its 0.8 limit,
and the unpaced variant of the baseline it runs (no Docker)."""

import json

import pytest

from lab.bench.figures import GOODPUT_LIMIT, goodput_figures, goodput_mbit
from lab.bench.goodput import transfer, unpaced
from lab.topology.load import ROOT, load_topology


def test_goodput_is_bytes_over_the_download_duration() -> None:
    assert goodput_mbit(40_000_000, 8000.0) == pytest.approx(40.0)
    assert goodput_mbit(None, 8000.0) is None and goodput_mbit(40_000_000, 0) is None


def test_ratio_of_medians_against_the_limit_with_run_counts() -> None:
    found = goodput_figures([30.0, 32.0, None], [40.0, 50.0, 45.0])
    assert found["nat_mbit"]["runs"] == 2 and found["loopback_mbit"]["runs"] == 3
    assert found["ratio_of_medians"] == pytest.approx(31.0 / 45.0)
    assert found["limit"] == GOODPUT_LIMIT and found["within_limit"] is False
    assert goodput_figures([40.0], [45.0])["within_limit"] is True


def test_nothing_measured_is_not_within_the_limit() -> None:
    found = goodput_figures([None], [45.0])
    assert found["ratio_of_medians"] is None and found["within_limit"] is False


def test_the_client_transfer_is_found_among_its_output_lines() -> None:
    done = {"type": "transfer_complete", "role": "client", "bytes": 10, "duration_ms": 5.0, "ok": True}
    lines = "\n".join(["not json", '{"type": "progress", "role": "client"}', "{broken", json.dumps(done)])
    assert transfer(lines) == done
    assert transfer('{"type": "progress", "role": "client"}') is None


def test_the_nat_runs_are_the_baseline_unpaced_and_longer(tmp_path) -> None:
    topology = load_topology()
    scenario = unpaced(ROOT / "scenarios" / "baseline.yaml", 40_000_000, tmp_path, topology)
    assert scenario.workload.size == 40_000_000 and not scenario.workload.rate
    assert scenario.workload.kind == "download" and not scenario.steps
