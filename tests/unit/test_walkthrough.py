"""`python -m lab walkthrough --from-run`: a recorded run narrated only from its events and packets.

tests/data/runs/nat-rebinding/ is the lab's recorded run 20261122-001216-d556 (events.jsonl and
report.json as written) and a 72 KB cut of its server-side capture (keys injected), made with
``tshark -r server-side.pcapng -Y "frame.number <= 16 || (frame.number >= 2318 && frame.number <= 2345)
|| (frame.number >= 5400 && frame.number <= 5427)" -w captures/server-side.pcapng``: the handshake and
the first packets after each rebinding (frame numbers therefore differ from the full capture).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from lab import events as ev
from lab.cli import main
from lab.learn.narrate import NarratingView, Narrator, packet_view, replay, server_addresses, step_infos
from lab.observe.timeline import NETWORK_ACTIONS, read_jsonl
from lab.scenario.schema import TopologyNames, load_scenario
from lab.topology.load import ROOT

RUN = Path(__file__).resolve().parents[1] / "data" / "runs" / "nat-rebinding"
SCENARIO = ROOT / "scenarios" / "nat-rebinding.yaml"
TAG = re.compile(r"\s\s\[([a-z_]+)\]$")
FRAME = re.compile(r"\s\s\[capture frame (\d+)\]$")
ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+:\d+")
HEX = re.compile(r"\b[0-9a-f]{16}\b")


def _narrate() -> tuple[list[str], list[ev.Event]]:
    lines: list[str] = []
    events = replay(RUN, lines.append)
    return lines, events


def _event_json(events: list[ev.Event], kind: str) -> list[str]:
    return [e.to_json() for e in events if e.TYPE == kind]


def test_every_network_action_is_narrated_in_order():
    lines, events = _narrate()
    actions = [e for e in events if isinstance(e, ev.Action) and e.action in NETWORK_ACTIONS]
    assert len(actions) == 2
    narrated = [line for line in lines if line.endswith("[action]") and re.match(r"\s+\d+\.\d{3}s controller", line)]
    wanted = [f"{a.action} {a.target}" for a in actions]
    got = [re.search(r"controller\s+(\S+ \S+)", line).group(1) for line in narrated
           if line.split("controller", 1)[1].split()[0] not in ("reset", "capture")]
    assert got == wanted
    headers = [line for line in lines if line.startswith("-- step")]
    assert headers == ["-- step 1: rebind home-router", "-- step 2: rebind home-router"]


def test_every_server_validation_is_narrated_in_order():
    lines, events = _narrate()
    validated = [e for e in events if isinstance(e, ev.PathValidated) and e.role == "server"]
    narrated = [line for line in lines if line.endswith("[path_validated]") and " server " in line
                and "validated in" in line and "what each" not in line]
    assert [re.search(r"path (\S+) validated", line).group(1) for line in narrated] == [v.peer for v in validated]
    assert [float(re.search(r"validated in ([\d.]+) ms", line).group(1)) for line in narrated] == \
        [round(v.validation_ms, 1) for v in validated]
    # each challenge is narrated with its data and its matching response
    for sent in (e for e in events if isinstance(e, ev.PathChallengeSent)):
        assert any(f"PATH_CHALLENGE {sent.data} sent to {sent.peer}" in line for line in lines)
        assert any(f"PATH_RESPONSE {sent.data} received" in line and "matches the challenge" in line for line in lines)


def _backed(line: str, events: list[ev.Event], yaml_text: str) -> bool:
    """A line is backed when it is structure, the scenario's own text, or names an event whose fields hold
    every address and hex value it prints."""
    if not line.strip() or line.startswith("== ") or line.strip().startswith("what each side saw"):
        return True
    if line.startswith("   | "):
        return " ".join(line[5:].split()) in " ".join(yaml_text.split())
    if line.startswith("-- step "):
        return True  # checked against the action events in test_every_network_action_is_narrated_in_order
    match = TAG.search(line)
    if not match:
        return False
    kind = match.group(1)
    candidates = _event_json(events, kind)
    if not candidates:
        return False
    tokens = ADDRESS.findall(line) + HEX.findall(line)
    return any(all(token in text for token in tokens) for text in candidates)


def test_nothing_is_printed_that_no_event_backs():
    lines, events = _narrate()
    yaml_text = SCENARIO.read_text()
    unbacked = [line for line in lines if not _backed(line, events, yaml_text)]
    assert not unbacked, unbacked
    assert not any("Path validated!" in line or "faster" in line for line in lines)


def test_relative_times_and_figures_come_from_the_events():
    lines, events = _narrate()
    t0 = min(e.ts for e in events)
    for line in lines:
        m = re.match(r"\s+(\d+\.\d{3})s (\S+)", line)
        if not m or not TAG.search(line):
            continue
        kind = TAG.search(line).group(1)
        rel = float(m.group(1))
        assert any(abs((e.ts - t0) - rel) < 0.0015 for e in events if e.TYPE == kind), line


@pytest.mark.integration  # the packet view decodes with the lab image's tshark: needs Docker and the image
def test_packet_view_matches_the_events():
    events = list(read_jsonl(RUN / "events.jsonl"))
    lines: list[str] = []
    assert packet_view(RUN, events, lines.append)
    tuples = [line for line in lines if line.startswith("   4-tuple")]
    seen_by_server = [e.peer for e in events if e.role == "server" and isinstance(e, ev.HandshakeCompleted)] + \
        [e.peer for e in events if e.role == "server" and isinstance(e, ev.PathDiscovered)]
    assert [re.search(r"client (\S+) <->", line).group(1) for line in tuples] == seen_by_server
    challenges = [line for line in lines if "PATH_CHALLENGE " in line and FRAME.search(line)]
    responses = [line for line in lines if "PATH_RESPONSE  " in line and FRAME.search(line)]
    sent = [e.data for e in events if isinstance(e, ev.PathChallengeSent)]
    assert [HEX.search(line).group(0) for line in challenges] == sent
    assert [HEX.search(line).group(0) for line in responses] == sent
    assert all("= server event path_challenge_sent" in line for line in challenges)
    assert all("= server event path_response_received" in line for line in responses)
    # a NAT rebinding keeps the DCID: the capture shows it
    assert sum("same DCID as on the previous 4-tuple (linkable)" in line for line in lines) == 2
    assert all(FRAME.search(line) or line.startswith(("== ", "   $ tshark")) or "events:" in line or not line.strip()
               for line in lines), lines


def test_packet_view_without_capture_says_why(tmp_path):
    shutil.copy(RUN / "events.jsonl", tmp_path / "events.jsonl")
    lines: list[str] = []
    assert not packet_view(tmp_path, list(read_jsonl(tmp_path / "events.jsonl")), lines.append)
    assert "packet view skipped" in lines[-1]


def test_server_addresses_from_client_events():
    events = list(read_jsonl(RUN / "events.jsonl"))
    assert server_addresses(events) == {"10.203.100.10:443"}


def test_flap_steps_show_their_text_once():
    raw = {"steps": [{"action": "flap", "description": "Ten switches."}, {"action": "rebind", "description": "R."}]}
    actions = [ev.Action(action="reset", target="lab"),
               ev.Action(action="route", target="cellular", detail={"step": "steps[0] flap 1/2"}),
               ev.Action(action="route", target="home", detail={"step": "steps[0] flap 2/2"}),
               ev.Action(action="rebind", target="home-router")]
    infos = step_infos(actions, raw)
    assert [(i.label, i.description) for i in infos.values()] == [
        ("step 1: route cellular", "Ten switches."), ("step 2: route home", None),
        ("step 3: rebind home-router", "R.")]


def _names() -> TopologyNames:
    return TopologyNames(networks=frozenset({"home", "cellular", "office", "internet", "datacenter"}),
                         client_networks=frozenset({"home", "cellular", "office"}),
                         routers=frozenset({"home-router", "carrier-nat", "office-router"}), default_network="home")


def test_narrating_view_follows_the_runner_interface():
    """Drive the view as ScenarioRunner does: start, event per observed event, note before each step."""
    scenario = load_scenario(SCENARIO, _names())
    lines: list[str] = []
    pauses: list[str] = []
    view = NarratingView(list(scenario.plan()), write=lines.append, pause=pauses.append)
    view.start(scenario.name, scenario.description)
    plan = list(scenario.plan())
    fired = 0
    for event in read_jsonl(RUN / "events.jsonl"):
        if isinstance(event, ev.Action) and event.action == "rebind":
            fired += 1
            view.note(f"step {fired}/{len(plan)}: rebind home-router {plan[fired - 1].description}")
        view.event(event, event.role)
    view.stop()
    assert pauses == ["start the run (the network will not wait for you once it starts)"]  # never mid-run
    assert "-- step 1/2: rebind home-router" in lines and "-- step 2/2: rebind home-router" in lines
    assert f"   | {plan[0].description}" in lines
    assert sum(line.endswith("[path_validated]") and "validated in" in line for line in lines) >= 2


def test_narrator_matches_responses_only_to_narrated_challenges():
    lines: list[str] = []
    narrator = Narrator(lines.append)
    narrator.event(ev.PathResponseReceived(ts=1.0, role="server", peer="10.0.0.1:1", data="00" * 8))
    assert "matches no challenge narrated here" in lines[-1]


def test_cli_from_run(capsys):
    assert main(["walkthrough", "--from-run", str(RUN), "--no-pause", "--no-packets"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("== nat-rebinding (recorded run nat-rebinding)")
    assert "[path_validated]" in out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["walkthrough", "--from-run", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["walkthrough"]) == 2


def test_recorded_run_is_small_and_consistent():
    size = sum(p.stat().st_size for p in RUN.rglob("*") if p.is_file())
    assert size < 300_000
    report = json.loads((RUN / "report.json").read_text())
    assert report["scenario"] == "nat-rebinding" and report["passed"]
