"""Impairments on the live lab: behaviour (applied, effective, removed), not timing targets (see `lab bench`)."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.cli.bench import ping, udp
from lab.control import impair
from lab.control.actions import ActionError, Lab
from lab.scenario.schema import Impairment

NETWORK = "home"


@pytest.fixture(scope="module")
def live(lab):
    handle = Lab(lab)
    handle.reset((NETWORK,))
    impair.reset_all(handle)
    yield handle
    impair.reset_all(handle)


def test_show_reports_mode_and_every_network(live):
    state = impair.show(live)
    assert state["mode"] in impair.MODES
    assert set(state["networks"]) == set(live.topology.gateways)
    assert all(not found["mechanisms"] and not found["blackhole"] for found in state["networks"].values())


def test_delay_is_applied_and_removed(live):
    try:
        result = impair.apply(live, NETWORK, Impairment(delay=0.020))
    except ActionError as exc:
        if "unsupported" in str(exc):
            pytest.skip(f"delay line unavailable in the router image: {exc}")
        raise
    assert result.ok and result.detail["applied"]["delay_ms"] == 20.0
    assert ping(live, 10)["min_ms"] >= 40.0  # one-way delay in each direction
    impair.reset(live, NETWORK)
    assert ping(live, 10)["avg_ms"] < 10.0
    assert not impair.show(live)["networks"][NETWORK]["mechanisms"]


def test_loss_drops_some_and_reset_restores(live):
    result = impair.apply(live, NETWORK, Impairment(loss=40.0))
    assert result.ok and result.detail["applied"]["loss_pct"] == 40.0
    assert ping(live, 40, 0.01)["loss_pct"] > 10.0
    impair.reset(live, NETWORK)
    assert ping(live, 20, 0.01)["loss_pct"] == 0.0


def test_rate_caps_throughput(live):
    result = impair.apply(live, NETWORK, Impairment(rate=1_000_000))
    assert result.ok and result.detail["applied"]["rate_bit"] == 1_000_000
    capped = udp(live, 1000, 10**9, 2.0, 1000)  # offered ~8.3 Mbit/s on the wire
    assert capped["wire_mbit"] < 1.5 and capped["received"] < capped["sent"]
    impair.reset(live, NETWORK)
    assert udp(live, 1000, 1000, 2.0, 1000)["received"] > 900


def test_blackhole_and_replace_semantics(live):
    assert impair.apply(live, NETWORK, Impairment(blackhole=True, loss=1.0)).ok
    assert "avg_ms" not in ping(live, 5, 0.05)  # every ping lost: no rtt summary line
    assert impair.show(live)["networks"][NETWORK]["blackhole"]
    impair.apply(live, NETWORK, Impairment(rate=5_000_000))  # replaces: blackhole and loss gone
    found = impair.show(live)["networks"][NETWORK]
    assert not found["blackhole"] and found["loss_pct"] == 0.0 and found["rate_bit"] == 5_000_000
    impair.reset(live, NETWORK)


def test_netem_mode(live):
    target = live.ctr(live.topology.gateways[NETWORK].router)
    os.environ.pop(impair.MODE_ENV, None)
    if impair.detect_mode(target) != impair.NETEM:
        pytest.skip("the kernel has no sch_netem (tc qdisc add ... netem fails): the fallback is in use")
    result = impair.apply(live, NETWORK, Impairment(delay=0.010, loss=1.0))
    assert result.ok and result.detail["mode"] == impair.NETEM and "netem" in result.detail["mechanisms"]
    impair.reset(live, NETWORK)


@pytest.mark.skipif(os.geteuid() != 0 or not ctypes.util.find_library("netfilter_queue"),
                    reason="needs root and libnetfilter-queue1 on the host (scratch network namespaces)")
def test_delay_line_in_scratch_namespaces():
    tool = Path(__file__).resolve().parents[2] / "tools" / "netns_delayline.py"
    result = subprocess.run([sys.executable, str(tool), "--delay-ms", "10", "--pings", "20", "--seconds", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout)
    assert report["rtt_with"]["min_ms"] >= 20.0 and report["rtt_after_removal"]["avg_ms"] < 5.0
