"""`python -m lab soak`: every catalogue scenario N times; the pass rate per scenario and the failing
checks of every failed run (`make soak`, a benchmark: not part of `make test`).

Each run is a `scenario run` (captures on unless --no-capture, judged as always), so every run
leaves its artifacts and every figure traces to them. Progress, one line per run, goes to stderr;
the table to stdout; soak.json, soak.md and soak.svg to artifacts/bench/<run>/. The lab's state
is compared before and after the whole soak (`lab.control.snapshot`): a leak is reported.

A fault or a timeout in one run is that run's failure; the lab not ready or held by another run
ends the soak (one line, exit 2) after writing what it gathered. Exit 0 when every run passed, else 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from lab import api
from lab.bench import soak
from lab.bench.runs import BenchRun
from lab.cli import options
from lab.control import snapshot
from lab.control.preflight import PreflightError
from lab.errors import LabError
from lab.scenario.names import topology_names
from lab.scenario.schema import load_catalogue
from lab.topology.load import ROOT, load_topology

HELP = "soak: every catalogue scenario N times, the pass rate per scenario and every failed run's checks"
RUNS = options.Bounds(1, 1000, "runs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=20, help="runs per scenario (default 20)")
    parser.add_argument("--scenarios", default="", help="scenarios to soak, comma separated (default: the catalogue)")
    parser.add_argument("--no-capture", action="store_true", help="skip packet captures and tshark checks")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    runs = options.whole("--runs", args.runs, RUNS)
    topology = load_topology()
    catalogue = load_catalogue(api.SCENARIOS, topology_names(topology))
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()] or sorted(catalogue)
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        raise LabError(f"--scenarios: no scenario named {unknown[0]!r}; allowed: {', '.join(sorted(catalogue))}")
    bench = BenchRun.start()
    before = snapshot.take(topology)
    done: list[soak.SoakRun] = []
    started = time.time()
    context = {"method": f"every scenario run {runs} times with `scenario run` "
                         f"({'no captures' if args.no_capture else 'captures on'}), each judged as always; "
                         "a run passes when its verdict passes", "runs_per_scenario": runs,
               "capture": not args.no_capture, "started": started}
    try:
        for name in names:
            for number in range(1, runs + 1):
                t = time.time()
                result = api.run_scenario(catalogue[name], topology, capture=not args.no_capture)
                verdict = result.verdict
                failed = tuple(soak.FailedCheck(c.name, c.status, str(c.observed), c.transport)
                               for c in verdict.checks if verdict.counts(c))
                entry = soak.SoakRun(name, number, verdict.passed, round(time.time() - t, 2),
                                     str(result.run_dir.relative_to(ROOT)), result.error, failed)
                done.append(entry)
                print(soak.run_line(entry, runs), file=sys.stderr, flush=True)
    except PreflightError as exc:
        _write(bench, done, before, topology, context, incomplete=str(exc))
        raise LabError(f"soak stopped after {len(done)} run(s): {exc}") from None
    except KeyboardInterrupt:
        _write(bench, done, before, topology, context, incomplete="interrupted (Ctrl-C)")
        raise
    tallies, leaks = _write(bench, done, before, topology, context)
    if args.format == "json":
        print(json.dumps(soak.report(tallies, done, **context, leaks=leaks), indent=2))
    else:
        print("\n".join(soak.text_table(tallies)))
        failures = soak.failure_lines(done)
        if failures:
            print("failed runs:")
            print("\n".join(f"  {line}" for line in failures))
        print(f"lab state after the soak: {'as before' if not leaks else 'CHANGED: ' + '; '.join(leaks)}")
        print(f"written: {bench.directory.relative_to(ROOT)}/soak.json, soak.md, soak.svg")
    return 0 if done and all(r.passed for r in done) and not leaks else 1


def _write(bench: BenchRun, done: list[soak.SoakRun], before: snapshot.LabSnapshot, topology,
           context: dict, incomplete: str | None = None) -> tuple[list[soak.Tally], list[str]]:
    tallies = soak.tally(done)
    try:
        leaks = snapshot.diff(before, snapshot.take(topology))
    except Exception as exc:  # the lab broken by the run that stopped the soak: say so, keep the runs
        leaks = [f"the lab's state could not be read: {str(exc).strip()[:200]}"]
    extra = {"incomplete": incomplete} if incomplete else {}
    data = soak.report(tallies, done, **context, finished=time.time(), leaks=leaks, **extra)
    (bench.directory / "soak.json").write_text(json.dumps(data, indent=2) + "\n")
    title = f"Soak {bench.directory.name}: {context['runs_per_scenario']} run(s) per scenario" + \
        (f" (incomplete: {incomplete})" if incomplete else "")
    (bench.directory / "soak.md").write_text(soak.markdown(tallies, done, title))
    (bench.directory / "soak.svg").write_text(soak.svg(tallies))
    return tallies, leaks
