"""`python -m lab explain load-balancers`: its figures come from the recorded lb-* runs, never typed in."""

from __future__ import annotations

import json
from pathlib import Path

from lab.learn.evidence import FARM_SCENARIOS, evidence_for
from lab.learn.topics import BY_NAME


def record(root: Path, scenario: str, run_id: str, passed: bool, checks: list[dict], disruption: float | None = None,
           latest: bool = True) -> None:
    run = root / "artifacts" / scenario / run_id
    run.mkdir(parents=True)
    farm = {c["name"]: c.pop("details") for c in checks if "details" in c}
    (run / "report.json").write_text(json.dumps({"run_id": run_id, "passed": passed, "checks": checks,
                                                 "metrics": {"disruption_ms": disruption}, "farm": farm}))
    if latest:
        link = run.parent / "latest"
        if link.is_symlink():
            link.unlink()
        link.symlink_to(run_id)


def moved(n: int) -> dict:
    return {"name": "farm_balancer_flows", "status": "passed", "passed": True,
            "observed": f"rebinding {n} sent 10.203.100.21:1 to replica-2", "details": {"rebindings_until_moved": n}}


def test_without_recorded_runs_each_scenario_says_so(tmp_path) -> None:
    assert evidence_for("load-balancers", tmp_path) == [
        f"No recorded `{s}` run yet: run `make scenario NAME={s}` to measure it." for s in FARM_SCENARIOS]
    assert "load-balancers" in BY_NAME and "RFC 9000 §9.6" in BY_NAME["load-balancers"].sections


def test_the_runs_are_counted_and_the_latest_farm_checks_quoted(tmp_path) -> None:
    record(tmp_path, "lb-four-tuple", "r1", True, [moved(1)], latest=False)
    record(tmp_path, "lb-four-tuple", "r2", False, [{"name": "farm_balancer_flows", "status": "not verified",
                                                     "passed": False, "observed": "never moved"}], latest=False)
    record(tmp_path, "lb-four-tuple", "r3", True, [moved(3), {
        "name": "farm_other_replica_reaction", "status": "passed", "passed": True, "observed": "silence: 0 datagrams"}])
    record(tmp_path, "lb-cid-routing", "c1", True, [{"name": "farm_holder_validated", "status": "passed",
                                                     "passed": True, "observed": "replica-2 validated 3 path(s)"}],
           disruption=43.2)
    lines = evidence_for("load-balancers", tmp_path)
    assert "`lb-four-tuple`: 3 recorded run(s), 2 passed; the latest, `r3` " \
           "(artifacts/lb-four-tuple/r3/report.json), passed." in lines
    assert "`lb-four-tuple` farm_other_replica_reaction passed: silence: 0 datagrams" in lines
    assert "`lb-four-tuple`: rebindings until the flow reached the other replica, over 2 run(s): 1 in 1, 3 in 1." \
        in lines
    assert "`lb-cid-routing`: longest data pause after the first network action **43 ms** in the latest run." in lines
    assert "`lb-cid-routing` farm_holder_validated passed: replica-2 validated 3 path(s)" in lines
    assert lines[-1] == "No recorded `lb-preferred-address` run yet: run `make scenario NAME=lb-preferred-address` " \
                        "to measure it."
    assert not any("longest data pause" in line for line in lines if "lb-four-tuple" in line)
