"""`python -m lab explain`: every topic renders, cites RFC sections, and names a command that exists."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from lab.cli import build_parser, main
from lab.cli import explain as explain_cli
from lab.learn import evidence
from lab.learn.topics import BY_NAME, TOPICS, Topic
from lab.topology.load import ROOT

REQUIRED = {"connection-ids", "path-validation", "nat-rebinding", "network-switch", "ip-change",
            "preferred-address", "cid-privacy", "amplification", "second-migration", "tcp-vs-quic", "benefits",
            "multipath"}
SECTION = re.compile(r"^RFC (9000|9001|9002|8446|9114|9221) §\d+(\.\d+)*$")


def test_topics_are_frozen_data_and_cover_the_brief():
    assert REQUIRED <= set(BY_NAME)
    assert len(BY_NAME) == len(TOPICS)
    topic = TOPICS[0]
    assert dataclasses.is_dataclass(Topic)
    with pytest.raises(dataclasses.FrozenInstanceError):
        topic.name = "x"  # type: ignore[misc]


@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.name)
def test_topic_fields(topic: Topic):
    assert re.fullmatch(r"[a-z0-9-]+", topic.name)
    assert topic.sections and all(SECTION.match(s) for s in topic.sections), topic.sections
    assert topic.summary and "\n" not in topic.summary
    assert topic.body.strip() and topic.look_for


def _check_command(command: str) -> None:
    words = shlex.split(command)
    if words[:3] == ["python", "-m", "lab"]:
        args = build_parser().parse_args(words[3:])  # SystemExit on an unknown verb or option
        assert args.verb
        names = list(getattr(args, "names", None) or [])
        if getattr(args, "name", None):
            names.append(args.name)
        for name in names:
            assert (ROOT / "scenarios" / f"{name}.yaml").exists(), f"{command}: no scenario {name}"
    elif words[:3] == ["docker", "compose", "exec"]:
        services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
        assert words[3] in services, f"{command}: no service {words[3]}"
    else:
        raise AssertionError(f"{command}: not a lab command")


@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.name)
def test_command_exists(topic: Topic):
    _check_command(topic.command)


@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.name)
def test_topic_renders_plain(topic: Topic, capsys):
    stream = io.StringIO()
    assert explain_cli.run(argparse.Namespace(topic=topic.name, plain=True), stream) == 0
    text = stream.getvalue()
    assert topic.title.upper() in text
    assert f"$ {topic.command}" in text
    assert all(section in text for section in topic.sections)
    assert "**" not in text and "\x1b[" not in text


@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.name)
def test_topic_markdown(topic: Topic):
    text = explain_cli.render_markdown(topic, ["a measured line"])
    assert text.startswith(f"# {topic.title}")
    assert f"```sh\n{topic.command}\n```" in text
    assert "## Measured in this lab" in text


def test_no_topic_lists_every_topic(capsys):
    assert main(["explain", "--plain"]) == 0
    out = capsys.readouterr().out
    for topic in TOPICS:
        assert topic.name in out


def test_unknown_topic_is_one_line_exit_2(capsys):
    assert main(["explain", "zero-rtt-magic"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "unknown topic 'zero-rtt-magic'" in lines[0]
    assert all(t.name in lines[0] for t in TOPICS)


def test_no_scripted_speed_claims():
    for topic in TOPICS:
        text = " ".join([topic.body, topic.summary, *topic.look_for])
        assert not re.search(r"\d+\s*-\s*\d+\s*x faster|\d+x faster", text, re.I), topic.name
        assert "Path validated!" not in text


# --- figures come from recorded runs --------------------------------------------------------------

def _report(root: Path, quic: dict, tcp: dict, checks: list[dict], error=None) -> None:
    run = root / "artifacts" / "tcp-vs-quic" / "20260101-000000-abcd"
    run.mkdir(parents=True)
    (root / "artifacts" / "tcp-vs-quic" / "latest").symlink_to(run.name)
    (run / "report.json").write_text(json.dumps({
        "scenario": "tcp-vs-quic", "run_id": run.name, "passed": error is None, "error": error, "checks": checks,
        "metrics": {**quic, "by_transport": {"quic": quic, "tcp": tcp}}}))


def _metrics(transport: str, disruption, bytes_=8_000_000, reconnects=0):
    return {"transport": transport, "disruption_ms": disruption, "bytes": bytes_, "handshakes": 1 + reconnects,
            "reconnects": reconnects}


def _done(transport: str, passed=True):
    return {"name": "transfer_complete", "transport": transport, "passed": passed,
            "observed": "8000000 bytes" if passed else "no transfer_complete"}


def test_tcp_vs_quic_without_a_run_says_how_to_measure(tmp_path):
    lines = evidence.tcp_vs_quic(tmp_path)
    assert lines == ["No recorded `tcp-vs-quic` run yet: run `make scenario NAME=tcp-vs-quic` to measure it."]


def test_tcp_vs_quic_quotes_the_recorded_figures_and_their_source(tmp_path):
    _report(tmp_path, _metrics("quic", 250.0), _metrics("tcp", 1750.0, reconnects=1), [_done("quic"), _done("tcp")])
    text = "\n".join(evidence.tcp_vs_quic(tmp_path))
    assert "**250 ms**" in text and "**1750 ms**" in text and "7.0x" in text
    assert "artifacts/tcp-vs-quic/20260101-000000-abcd/report.json" in text


def test_tcp_vs_quic_refuses_an_invalid_run(tmp_path):
    _report(tmp_path, _metrics("quic", 850.0), _metrics("tcp", 0.0, bytes_=0, reconnects=1),
            [_done("quic"), _done("tcp", passed=False)], error="timeout: the scenario did not finish within 30 s")
    text = "\n".join(evidence.tcp_vs_quic(tmp_path))
    assert "no valid comparison" in text and "TCP was not measured" in text
    assert "make scenario NAME=tcp-vs-quic" in text
    assert "ratio" not in text and "**0 ms**" not in text and "TCP: longest" not in text
    assert "**850 ms**" in text  # the valid QUIC half is still quoted, with its source


def test_evidence_of_every_topic_runs_on_this_tree():
    for topic in TOPICS:
        for line in evidence.evidence_for(topic.name):
            assert isinstance(line, str) and line


def test_the_attacks_topic_quotes_each_attack_scenarios_recorded_verdicts(tmp_path) -> None:
    from lab.learn.evidence import ATTACK_SCENARIOS, evidence_for

    assert evidence_for("attacks", tmp_path) == [
        f"No recorded `{s}` run yet: run `make scenario NAME={s}` to measure it." for s in ATTACK_SCENARIOS]
    run = tmp_path / "artifacts" / "spoofed-migration" / "r1"
    run.mkdir(parents=True)
    (run.parent / "latest").symlink_to("r1")
    (run / "report.json").write_text(json.dumps({"checks": [
        {"name": "capture_attack_amplification", "status": "passed", "observed": "ratio 3.00"},
        {"name": "capture_attack_old_path_probed", "status": "expected failure", "observed": "no challenge"}]}))
    lines = evidence_for("attacks", tmp_path)
    assert "`spoofed-migration` (artifacts/spoofed-migration/r1/report.json): capture_attack_amplification passed: " \
           "ratio 3.00" in lines
    assert any("capture_attack_old_path_probed expected failure: no challenge" in line for line in lines)
