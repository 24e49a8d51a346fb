"""The farm scenarios through the normal runner and judge (`python -m lab scenario run lb-*`): each
passes, leaves the farm's evidence (each replica's capture, qlog and key log, the balancer's flows in
the farm_rebind event) and removes the farm afterwards. The outcomes are the scenarios' own: the
4-tuple hash breaks the connection, CID routing keeps it, the preferred address moves it to the
replica's unicast address."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lab.control import farm as farm_control
from lab.topology.farm import farm_of
from lab.topology.load import ROOT


def run(name: str) -> tuple[dict, dict]:
    result = subprocess.run([sys.executable, "-m", "lab", "scenario", "run", name], cwd=ROOT, capture_output=True,
                            text=True, timeout=180)
    run_dir = (ROOT / "artifacts" / name / "latest").resolve()
    report = json.loads((run_dir / "report.json").read_text())
    failed = [(c["name"], c["observed"]) for c in report["checks"] if not c["passed"]]
    assert result.returncode == 0, f"{name}: {failed or report.get('error')}\n{result.stderr[-1500:]}"
    checks = {c["name"]: c for c in report["checks"]}
    assert all((run_dir / "captures" / f"replica-{n}.pcapng").is_file() for n in (1, 2))
    assert list((run_dir / "server" / "qlog").glob("replica-*--*.qlog")), "the holder's qlog"
    assert list(run_dir.glob("replica-*/keys.log")), "the holder's key log"
    return report, {name: {**check, "details": (report.get("farm") or {}).get(name, {})}
                    for name, check in checks.items()}


@pytest.fixture
def farm_removed_after(lab):
    yield
    assert not farm_control.running(lab), "the run left the farm running"


def test_lb_four_tuple_breaks_once_the_hash_moves_the_flow(lab, farm_removed_after):
    report, checks = run("lb-four-tuple")
    flows = checks["farm_balancer_flows"]
    assert flows["passed"] and flows["details"]["moved_to"] != flows["details"]["holder"]
    reaction = checks["farm_other_replica_reaction"]
    assert reaction["passed"] and reaction["details"]["reaction"] == "silence"  # aioquic 1.7.2 sends no reset
    assert reaction["details"]["received"] >= 3 and reaction["details"]["sent"] == 0
    assert checks["farm_connection_broke"]["passed"] and checks["farm_connection_broke"]["details"]["stalled_at_bytes"]
    assert checks["run_completed"]["passed"]  # the client the scenario gave up on is no failure
    assert "transfer_complete" not in checks and "connection_survived" not in checks


def test_lb_cid_routing_keeps_the_connection_on_its_replica(lab, farm_removed_after):
    report, checks = run("lb-cid-routing")
    assert checks["farm_balancer_flows"]["details"]["rebindings"] == 3
    holder = checks["farm_replica_captures"]["details"]["holder"]
    assert checks["farm_holder_validated"]["details"]["holder"] == holder
    assert checks["transfer_complete"]["passed"] and checks["single_handshake"]["passed"]


def test_lb_preferred_address_moves_to_the_replicas_unicast_address(lab, farm_removed_after):
    report, checks = run("lb-preferred-address")
    farm = farm_of(lab)
    moved = checks["farm_preferred_address"]
    assert moved["passed"]
    holder = next(r for r in farm.replicas if r.name == moved["details"]["holder"])
    assert moved["details"]["unicast"] == holder.unicast
    assert checks["migrated_to_preferred"]["passed"] and holder.unicast in checks["migrated_to_preferred"]["observed"]
