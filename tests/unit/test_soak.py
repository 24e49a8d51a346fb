"""The soak's pure parts: pass rates per scenario, failing checks counted per run, the tables."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from lab.bench.soak import FailedCheck, SoakRun, failure_lines, markdown, report, run_line, svg, tally, text_table

SHA = FailedCheck("transfer_complete", "failed", "sha256 mismatch: 1 of 24000000 bytes lost", "quic")
LATE = FailedCheck("max_disruption_ms", "failed", "3400 ms (data_gap)", "quic")
RUNS = [
    SoakRun("flapping", 1, True, 21.0, "artifacts/flapping/a"),
    SoakRun("flapping", 2, False, 22.0, "artifacts/flapping/b", failed=(SHA, LATE)),
    SoakRun("baseline", 1, True, 8.0, "artifacts/baseline/a"),
    SoakRun("flapping", 3, False, 35.0, "artifacts/flapping/c", error="timeout: the scenario did not finish within "
            "30 s", failed=(FailedCheck("run_completed", "failed", "timeout: ..."), LATE)),
    SoakRun("baseline", 2, True, 9.0, "artifacts/baseline/b"),
]


def test_pass_rates_per_scenario_in_the_order_they_ran_with_each_check_counted_once_per_run():
    flapping, baseline = tally(RUNS)
    assert (flapping.scenario, flapping.runs, flapping.passed) == ("flapping", 3, 1)
    assert round(flapping.rate, 3) == 0.333
    assert flapping.failing == {"max_disruption_ms (quic)": 2, "error": 1, "run_completed": 1,
                                "transfer_complete (quic)": 1}
    assert (baseline.runs, baseline.passed, baseline.failing, baseline.rate) == (2, 2, {}, 1.0)
    assert flapping.duration_s.median == 22.0 and baseline.duration_s.runs == 2
    assert tally([]) == []


def test_the_progress_line_says_which_run_failed_and_why():
    assert run_line(RUNS[0], 20) == "soak: flapping run 1/20: PASS (21.0 s, artifacts/flapping/a)"
    assert run_line(RUNS[1], 20).endswith("FAIL (22.0 s, artifacts/flapping/b): transfer_complete (quic), "
                                          "max_disruption_ms (quic)")
    assert run_line(RUNS[3], 20).endswith(": timeout: the scenario did not finish within 30 s")


def test_every_failed_run_is_listed_with_what_its_checks_observed():
    lines = failure_lines(RUNS)
    assert lines[:3] == ["flapping run 2 (artifacts/flapping/b):",
                         "  transfer_complete (quic): failed: sha256 mismatch: 1 of 24000000 bytes lost",
                         "  max_disruption_ms (quic): failed: 3400 ms (data_gap)"]
    assert lines[3:5] == ["flapping run 3 (artifacts/flapping/c):",
                          "  error: timeout: the scenario did not finish within 30 s"]
    assert not any("baseline" in line for line in lines)


def test_the_tables_and_the_chart():
    tallies = tally(RUNS)
    text = text_table(tallies)
    assert text[1].split()[:3] == ["flapping", "1/3", "33.3%"] and text[2].split()[:4] == ["baseline", "2/2", "100.0%",
                                                                                            "-"]
    assert text[-1].split()[:3] == ["all", "3/5", "60.0%"]
    md = markdown(tallies, RUNS, "Soak x")
    assert "| flapping | 1/3 | 33% | `max_disruption_ms (quic)` x2, `error` x1, `run_completed` x1, " \
           "`transfer_complete (quic)` x1 | 22.0 s |" in md
    assert "| baseline | 2/2 | 100% | - | 8.5 s |" in md and "    flapping run 3 (artifacts/flapping/c):" in md
    chart = ET.fromstring(svg(tallies))
    labels = [t.text for t in chart.iter("{http://www.w3.org/2000/svg}text")]
    assert labels == ["pass rate per scenario", "flapping", "1/3", "baseline", "2/2"]


def test_the_json_round_trips_every_run():
    data = json.loads(json.dumps(report(tally(RUNS), RUNS, runs_per_scenario=3)))
    assert data["all"] == {"runs": 5, "passed": 3} and data["runs_per_scenario"] == 3
    assert [SoakRun.from_dict(r) for r in data["runs"]] == RUNS
    assert data["scenarios"][0]["pass_rate"] == 0.3333
