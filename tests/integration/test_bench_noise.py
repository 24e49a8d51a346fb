"""bench noise on the real lab, one run: the baseline judged, the machine's witness beside it (a
sleeper on each core), every data gap of 5 ms or more given the machine's share, and the run's
steal over its transfer, all from what the run and the witness recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lab.topology.load import ROOT


def test_one_noise_run_with_the_machines_witness_beside_it(lab):
    result = subprocess.run([sys.executable, "-m", "lab", "bench", "noise", "--noise-runs", "1", "--format", "json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    noise = json.loads(result.stdout)["noise"]
    assert noise["runs"] == 1 and noise["passed"] == [True]
    share = noise["machine_share"]
    # The witness slept 1 ms at a time on every core for the whole run (seconds of it).
    assert share["cores"] >= 1 and share["sleeps"] > 1000 * share["cores"]
    assert share["steal_ms_per_run"][0] is not None and share["steal_ms_per_run"][0] >= 0
    assert share["transfer_ms_per_run"][0] > 1000  # 4 MB at 2 MB/s
    # Net of the machine's share the run's floor can only be lower, never higher.
    floor, net = noise["noise_floor_ms"]["maximum"], share["lab_floor_ms"]["maximum"]
    assert net is not None and 0 < net <= max(floor, 5.0)
    # Every gap of 5 ms or more the client reported is there, with a share no longer than itself.
    events = Path(noise["run_dirs"][0]) / "events.jsonl"
    reported = [e["gap_ms"] for e in map(json.loads, events.read_text().splitlines())
                if e["type"] == "data_gap" and e["role"] == "client" and e["gap_ms"] >= 5.0]
    assert sorted(g["ms"] for g in share["gaps"]) == sorted(reported)
    assert all(0 <= g["machine_ms"] <= g["ms"] for g in share["gaps"])
