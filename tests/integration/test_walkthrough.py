"""`python -m lab walkthrough nat-rebinding --no-pause` on the real lab: narrated from live events."""

from __future__ import annotations

import re
import subprocess
import sys

from lab.topology.load import ROOT


def test_walkthrough_nat_rebinding_live(lab):
    result = subprocess.run([sys.executable, "-m", "lab", "walkthrough", "nat-rebinding", "--no-pause"],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr
    assert "-- step 1/2: rebind home-router" in out and "-- step 2/2: rebind home-router" in out
    # the server validated each new port, and the narration shows the challenge and its echo
    validated = re.findall(r"server\s+path (\S+) validated in [\d.]+ ms  \[path_validated\]", out)
    assert len(validated) >= 2, out
    for data in re.findall(r"PATH_CHALLENGE ([0-9a-f]{16}) sent to", out):
        assert re.search(rf"PATH_RESPONSE {data} received from \S+: matches the challenge", out)
    assert "[nat_mapping]" in out and "the server sees this client as" in out
    assert "== packet view" in out
    assert re.search(r"PATH_CHALLENGE [0-9a-f]{16} server->client .*= server event path_challenge_sent", out), out
    assert "ok   quic:connection_survived" in out
