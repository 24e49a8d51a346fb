"""`lab verify` on a real recorded run (tests/data/runs/recorded-rebinding), and mutations of it.

The run is a whole artifact directory from the live lab: events, both qlogs, the server-side
capture with its key log. Unmutated it passes; each mutation takes away or corrupts one piece of
evidence, and the judge must fail on the check that rests on it. The capture is decoded by the
lab image's tshark, so these need Docker and the image (not the running lab).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.topology.load import ROOT
from lab.verify.judge import judge_run
from lab.verify.pcap import drop_frames, read_quic_packets

RECORDED = ROOT / "tests" / "data" / "runs" / "recorded-rebinding"


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(RECORDED, target)
    return target


def verify(path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", "verify", str(path), *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def failed(path: Path) -> dict[str, str]:
    verdict = judge_run(path)
    assert not verdict.passed
    return {c.name: str(c.observed) for c in verdict.checks if not c.passed}


def test_the_recorded_run_passes_when_judged_again(run_dir):
    result = verify(run_dir, "--json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True and report["tally"] == {"passed": len(report["checks"])}
    names = {c["name"] for c in report["checks"]}
    assert {"events_recorded", "run_completed", "qlog_server", "capture_verified", "capture_paths",
            "capture_challenges_answered", "cross_check_challenges", "cross_check_qlog"} <= names
    assert all(c["evidence"] for c in report["checks"]), "every check names the observations it rests on"


def test_deleted_captures_fail_capture_verified(run_dir):
    shutil.rmtree(run_dir / "captures")
    assert "server-side.pcapng is missing" in failed(run_dir)["capture_verified"]


def test_deleted_server_qlog_fails_by_name(run_dir):
    shutil.rmtree(run_dir / "server" / "qlog")
    problems = failed(run_dir)
    assert "no qlog in server/qlog/" in problems["qlog_server"]
    assert "cross_check_qlog" in problems  # the events' challenges are no longer in any qlog


def test_a_truncated_qlog_is_a_failed_check_not_a_traceback(run_dir):
    qlog = next((run_dir / "client" / "qlog").glob("*.qlog"))
    qlog.write_text(qlog.read_text()[: 5000])
    result = verify(run_dir)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{qlog.name}: unreadable" in failed(run_dir)["qlog_client"]


def test_events_cut_mid_line_fail_the_stream_and_the_run(run_dir):
    events = run_dir / "events.jsonl"
    text = events.read_text()
    events.write_text(text[: len(text) // 2])  # ends in the middle of a JSON line; run_end is gone
    problems = failed(run_dir)
    assert "unparsable line" in problems["events_recorded"] and "no run_end" in problems["events_recorded"]
    assert "unparsable event line" in problems["run_completed"]


def test_data_cut_before_the_end_is_an_ongoing_disruption(run_dir):
    events = run_dir / "events.jsonl"
    lines = events.read_text().splitlines()
    progress = [i for i, line in enumerate(lines) if '"type":"progress"' in line and '"role":"client"' in line]
    cut = progress[len(progress) // 2]
    kept = [line for i, line in enumerate(lines) if i <= cut or not (
        '"role":"client"' in line and any(f'"type":"{t}"' in line for t in ("progress", "data_gap",
                                                                            "transfer_complete")))]
    events.write_text("\n".join(kept) + "\n")
    problems = failed(run_dir)
    assert problems["max_disruption_ms"].startswith(">= ") and "data never resumed" in problems["max_disruption_ms"]
    assert "no transfer_complete" in problems["transfer_complete"]


def test_an_error_event_fails_run_completed_and_is_quoted(run_dir):
    events = run_dir / "events.jsonl"
    last = json.loads(events.read_text().splitlines()[-1])
    error = {"type": "error", "ts": last["ts"] - 1, "mono": 0.0, "role": "server", "conn": None, "transport": "quic",
             "message": "injected: the server lost its socket"}
    events.write_text(events.read_text() + json.dumps(error) + "\n")
    assert "injected: the server lost its socket" in failed(run_dir)["run_completed"]


def test_a_non_zero_exit_fails_run_completed(run_dir):
    events = run_dir / "events.jsonl"
    lines = events.read_text().splitlines()
    end = json.loads(lines[-1])
    assert end["action"] == "run_end"
    end["detail"]["exit_codes"] = {"quic": 3}
    events.write_text("\n".join([*lines[:-1], json.dumps(end)]) + "\n")
    assert "quic client exited 3" in failed(run_dir)["run_completed"]


def test_a_dropped_path_response_fails_challenges_answered(run_dir):
    capture = run_dir / "captures" / "server-side.pcapng"
    before = read_quic_packets(capture, None, [443, 4443])
    assert any(p.path_response for p in before)
    drop_frames(capture, "quic.frame_type == 0x1b", run_dir / "captures" / "cut.pcapng")
    (run_dir / "captures" / "cut.pcapng").replace(capture)
    problems = failed(run_dir)
    assert "unanswered ['" in problems["capture_challenges_answered"]


def test_not_a_run_directory_is_one_line_and_exit_2(tmp_path):
    result = verify(tmp_path)
    assert result.returncode == 2 and "not a run directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_strict_fails_the_run_on_a_must_violation_reported_either_way(run_dir):
    """aioquic 1.7.2 never re-challenges a path validated by an unexpanded challenge (§8.2.3): the
    finding is in every report; only --strict makes it fail the run."""
    lenient = verify(run_dir, "--json")
    assert lenient.returncode == 0, lenient.stderr
    findings = json.loads(lenient.stdout)["conformance"]
    assert any(f["rule"] == "RFC 9000 §8.2.3" and f["verdict"] == "violation" and f["frames"] for f in findings)
    strict = verify(run_dir, "--strict", "--json")
    assert strict.returncode == 1
    check = next(c for c in json.loads(strict.stdout)["checks"] if c["name"] == "conformance_strict")
    assert check["status"] == "failed" and "§8.2.3" in check["observed"]
