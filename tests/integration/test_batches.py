"""`scenario run A B ...` on the real lab: a run but the last leaves the lab for the next run's own reset
(the same commands, not done twice), and the batch's end, or a Ctrl-C between its runs, restores it."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time

from lab import api
from lab.control import snapshot
from lab.scenario.runner import restore_after
from lab.topology.load import ROOT
from tests.integration.test_scenarios import run_scenario

CHANGER = ROOT / "tests" / "data" / "scenarios" / "batch-leaves-changes.yaml"
# What CHANGER leaves: the client on cellular, home black-holed, cellular and office impaired.
CHANGED = ("client networks", "home-router iptables", "carrier-nat", "office-router qdiscs")


def _changed(before: snapshot.LabSnapshot, after: snapshot.LabSnapshot) -> list[str]:
    diff = snapshot.diff(before, after)
    return [part for part in CHANGED if not any(d.startswith(part) for d in diff)]


def test_a_run_told_not_to_restore_leaves_the_lab_and_restore_after_brings_it_back(lab):
    before = snapshot.take(lab)
    result = api.run_scenario(api.scenario(str(CHANGER)), lab, capture=False, restore=False)
    assert result.error is None and result.passed, result.error
    assert result.restored is False
    assert _changed(before, snapshot.take(lab)) == [], "the run restored the lab after all"
    assert restore_after(lab) is None
    assert snapshot.diff(before, snapshot.take(lab)) == []


def test_a_batch_resets_before_each_run_and_ends_restored(lab):
    before = snapshot.take(lab)
    result = run_scenario("--no-capture", str(CHANGER), "baseline", timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "restoring the lab" not in result.stdout.split("baseline")[0]  # the first run left it to the reset
    events = [json.loads(line) for line in
              (ROOT / "artifacts" / "baseline" / "latest" / "events.jsonl").read_text().splitlines()]
    reset = next(e for e in events if e.get("action") == "reset")
    assert reset["ok"] and reset["detail"]["networks"] == ["home"]
    report = json.loads((ROOT / "artifacts" / "baseline" / "latest" / "report.json").read_text())
    assert report["passed"] is True  # the second run started from compose.yaml's lab, not the first one's
    assert snapshot.diff(before, snapshot.take(lab)) == []


def _collected(earlier: set[str]) -> bool:
    """The first run's files are in (its client's files come last), its verdict not yet."""
    runs = ROOT / "artifacts" / CHANGER.stem
    return any((d / "client").is_dir() and not (d / "report.json").exists()
               for d in runs.glob("2*") if d.name not in earlier)


def test_ctrl_c_after_a_batchs_first_run_restores_the_lab(lab):
    before = snapshot.take(lab)
    earlier = {d.name for d in (ROOT / "artifacts" / CHANGER.stem).glob("2*")}
    # With captures, so that the first run's verdict (tshark) lasts long enough to be interrupted.
    # Ctrl-C as a terminal delivers it: a runner that starts the tests in the background (`cmd &` in a
    # script) hands its children SIGINT ignored, and Python then keeps it ignored.
    process = subprocess.Popen([sys.executable, "-m", "lab", "scenario", "run", str(CHANGER), "baseline"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
    reader.start()
    try:
        # Watched on disk: stdout is no clock here (through a pipe it may arrive only at the exit).
        deadline = time.time() + 60
        while time.time() < deadline and process.poll() is None and not _collected(earlier):
            time.sleep(0.02)
        assert process.poll() is None, "the batch ended before its first run's files were seen"
        time.sleep(0.2)  # into the verdict: the captures' preparation and decoding take a second or more
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr[-1000:]
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "interrupted: the lab is restored", stderr
    assert snapshot.diff(before, snapshot.take(lab)) == []
