"""The scenario catalogue on the real lab: every scenario passes, leaves its artifacts, and a
failing or interrupted run restores the lab."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab.control import snapshot
from lab.control.actions import Lab
from lab.topology.load import ROOT
from tests.integration.conftest import sh

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


INTERRUPT_TARGET = ROOT / "tests" / "data" / "scenarios" / "interrupt-target.yaml"
RESTORED_SECTIONS = ("qdiscs", "iptables", "routes", "rules", "processes")


def test_ctrl_c_during_a_captured_run_and_again_during_its_reset_restores_the_lab(lab):
    """Ctrl-C while every router is changed (blackhole, netem, tbf) and captures run; a second one
    while the lab is being restored: it waits for the restore, and each router is back as it was."""
    before = snapshot.take(lab)
    process = subprocess.Popen([sys.executable, "-m", "lab", "scenario", "run", str(INTERRUPT_TARGET)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()  # stdout, read by this thread only (the notes come last)
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
    reader.start()
    try:
        controller, deadline = Lab(lab), time.time() + 30
        while time.time() < deadline and process.poll() is None:
            blackholed = "lab-blackhole" in sh(controller.ctr("home-router"), "iptables -S FORWARD")
            if blackholed and set(controller.client_attachments()) == {"cellular"}:
                break
            time.sleep(0.1)
        changed = snapshot.diff(before, snapshot.take(lab))
        # The move, the blackhole, cellular's delay and loss (netem, or without sch_netem the delay
        # line and iptables), office's tbf, the captures.
        for part in ("client networks", "home-router iptables", "carrier-nat", "office-router qdiscs",
                     "home-router processes"):
            assert any(p.startswith(part) for p in changed), f"{part} unchanged before Ctrl-C: {changed}"
        process.send_signal(signal.SIGINT)
        seen = []
        while not any("restoring the lab" in line for line in seen):
            seen.append(lines.get(timeout=30))
        process.send_signal(signal.SIGINT)  # during the restore
        process.wait(timeout=60)
        stderr = process.stderr.read()  # a line or two: no pipe to fill while waiting
    finally:
        if process.poll() is None:  # a failed assertion: let the run restore the lab for the next tests
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    reader.join(timeout=10)
    while not lines.empty():
        seen.append(lines.get())
    assert process.returncode == 130, stderr[-1000:]
    assert "Traceback" not in stderr and stderr.strip() == "interrupted: the lab is restored", stderr
    assert any("Ctrl-C: restoring the lab first" in line for line in seen), "the second Ctrl-C came too late"
    after = snapshot.take(lab)
    for router in lab.routers:  # one by one: impairments, NAT and blackhole rules, routes, leftover captures
        for section in RESTORED_SECTIONS:
            assert after.containers[router][section] == before.containers[router][section], (router, section)
    assert after.client_networks == tuple(lab.client_start_networks)
    assert snapshot.diff(before, after) == []
    run_end = json.loads((ROOT / "artifacts" / "interrupt-target" / "latest" / "events.jsonl")
                         .read_text().splitlines()[-1])
    assert run_end["action"] == "run_end" and run_end["detail"]["error"] == "interrupted (Ctrl-C)"


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
