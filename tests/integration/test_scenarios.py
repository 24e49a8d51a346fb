"""The scenario catalogue on the real lab: every scenario passes, leaves its artifacts, and a
failing or interrupted run restores the lab."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.control.actions import Lab
from lab.topology.load import ROOT

CATALOGUE = sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))


def run_scenario(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", "scenario", "run", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def assert_restored(lab: Lab) -> None:
    assert lab.client_attachments() == {"home": lab.topology.client_addresses["home"]}
    rules = lab.ctr("home-router").exec_run(["iptables", "-S", "FORWARD"]).output.decode()
    assert "lab-blackhole" not in rules


@pytest.mark.parametrize("name", CATALOGUE)
def test_scenario_passes_with_its_artifacts(lab, name):
    result = run_scenario(name)
    run_dir = (ROOT / "artifacts" / name / "latest").resolve()
    report = json.loads((run_dir / "report.json").read_text())
    failed = [c for c in report["checks"] if not c["passed"]]
    assert result.returncode == 0, f"{name}: {failed or report.get('error')}\n{result.stderr[-2000:]}"
    assert report["scenario"] == name and report["passed"] is True
    for key in ("disruption_ms", "validation_ms", "handshakes", "paths_seen"):
        assert key in report["metrics"]
    assert {c["name"] for c in report["checks"]} >= {"run_completed"}
    events = (run_dir / "events.jsonl").read_text().splitlines()
    assert any('"role":"server"' in line for line in events) and any('"role":"client"' in line for line in events)
    assert (run_dir / "report.md").exists() and (run_dir / "goodput.svg").exists()
    if "quic" in {c.get("transport") for c in report["checks"]}:
        assert list((run_dir / "captures").glob("*.pcapng")), "captures with keys injected"
        assert list((run_dir / "client" / "qlog").glob("*.qlog")) and list((run_dir / "server" / "qlog").glob("*.qlog"))
        assert (run_dir / "client" / "keys-quic.log").stat().st_size > 0
        assert any(c["name"].startswith("capture_") for c in report["checks"]), "tshark verified the capture"
    assert_restored(Lab(lab))


def test_a_stuck_run_times_out_reports_and_restores(lab):
    result = run_scenario(str(ROOT / "tests" / "data" / "runtime" / "stuck-blackhole.yaml"), "--no-capture")
    assert result.returncode == 2, result.stdout[-1500:]
    report = json.loads((ROOT / "artifacts" / "stuck-blackhole" / "latest" / "report.json").read_text())
    assert report["passed"] is False and "never triggered" in (report["error"] or "") or "timeout" in report["error"]
    assert_restored(Lab(lab))


def test_ctrl_c_restores_the_lab(lab):
    process = subprocess.Popen([sys.executable, "-m", "lab", "scenario", "run", "commute", "--no-capture"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    controller = Lab(lab)
    while time.time() < deadline and "cellular" not in controller.client_attachments():
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-1000:]
    assert "Traceback" not in stderr
    assert_restored(controller)


def test_bad_scenario_files_give_one_line_errors():
    bad = sorted((ROOT / "tests" / "data" / "bad_scenarios").glob("*.yaml"))
    result = subprocess.run([sys.executable, "-m", "lab", "scenario", "validate", *map(str, bad)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    for path in bad:
        lines = [line for line in result.stderr.splitlines() if line.startswith(str(path) + ":")]
        assert lines, f"no error for {path.name}"
        assert all(len(line.split(": ", 2)) == 3 for line in lines)  # file:line: field: message
    assert Path(bad[0]).exists()
