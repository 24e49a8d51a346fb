"""Bench figures: distributions carry their run count, limits follow the scenario, ratios are honest."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from lab.bench.figures import LIMITS, Distribution, histogram_svg, limit_for, ratio


def test_a_distribution_keeps_its_run_count_and_ignores_unobserved_runs():
    d = Distribution.of([12.0, None, 3.0, 7.0])
    assert (d.runs, d.median, d.minimum, d.maximum, d.p95) == (3, 7.0, 3.0, 12.0, 12.0)
    assert d.text() == "median 7 [3-12] ms, 3 run(s)"
    assert Distribution.of([None]).text() == "not observed" and Distribution.of([]).runs == 0


def test_each_scenario_kind_gets_its_physical_limit():
    assert limit_for(["active", "make-before-break"], "active")[0] == "make-before-break"
    assert limit_for(["passive", "rebinding"], "passive")[0] == "rebinding"
    assert limit_for(["flagship", "break-before-make"], "passive")[0] == "break-before-make"
    assert limit_for(["preferred", "server"], "preferred")[0] == "preferred-address"
    assert limit_for(["control"], "passive") is None
    # r = 50 ms, detection delay 200 ms, noise floor 4 ms
    assert LIMITS["make-before-break"].value(50, 200, 4) == 55
    assert LIMITS["break-before-make"].value(50, 200, 4) == 275
    assert LIMITS["rebinding"].value(50, 200, 4) == 275
    assert LIMITS["preferred-address"].value(50, 200, 4) == 4


def test_ratio_to_a_limit():
    assert ratio(110.0, 55.0) == 2.0 and ratio(None, 5.0) is None and ratio(3.0, 0.0) is None


def test_the_histogram_is_a_valid_svg_with_one_bar_per_bucket():
    svg = histogram_svg({"runs": 5, "gap_histogram_ms": {"1": 120, "2": 9, "7": 1}})
    root = ET.fromstring(svg)
    bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.find("{http://www.w3.org/2000/svg}title")
            is not None]
    assert [b.find("{http://www.w3.org/2000/svg}title").text for b in bars] == ["1 ms: 120", "2 ms: 9", "7 ms: 1"]


def test_the_bench_page_links_every_figure_to_its_runs(tmp_path):
    from lab.bench.page import bench_html

    run = tmp_path.parent / "artifacts" / "nat-rebinding" / "20261201-101113-f8ba"
    results = {"migration": [{"scenario": "nat-rebinding", "rtt_ms": 50.0, "runs": 1, "run_dirs": [str(run)],
                              "transports": {"quic": {
                                  "disruption_ms": {"runs": 1, "median": 148.0, "minimum": 148.0, "maximum": 148.0},
                                  "recovery_ms": {"runs": 0}, "validation_ms": {"runs": 0},
                                  "limit": {"kind": "rebinding", "figure": "disruption_ms", "rule": "<= detection",
                                            "limit_ms": 275.0, "ratio_of_median": 148 / 275}}}}]}
    page = bench_html(results, tmp_path / "bench")
    assert "148 [148-148] ms" in page and "0.54" in page
    assert 'href="../../artifacts/nat-rebinding/20261201-101113-f8ba/report.html"' in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "<script" not in page


def test_a_detection_delay_variant_is_the_scenario_with_only_probe_after_changed(tmp_path):
    import json
    from pathlib import Path

    from lab.bench.runs import with_probe_after
    from lab.scenario.names import topology_names
    from lab.scenario.schema import load_scenario
    from lab.topology.model import topology_from_config

    root = Path(__file__).resolve().parents[2]
    topology = topology_from_config(json.loads((root / "tests/data/runs/recorded-rebinding/topology.json").read_text()))
    source = root / "scenarios" / "nat-rebinding.yaml"
    variant = with_probe_after(source, 50, tmp_path, topology)
    original = load_scenario(source, topology_names(topology))
    assert variant.workload.probe_after == 0.05 and original.workload.probe_after == 0.2
    def steps(s):
        return [(x.action, x.trigger, x.router, x.network) for x in s.plan()]

    assert variant.name == original.name and steps(variant) == steps(original)
    assert [(e.check, e.argument) for e in variant.expect] == [(e.check, e.argument) for e in original.expect]


def test_the_bench_page_shows_the_machines_own_floor_beside_the_labs(tmp_path):
    from lab.bench.machine import Hiccup, summarise
    from lab.bench.page import bench_html

    machine = [summarise(1, 10.0, [[]]), summarise(2, 10.0, [[Hiccup(9.9, 0.1, 0.0, 0)], []])]
    results = {"noise": {"method": "baseline", "noise_floor_ms": {"runs": 1, "median": 4.2, "minimum": 4.2,
                                                                  "maximum": 4.2},
                         "within_limit": 1, "runs": 1, "limit_ms": 5.0, "ratio_to_limit": 0.84, "run_dirs": [],
                         "gap_histogram_ms": {"1": 10, "4": 1}, "machine_floor": machine}}
    page = bench_html(results, tmp_path / "bench")
    assert "<td>2</td><td>10</td><td>9.9 ms</td><td>1</td><td>1 gaps, 10 ms</td>" in page


def test_the_bench_page_shows_the_delivery_floor_and_the_machines_wake_ups(tmp_path):
    from lab.bench.machine import Oversleep, summarise_wakeups
    from lab.bench.page import bench_html

    results = {"noise": {"method": "baseline", "noise_floor_ms": {"runs": 1, "median": 4.2, "minimum": 4.2,
                                                                  "maximum": 4.2},
                         "delivery_floor_ms": {"runs": 1, "median": 7.5, "minimum": 7.5, "maximum": 7.5},
                         "delivery_within_limit": 0, "within_limit": 1, "runs": 1, "limit_ms": 5.0,
                         "ratio_to_limit": 0.84, "run_dirs": [], "gap_histogram_ms": {"1": 10, "4": 1},
                         "machine_wakeups": summarise_wakeups(10.0, 9000, [Oversleep(3.8, 3.7)])}}
    page = bench_html(results, tmp_path / "bench")
    assert "application read it" in page and "0/1 within 5 ms" in page
    assert "woken up to 3.8 ms late" in page and "gaps of 4.8 ms from its wake-ups alone" in page


def test_the_bench_page_shows_the_machines_share_measured_beside_the_runs(tmp_path):
    from lab.bench.page import bench_html

    share = {"method": "a sleeper pinned to each of the 2 cores", "witness_late_3ms": 4, "gaps_at_limit": 3,
             "gaps_with_machine": 2, "machine_ms_in_gaps": 7.5, "lab_within_limit": 1,
             "lab_floor_ms": {"runs": 1, "median": 4.1, "minimum": 4.1, "maximum": 4.1}}
    results = {"noise": {"method": "baseline", "noise_floor_ms": {"runs": 1, "median": 8.2, "minimum": 8.2,
                                                                  "maximum": 8.2},
                         "within_limit": 0, "runs": 1, "limit_ms": 5.0, "ratio_to_limit": 1.64, "run_dirs": [],
                         "gap_histogram_ms": {"1": 10, "8": 1}, "machine_share": share}}
    page = bench_html(results, tmp_path / "bench")
    assert "2 of the 3 gaps &ge; 5 ms had the machine holding a core (7.5 ms of them)" in page
    assert "1/1 within 5 ms" in page
