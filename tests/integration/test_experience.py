"""What a person notices, on the real lab: the video and call scenarios, one test each.

Each runs its scenario, which must pass, and checks that the report carries the viewer's or the
caller's figures (from the segment and call events) and says plainly in report.md whether a
stall or a freeze was seen.
"""

from __future__ import annotations

import json

import pytest

from lab.topology.load import ROOT
from tests.integration.test_scenarios import run_scenario


def run(name: str) -> tuple[dict, str]:
    result = run_scenario(name)
    run_dir = (ROOT / "artifacts" / name / "latest").resolve()
    report = json.loads((run_dir / "report.json").read_text())
    failed = [c for c in report["checks"] if not c["passed"]]
    assert result.returncode == 0, f"{name}: {failed or report.get('error')}\n{result.stderr[-2000:]}"
    return report, (run_dir / "report.md").read_text()


@pytest.mark.parametrize("name,transports", [("wifi-to-cellular-video", ("quic", "tcp")),
                                             ("commute-video", ("quic",))])
def test_video_scenario_reports_what_the_viewer_saw(lab, name, transports):
    report, markdown = run(name)
    for transport in transports:
        viewer = report["metrics"]["by_transport"][transport]["viewer"]
        assert viewer["segments"] == viewer["segments_expected"] == 8
        assert viewer["startup_ms"] is not None and viewer["buffer_series"]
        assert f"**viewer ({transport})**" in markdown
    assert {c["name"] for c in report["checks"]} >= {"rebuffer_events", "startup_ms"}


def test_call_scenario_reports_what_the_caller_heard(lab):
    report, markdown = run("wifi-to-cellular-call")
    for transport in ("quic", "tcp"):
        caller = report["metrics"]["by_transport"][transport]["caller"]
        assert caller["sent"] > 400 and caller["freeze_ms"] is not None
        assert f"**caller ({transport})**" in markdown
    assert report["metrics"]["by_transport"]["quic"]["caller"]["datagrams"] is True
