"""`scenario run --pipeline A B`: each run is judged in the background while the next one plays; every verdict
and report is written and the same as judging it again, printed in the order of the runs, with
the exit codes of a run judged before the next one."""

from __future__ import annotations

import json

from lab.control.actions import Lab
from lab.topology.load import ROOT
from tests.integration.conftest import run_lab
from tests.integration.test_scenarios import assert_restored, run_scenario

STUCK = str(ROOT / "tests" / "data" / "runtime" / "stuck-blackhole.yaml")


def _latest(name: str):
    return (ROOT / "artifacts" / name / "latest").resolve()


def test_two_scenarios_are_judged_in_the_background_with_their_reports(lab):
    result = run_scenario("--pipeline", "baseline", "nat-rebinding", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    out = result.stdout
    # each verdict, in the order of the runs, then the summary
    assert out.index("baseline: PASSED") < out.index("nat-rebinding: PASSED") < out.index("summary")
    for name in ("baseline", "nat-rebinding"):
        run_dir = _latest(name)
        report = json.loads((run_dir / "report.json").read_text())
        assert report["scenario"] == name and report["passed"] is True
        assert report["captures"]["packets"] > 0
        for file in ("report.md", "report.html", "goodput.svg", "sequence.svg"):
            assert (run_dir / file).is_file(), f"{name}: {file}"
        assert "QUIC packets in captures/server-side.pcapng" in (run_dir / "report.html").read_text()
        checks = [(c["name"], c["status"], c["observed"]) for c in report["checks"]]
        again = run_lab("verify", "--json", str(run_dir))  # judged again in the foreground: the same verdict
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        rejudged = json.loads(again.stdout)
        assert [(c["name"], c["status"], c["observed"]) for c in rejudged["checks"]] == checks
        assert rejudged["metrics"] == report["metrics"]
    assert_restored(Lab(lab))


def test_a_run_that_errs_in_a_batch_gives_exit_1_and_its_error(lab):
    result = run_scenario("--pipeline", "baseline", STUCK, "--no-capture", timeout=300)
    assert result.returncode == 1, result.stdout[-3000:]  # one error, not all: 1, as without the pipeline
    assert "error: stuck-blackhole:" in result.stderr
    assert "baseline: PASSED" in result.stdout and "stuck-blackhole: FAILED" in result.stdout
    assert json.loads((_latest("stuck-blackhole") / "report.json").read_text())["passed"] is False
    assert_restored(Lab(lab))
