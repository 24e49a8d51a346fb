"""The lab's Python API: what `python -m lab scenario run` and `docs/tutorial.ipynb` are built on.

Stable surface (everything else in ``lab`` may change between commits)::

    topology() -> Topology           the lab as compose.yaml describes it (networks, routers, addresses)
    up(timeout=90) -> None           start the lab and wait until it is ready (as `python -m lab up`)
    scenario(name_or_path) -> Scenario   a catalogue name ("nat-rebinding") or a YAML file, validated
    run(name_or_path, capture=True, live=False) -> Verdict
                                     play a scenario on the live lab, judge it, write its reports
    verify(run_dir) -> Verdict       judge a recorded run again from its files (as `python -m lab verify`)
    goodput_chart(verdict) -> str    the client's goodput over time as standalone SVG, network actions
                                     marked and each transport's disruption window shaded

A :class:`~lab.verify.judge.Verdict` holds ``passed``, ``checks`` (each a
:class:`~lab.verify.result.CheckResult`: ``name``, ``status`` ("passed", "failed", "not verified"),
``observed``, ``expected``, ``evidence``, ``transport``), ``metrics`` (transport -> figures:
``disruption_ms``, ``recovery_ms``, ``validation_ms``, ``noise_floor_ms``, ``handshakes``,
``paths_seen``, ...; ``None`` when not observed), ``timeline`` (every event of the run) and
``run_dir`` (``artifacts/<scenario>/<run-id>/``, with report.json, report.html, captures, qlog).

Errors are :class:`lab.errors.LabError` with a one-line message (the lab is not running, another
run holds it, no such scenario...). Example::

    from lab import api

    api.up()
    verdict = api.run("nat-rebinding")
    print("PASSED" if verdict.passed else "FAILED", verdict.run_dir)
    for check in verdict.checks:
        print(check.status, check.name, check.observed)
    print(verdict.metrics["quic"]["disruption_ms"])
"""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lab.control import host6, readiness
from lab.control.docker_api import subnet_conflicts
from lab.errors import LabError
from lab.observe.live import PlainView
from lab.scenario.schema import Scenario, TopologyNames, load_scenario
from lab.topology.load import ROOT, compose_command, load_topology
from lab.topology.model import Topology, validate
from lab.verify.judge import Verdict, judge_and_report, judge_run
from lab.verify.result import CheckResult

if TYPE_CHECKING:
    from lab.scenario.runner import RunResult

__all__ = ["SCENARIOS", "CheckResult", "LabError", "Verdict", "goodput_chart", "run", "run_scenario", "scenario",
           "scenario_path", "topology", "up", "verify"]

SCENARIOS = ROOT / "scenarios"


def topology() -> Topology:
    """The lab's topology, read from compose.yaml through `docker compose config` (cached)."""
    return load_topology()


def up(timeout: int = 90) -> None:
    """Start the lab (`docker compose up --wait`) and wait until every service is ready.

    Validates the topology first, so a bad override leaves a running lab as it was. Does nothing
    harmful when the lab is already up. Raises LabError with a one-line reason (a bad compose.yaml,
    a subnet taken, no certificates, compose failed). `python -m lab up` is this function.
    """
    topo = load_topology()
    problems = validate(topo)
    if problems:  # before anything changes: a running lab is left as it was
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise LabError(f"compose.yaml: {problems[0]}{more}")
    conflicts = subnet_conflicts(topo)
    if conflicts:
        raise LabError(f"subnet already taken: {conflicts[0]} (set the *_SUBNET variables, see README)")
    if not (ROOT / "certs" / "server.crt").exists():
        raise LabError("certs/server.crt is missing: run `make certs` (or `make up`)")
    for service in ("server", "client"):
        (ROOT / "artifacts" / ".runtime" / service).mkdir(parents=True, exist_ok=True)
    for gateway in topo.gateways.values():  # the routers' captures (compose.yaml's bind mounts)
        (ROOT / "artifacts" / ".runtime" / "captures" / gateway.router).mkdir(parents=True, exist_ok=True)
    note = host6.install()  # before Compose makes the dual-stack networks (lab.control.host6)
    if note:
        print(note, flush=True)
    start = time.monotonic()
    print("==> starting the lab (docker compose up --wait)", flush=True)
    result = subprocess.run([*compose_command(), "up", "-d", "--wait", "--wait-timeout", str(timeout),
                             "--remove-orphans", "--quiet-pull"], capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else "unknown error"
        if "address already in use" in result.stderr or "port is already allocated" in result.stderr:
            raise LabError(f"a port is already in use: {reason}")
        if "Pool overlaps" in result.stderr:
            raise LabError(f"a lab subnet is already taken: {reason} (set the *_SUBNET variables, see README)")
        raise LabError(f"docker compose up failed: {reason} (see `make logs`)")
    readiness.wait_ready(topo, timeout)  # the services' own readiness commands (lab.control.readiness)
    print(f"==> lab ready in {time.monotonic() - start:.1f} s: {', '.join(sorted(topo.services))}", flush=True)


def scenario_path(name_or_path: str | Path) -> Path:
    """A catalogue name ("nat-rebinding", in scenarios/) or a file path -> the scenario's file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIOS / f"{name_or_path}.yaml"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.yaml")))
            raise LabError(f"no scenario named {str(name_or_path)!r}; known: {known}")
    elif not path.exists():
        raise LabError(f"{name_or_path}: no such file")
    return path


def _topology_names() -> TopologyNames:
    from lab.scenario.names import topology_names

    return topology_names(load_topology())


def scenario(name_or_path: str | Path,
             names: TopologyNames | Callable[[], TopologyNames] | None = None) -> Scenario:
    """Load and validate a scenario (raises ScenarioError listing every located problem).

    ``names``: the topology's names to validate against (default: this lab's, from compose.yaml).
    """
    path = scenario_path(name_or_path)
    if names is None:
        names = _topology_names
    return load_scenario(path, names() if callable(names) else names)


def run_scenario(scenario: Scenario, topology: Topology | None = None, view: PlainView | None = None,
                 capture: bool = True, client: str | None = None, server: str | None = None,
                 strict: bool = False, restore: bool = True) -> RunResult:
    """Play a loaded scenario on the live lab, judge the run and write its reports.

    Returns the runner's :class:`~lab.scenario.runner.RunResult` (``error``, ``duration_s``,
    ``client_exit``) with its ``verdict`` set. ``view`` shows the live events (default: none).
    ``client`` / ``server``: a stack name (``lab``, ``aioquic``, ``qh3``) or an image speaking the
    interop-runner contract (:mod:`lab.scenario.stacks`); default: the scenario's, else the lab's own.
    ``strict``: RFC MUST violations found in the capture fail the run.
    ``restore=False``: a run that ends well leaves the lab as it is, for a next run whose reset
    restores it anyway (``result.restored`` False); :func:`lab.scenario.runner.restore_after` restores it.
    """
    result = play_scenario(scenario, topology, view, capture=capture, client=client, server=server, restore=restore)
    result.verdict = judge_and_report(result.run_dir, strict=strict)
    return result


def play_scenario(scenario: Scenario, topology: Topology | None = None, view: PlainView | None = None,
                  capture: bool = True, client: str | None = None, server: str | None = None,
                  restore: bool = True) -> RunResult:
    """Play a loaded scenario on the live lab and leave its files in its run directory, unjudged
    (``verdict`` None): :func:`run_scenario` without its judge, for a caller that judges elsewhere
    (`scenario run A B`: in the background while the next run plays, lab.verify.background)."""
    from lab.scenario.runner import ScenarioRunner
    from lab.scenario.stacks import endpoints

    view = view if view is not None else PlainView(io.StringIO())
    ends = endpoints(client or scenario.stacks.get("client"), server or scenario.stacks.get("server"))
    runner = ScenarioRunner(scenario, topology or load_topology(), view, capture=capture, endpoints=ends,
                            restore=restore)
    return runner.run()


def run(name_or_path: str | Path | Scenario, capture: bool = True, live: bool = False) -> Verdict:
    """Run a scenario (a name, a file or a loaded Scenario) on the live lab; return its judged Verdict.

    ``capture=False`` skips the packet captures (faster; the capture checks are then not verified
    and do not count, as with `--no-capture`). ``live=True`` prints the events as they are observed.
    The run's files are in ``verdict.run_dir``.
    """
    loaded = name_or_path if isinstance(name_or_path, Scenario) else scenario(name_or_path)
    return run_scenario(loaded, view=PlainView() if live else None, capture=capture).verdict


def verify(run_dir: str | Path, strict: bool = False) -> Verdict:
    """Judge a recorded run again from its directory alone (raises NotARunDir when it is not a run's).

    ``strict``: RFC 9000 MUST violations found in the capture fail the run (they are reported either way).
    """
    return judge_run(run_dir, strict=strict)


def goodput_chart(verdict: Verdict) -> str:
    """The client's goodput over time as a standalone SVG (display it with IPython.display.SVG).

    The same chart as report.html's: QUIC from the client's qlog, TCP from its progress events, the
    network actions as vertical lines and each transport's disruption window shaded.
    """
    from lab.report.charts import build_charts, time_zero
    from lab.report.render import read_qlogs

    traces, _, _ = read_qlogs(Path(verdict.run_dir))
    charts = build_charts(verdict.timeline, list(verdict.metrics), traces, time_zero(verdict.timeline))
    svg = charts.svgs[0]
    if "xmlns=" not in svg.split(">", 1)[0]:
        svg = svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"', 1)
    return svg
