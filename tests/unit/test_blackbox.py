"""Black-box judging on a real recorded capture: the lab's nat-rebinding run, decoded by tshark.

The capture's facts are compared with what the same run's own events said (2 rebindings, one
client IP, both new paths validated), and each expectation judge is shown to fail on a mutation.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lab.scenario.expectations import Comparison
from lab.scenario.schema import Expectation
from lab.verify import blackbox
from lab.verify.pcap import packets_from_json

DATA = Path(__file__).resolve().parents[1] / "data" / "conformance"
SERVERS = {"10.203.100.10:443", "10.203.200.10:4443"}


def packets():
    return packets_from_json((DATA / "run-nat-rebinding.jsonl").read_text())


def test_capture_facts_of_a_real_rebinding():
    facts = blackbox.capture_facts(packets(), SERVERS)
    assert facts.handshakes == 1
    assert len(facts.client_tuples) == 3 and len(facts.client_ips) == 1  # two rebindings, one IP
    assert facts.migrated_paths == 2 and facts.validated_paths == 2
    assert facts.validation_ms is not None and facts.validation_ms > 0
    assert len(facts.client_dcids) == 1  # a rebinding keeps the CID
    assert facts.longest_client_silence_ms is not None and facts.longest_client_silence_ms > 0


def expect(check, argument=None):
    return Expectation(check, argument)


def by_name(checks):
    return {c.name: c for c in checks}


def test_expectations_pass_on_the_real_run():
    checks = by_name(blackbox.expectation_checks([
        expect("single_handshake"), expect("paths_validated", Comparison(">=", 2)),
        expect("server_saw_ips", Comparison("==", 1)), expect("server_saw_addresses", Comparison(">=", 3)),
        expect("cid_unchanged"), expect("amplification_respected"), expect("max_disruption_ms", Comparison("<=", 5000)),
    ], packets(), SERVERS))
    assert all(c.status == "passed" for c in checks.values()), {n: c.observed for n, c in checks.items()}
    assert all(c.source == "captures" and c.evidence for c in checks.values())


def test_each_judge_can_fail():
    checks = by_name(blackbox.expectation_checks([
        expect("paths_validated", Comparison(">=", 3)), expect("server_saw_ips", Comparison(">=", 2)),
        expect("cid_changed"), expect("max_disruption_ms", Comparison("<=", 0)),
        expect("validation_ms", Comparison("<=", 0)),
    ], packets(), SERVERS))
    assert [c.status for c in checks.values()] == ["failed"] * 5


def test_unanswered_challenges_are_not_validations():
    mutated = [replace(p, path_response=()) for p in packets()]
    assert blackbox.capture_facts(mutated, SERVERS).validated_paths == 0


def test_white_box_only_expectations_are_not_applicable_and_no_capture_is_not_verified():
    checks = by_name(blackbox.expectation_checks([expect("reconnects", Comparison("==", 0)),
                                                  expect("single_handshake")], None, SERVERS, "no capture"))
    assert checks["reconnects"].status == "not applicable" and not checks["reconnects"].passed
    assert checks["single_handshake"].status == "not verified"


def test_files_and_exit_codes():
    served = [{"name": "f.bin", "size": 3, "sha256": "ab" * 32}]
    assert blackbox.files_check(served, {"f.bin": "ab" * 32}).passed
    assert not blackbox.files_check(served, {"f.bin": "cd" * 32}).passed
    assert not blackbox.files_check(served, {"f.bin": None}).passed
    assert blackbox.files_check([], {}).status == "not verified"
    assert blackbox.exit_check("qh3", 0).passed
    unsupported = blackbox.exit_check("qh3", 127)
    assert not unsupported.passed and "unsupported" in unsupported.observed
    assert blackbox.exit_check("qh3", None).status == "not verified"
    assert not blackbox.server_check("qh3", 0).passed and blackbox.server_check("qh3", 1).passed
