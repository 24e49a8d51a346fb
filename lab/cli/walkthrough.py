"""`python -m lab walkthrough NAME [--no-pause] [--from-run DIR]`: a scenario narrated step by step.

Live: the scenario runs through the ScenarioRunner (as `scenario run` does) with a narrating view: before
each step its teaching text from the YAML, then what each container observed (the peer address the server
saw, challenge data, validation time, CID changes, the routers' NAT mappings), then a packet view from the
server-side capture matched against the events. `--from-run DIR` narrates a recorded run directory
(events.jsonl, captures/) the same way, without Docker. Every narrated line names the event or capture
frame it comes from. Pauses for Enter only when stdin and stdout are terminals; `--no-pause` never does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lab.errors import LabError
from lab.learn.narrate import NarratingView, packet_view, replay, terminal_pause
from lab.observe.timeline import read_jsonl
from lab.verify.result import SHORT_MARKS

HELP = "run (or replay with --from-run) a scenario step by step, narrated from what was observed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", help="scenario name (see `python -m lab scenario list`)")
    parser.add_argument("--no-pause", action="store_true", help="never wait for Enter (CI)")
    parser.add_argument("--from-run", type=Path, metavar="DIR",
                        help="narrate a recorded run directory, e.g. artifacts/nat-rebinding/latest (no Docker)")
    parser.add_argument("--no-packets", action="store_true", help="skip the packet view (tshark)")


def _pause(args: argparse.Namespace):
    return (lambda _prompt: None) if args.no_pause else terminal_pause


def _write(text: str) -> None:
    print(text, flush=True)


def run(args: argparse.Namespace) -> int:
    pause = _pause(args)
    if args.from_run is not None:
        run_dir = args.from_run
        if not (run_dir / "events.jsonl").exists():
            raise LabError(f"{run_dir}: no events.jsonl (a run directory looks like artifacts/NAME/latest)")
        if not list(read_jsonl(run_dir / "events.jsonl", strict=False)):  # garbage had narrated nothing, exit 0
            raise LabError(f"--from-run {run_dir}: events.jsonl holds no event; allowed: a run directory the lab "
                           "recorded, e.g. artifacts/NAME/latest")
        events = replay(run_dir, _write, pause)
        if not args.no_packets:
            pause("packet view")
            packet_view(run_dir, events, _write)
        return 0
    if not args.name:
        raise LabError("name a scenario (see `python -m lab scenario list`) or give --from-run DIR")
    return _live(args.name, pause, packets=not args.no_packets)


def _live(name: str, pause, packets: bool) -> int:
    from lab import api
    from lab.topology.load import ROOT

    scenario = api.scenario(name)
    view = NarratingView(list(scenario.plan()), write=_write, pause=pause)
    result = api.run_scenario(scenario, view=view, capture=True)
    if packets:
        pause("packet view")
        packet_view(result.run_dir, list(result.verdict.timeline), _write)
    _write("")
    _write(f"== checks ({'PASSED' if result.passed else 'FAILED'}), judged from the same events and capture")
    for check in result.checks:
        mark = SHORT_MARKS[check.status]
        transport = f"{check.transport}:" if check.transport else ""
        _write(f"   {mark} {transport}{check.name}: {check.observed}")
    _write(f"   artifacts: {result.run_dir.relative_to(ROOT)}/  (replay: python -m lab walkthrough "
           f"--from-run {result.run_dir.relative_to(ROOT)})")
    if result.error:
        return 2
    return 0 if result.passed else 1
