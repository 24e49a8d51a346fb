"""The QUIC client times arrivals by the kernel's receive time, in the real lab: through the NAT path
and across a Wi-Fi -> cellular handoff, every reported gap is one of kernel-timed arrivals."""

from __future__ import annotations

import json

import pytest

from lab.topology.load import ROOT
from tests.integration.test_scenarios import run_scenario


def _events(name: str) -> list[dict]:
    run_dir = (ROOT / "artifacts" / name / "latest").resolve()
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("name", ["baseline", "wifi-to-cellular"])
def test_the_clients_arrivals_are_timed_by_the_kernel(lab, name):
    result = run_scenario(name)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    events = _events(name)
    histogram = [e for e in events if e["type"] == "gap_histogram" and e["role"] == "client"]
    assert len(histogram) == 1
    found = histogram[0]
    # Every arrival but those read from the old socket during a handoff has the kernel's stamp.
    assert found["kernel_timed"] >= 0.98 * (found["samples"] + 1), found
    assert found["delivery_max_ms"] is not None and found["delivery_max_ms"] > 0
    gaps = [e for e in events if e["type"] == "data_gap" and e["role"] == "client"]
    for gap in gaps:
        assert abs((gap["end_ts"] - gap["start_ts"]) * 1000 - gap["gap_ms"]) < 0.01
        assert gap["end_ts"] <= gap["ts"] + 1e-6  # an arrival is stamped before the read that reports it
    if name == "wifi-to-cellular":  # break-before-make: the handoff's gap is measured, kernel-timed
        assert max(g["gap_ms"] for g in gaps) >= 50, gaps
