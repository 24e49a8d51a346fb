"""bench scale on the real lab, small: three connections at once through a NAT rebinding, each
judged on its own events (one handshake, sha256, its gap), and the lab restored afterwards."""

from __future__ import annotations

import json
import subprocess
import sys

from lab.control import snapshot
from lab.topology.load import ROOT


def test_three_connections_through_one_rebinding(lab):
    before = snapshot.take(lab)
    result = subprocess.run([sys.executable, "-m", "lab", "bench", "scale", "--connections", "3", "--changes",
                             "rebinding", "--format", "json"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout)["scale"]["rounds"]
    assert len(found) == 1
    round_ = found[0]
    assert round_["connections"] == 3 and round_["survived"] == 3, round_["failed"]
    assert round_["disruption_ms"]["runs"] == 3, "every connection saw the rebinding as a gap"
    assert round_["server_cpu_s"] is not None and round_["server_cpu_s"] > 0
    bench = json.loads((ROOT / "artifacts" / "bench" / "latest" / "bench.json").read_text())
    assert bench["scale"]["rounds"] == found
    assert snapshot.diff(before, snapshot.take(lab)) == []
