"""The adversaries on the real lab: an off-path attacker spoofing the victim's address
(amplification-attack), judged from the victim's own capture, and a lab left as it was.

The catalogue test runs every adversary scenario to a pass; this one looks inside one run: the
victim's capture alone bounds what the server sent it by 3x what the attacker sent in its name,
the recorded §9.3.3 finding is an expected failure (and fails the run once the record is dropped:
the check can fail on real packets), and the victim, the attacker, the hijack and the sensor are
all gone afterwards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from lab.control import snapshot
from lab.control.docker_api import containers
from lab.topology.load import ROOT
from lab.verify.pcap import read_quic_packets


def lab_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_a_spoofed_copy_attack_is_bounded_by_3x_and_leaves_nothing_behind(lab, tmp_path):
    before = snapshot.take(lab)
    result = lab_cli("scenario", "run", "amplification-attack")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    run = (ROOT / "artifacts" / "amplification-attack" / "latest").resolve()
    report = json.loads((run / "report.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    for name in ("capture_attack_amplification", "capture_attack_path_not_validated",
                 "capture_attack_returned_to_client"):
        assert checks[name]["status"] == "passed", checks[name]
    old = checks["capture_attack_old_path_probed"]
    assert old["status"] == "expected failure" and "§9.3.3" in old["known_failure"], old
    assert checks["transfer_complete"]["status"] == "passed"

    # The victim's capture alone against the attacker's: what the server sent the victim's address
    # versus what arrived in its name.
    victim, attacker = lab.adversary.victim, lab.adversary.attacker
    ports = (lab.server_port, lab.server_preferred_port)
    got = read_quic_packets(run / "captures" / "victim.pcapng", None, ports)
    sent = read_quic_packets(run / "captures" / "attacker.pcapng", None, ports)
    to_victim = sum(p.udp_payload_length for p in {p.frame: p for p in got if p.dst_ip == victim}.values())
    in_its_name = sum(p.udp_payload_length for p in {p.frame: p for p in sent if p.src_ip == victim}.values())
    assert in_its_name > 0 and 0 < to_victim <= 3 * in_its_name, (to_victim, in_its_name)
    assert not any(p.src_ip == attacker for p in sent), "a spoof sends nothing from the attacker's own address"

    # Mutation on the real packets: without the record, the §9.3.3 finding fails the run.
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    scenario_file = copy / "amplification-attack.yaml"
    text = scenario_file.read_text()
    scenario_file.write_text(text[:text.index("known_failures:")])
    again = lab_cli("verify", str(copy), "--json")
    verdict = json.loads(again.stdout)
    assert verdict["passed"] is False
    assert {c["name"]: c["status"] for c in verdict["checks"]}["capture_attack_old_path_probed"] == "failed"

    # Only the scenarios that attack have a victim and an attacker; the hijack and the sensor are undone.
    assert not {"victim", "attacker"} & set(containers(lab, all_states=True))
    assert snapshot.diff(before, snapshot.take(lab)) == []
