"""`python -m lab scenario run|list|validate`: play YAML scenarios on the live lab.

Exit codes: 0 every check passed, 1 a check failed, 2 an error (bad file, lab not running...).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from lab import api
from lab.cli import options
from lab.errors import LabError
from lab.observe.live import make_view
from lab.scenario import stacks
from lab.scenario.names import topology_names
from lab.scenario.schema import Scenario, ScenarioError, load_catalogue, load_scenario
from lab.topology.load import ROOT, load_topology
from lab.verify.background import BackgroundJudge, pipelining
from lab.verify.result import EXPECTED_FAILURE, FAILED, NOT_APPLICABLE, NOT_VERIFIED, PASSED, UNEXPECTED_PASS

if TYPE_CHECKING:
    from concurrent.futures import Future

    from lab.scenario.runner import RunResult
    from lab.verify.judge import Verdict

HELP = "run, list or validate scenarios (YAML files in scenarios/)"
SCENARIOS = api.SCENARIOS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="scenario_verb", metavar="run|list|validate", required=True)
    run = sub.add_parser("run", help="play a scenario on the live lab")
    run.add_argument("names", nargs="*", metavar="NAME|FILE", help="scenario names or files")
    run.add_argument("--all", action="store_true", help="every scenario in scenarios/, then a summary table")
    run.add_argument("--json", action="store_true", help="events as JSON lines on stdout")
    run.add_argument("--no-capture", action="store_true", help="skip packet captures and tshark checks")
    run.add_argument("--client-image", metavar="STACK|IMAGE", default=None,
                     help="the client's stack: lab (default), aioquic, qh3, or an image speaking the interop-runner "
                          "contract (a black-box run, judged from captures, qlog, sha256 and exit code)")
    run.add_argument("--server-image", metavar="STACK|IMAGE", default=None,
                     help="the server's stack, as --client-image (the lab's server yields UDP 443 to it)")
    run.add_argument("--strict", action="store_true", help="RFC 9000 MUST violations in the capture fail the run")
    run.add_argument("--pipeline", action="store_true",
                     help="with several scenarios, judge each run in the background while the next one plays "
                          "(faster; it disturbs the playing run's millisecond figures, see README)")
    sub.add_parser("list", help="the scenario catalogue")
    validate = sub.add_parser("validate", help="check scenario files without running them")
    validate.add_argument("files", nargs="+", metavar="FILE")


def _names():
    return topology_names(load_topology())


def resolve(name: str) -> Scenario:
    return api.scenario(name, _names)


def run(args: argparse.Namespace) -> int:
    if args.scenario_verb == "list":
        catalogue = load_catalogue(SCENARIOS, _names())
        table = Table(title="scenarios")
        for column in ("name", "transport", "migration", "steps", "about"):
            table.add_column(column)
        for name, scenario in sorted(catalogue.items()):
            table.add_row(name, scenario.workload.transport, scenario.workload.migration, str(len(scenario.steps)),
                          scenario.description.strip().splitlines()[0])
        Console().print(table)
        return 0
    if args.scenario_verb == "validate":
        names, failed = _names(), 0
        for file in args.files:
            try:
                load_scenario(file, names)
                print(f"{file}: ok")
            except ScenarioError as exc:
                print(str(exc), file=sys.stderr)
                failed += 1
            except OSError as exc:
                print(f"{file}: {exc.strerror}", file=sys.stderr)
                failed += 1
        return 2 if failed else 0
    # A bad name (or an empty one, which meant the lab's own) is rejected before anything is read.
    options.stack("--client-image", args.client_image, "client")
    options.stack("--server-image", args.server_image, "server")
    stacks.endpoints(args.client_image, args.server_image)
    if args.all and args.names:  # --all had silently dropped the names
        raise LabError(f"--all runs the whole catalogue; give it or NAME|FILE ({' '.join(args.names)}), not both")
    scenarios = list(load_catalogue(SCENARIOS, _names()).values()) if args.all else [resolve(n) for n in args.names]
    if not scenarios:
        raise LabError("name a scenario (see `python -m lab scenario list`) or use --all")
    return run_many(scenarios, json_output=args.json, capture=not args.no_capture, client=args.client_image,
                    server=args.server_image, strict=args.strict, pipeline=args.pipeline)


def run_many(scenarios: list[Scenario], json_output: bool = False, capture: bool = True, client: str | None = None,
             server: str | None = None, strict: bool = False, pipeline: bool = False) -> int:
    """Play each scenario, print each verdict, then (for several) a summary; the exit code.

    ``pipeline`` (or LAB_PIPELINE=1), with several scenarios: a run is judged in the background
    while the next one plays (at the lowest CPU priority, lab.verify.background); each verdict is
    printed once it is in, between runs, in the order of the runs. Not the default: it disturbs the
    playing run's figures (README "Catalogue time").
    """
    topology = load_topology()
    results: list[tuple[Scenario, RunResult]] = []
    judge = BackgroundJudge(strict) if pipelining(len(scenarios), pipeline) else None
    pending: list[tuple[RunResult, Future[Verdict]]] = []
    printed = 0

    def show(wait: bool) -> None:  # the verdicts that are in, in the order of the runs
        nonlocal printed
        while pending and (wait or pending[0][1].done()):
            result, future = pending.pop(0)
            assert judge is not None
            result.verdict = judge.result(future, result.run_dir)
        while printed < len(results) and results[printed][1].verdict is not None:
            scenario, result = results[printed]
            if not json_output:
                _print_checks(result)
            if result.error:  # a run the lab could not finish (a fault, a timeout): its cause, in one line
                print(f"error: {scenario.name}: {result.error}", file=sys.stderr)
            printed += 1

    finished = False
    # A run but the last leaves the lab for the next run's reset (the same commands): the batch's
    # end, or anything that cuts it short, restores the lab once (restore_after).
    unrestored = False
    try:
        for index, scenario in enumerate(scenarios):
            restore = index == len(scenarios) - 1
            unrestored = unrestored or not restore
            if judge is None:
                result = api.run_scenario(scenario, topology, make_view(json_output), capture=capture, client=client,
                                          server=server, strict=strict, restore=restore)
            else:
                result = api.play_scenario(scenario, topology, make_view(json_output), capture=capture,
                                           client=client, server=server, restore=restore)
                pending.append((result, judge.submit(result.run_dir)))
            unrestored = not result.restored
            results.append((scenario, result))
            show(wait=False)
        show(wait=True)
        finished = True
    except KeyboardInterrupt as exc:  # between runs (a verdict being written): the lab is restored first
        from lab.scenario.runner import RunInterrupted

        if isinstance(exc, RunInterrupted) or not unrestored:  # a run restored it before letting Ctrl-C through
            unrestored = False
            raise
        unrestored, problem = False, _restore(topology)
        raise RunInterrupted("the lab is restored" if problem is None else
                             f"the lab could not be fully restored ({problem}): run `make up`") from None
    finally:
        if unrestored:
            problem = _restore(topology)
            if problem is not None:
                print(f"error: the lab could not be fully restored ({problem}): run `make up`", file=sys.stderr)
        if judge is not None:
            if not finished and pending:  # Ctrl-C or an error: what was played is judged later, on demand
                print(f"not judged: {', '.join(str(r.run_dir.relative_to(ROOT)) for r, _ in pending)} "
                      "(`python -m lab verify RUN_DIR`)", file=sys.stderr)
            judge.close(cancel=not finished)
    if not json_output and len(results) > 1:
        _print_summary(results)
    if any(r.error for _, r in results):
        return 2 if all(r.error for _, r in results) else 1
    return 0 if all(r.passed for _, r in results) else 1


def _restore(topology) -> str | None:
    """The lab back to compose.yaml's state after a batch (a second Ctrl-C waits for it)."""
    from lab.scenario.runner import interrupts_deferred, restore_after  # docker-py: only when needed

    with interrupts_deferred(lambda note: print(note, file=sys.stderr)):
        return restore_after(topology)


MARKS = {PASSED: "[green]✓[/]", NOT_VERIFIED: "[yellow]not verified[/]", FAILED: "[red]✗[/]",
         NOT_APPLICABLE: "[dim]n/a[/]", EXPECTED_FAILURE: "[magenta]expected failure[/]",
         UNEXPECTED_PASS: "[red]unexpected pass[/]"}


def _short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _print_checks(result) -> None:
    console = Console()
    table = Table(title=f"{result.scenario}: {'PASSED' if result.passed else 'FAILED'}", title_justify="left")
    for column in ("check", "transport", "", "observed", "expected"):
        table.add_column(column)
    for check in result.checks:
        table.add_row(check.name, check.transport or "", MARKS[check.status], _short(check.observed),
                      _short(check.expected))
    console.print(table)
    verdict = result.verdict
    if verdict is not None:
        tally = ", ".join(f"{n} {status}" for status, n in sorted(verdict.tally().items()))
        optional = f" (optional evidence: {', '.join(sorted(verdict.optional))})" if verdict.optional else ""
        console.print(f"  checks: {tally}{optional}")
        for figure in verdict.figures:
            console.print(f"  observed, not a check: {figure.name}: {_short(figure.value, 100)}")
    for transport, metrics in result.metrics.items():
        disruption = metrics.get("disruption_ms")
        validation = metrics.get("validation_ms")
        console.print(f"  {transport}: disruption "
                      f"{'not observed' if disruption is None else f'{disruption:.0f} ms'}, validation "
                      f"{'not observed' if validation is None else f'{validation:.1f} ms'}, handshakes "
                      f"{metrics.get('handshakes')}, paths seen {metrics.get('paths_seen')}")
    console.print(f"  artifacts: {result.run_dir.relative_to(ROOT)}/ (report.md, events.jsonl, captures, qlog)")


def _print_summary(results) -> None:
    table = Table(title="summary")
    table.add_column("scenario", no_wrap=True)
    for column in ("verdict", "disruption", "recovery", "validation", "wall time"):
        table.add_column(column)
    for scenario, result in results:
        figures = []
        for key, digits in (("disruption_ms", 0), ("recovery_ms", 0), ("validation_ms", 1)):
            values = [f"{t}: {m[key]:.{digits}f} ms" for t, m in result.metrics.items() if m.get(key) is not None]
            figures.append("\n".join(values) or "-")
        verdict = "[green]PASS[/]" if result.passed else ("[red]ERROR[/]" if result.error else "[red]FAIL[/]")
        table.add_row(scenario.name, verdict, *figures, f"{result.duration_s:.1f} s")
    Console().print(table)
    console = Console()
    console.print("disruption: the longest gap in the client's data after the first network change; recovery: "
                  "the part of it after the change had completed; validation: the slowest path validation.")
