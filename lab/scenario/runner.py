"""Play a scenario on the live lab: reset, capture, run the workload, fire the steps as their
triggers are observed, stream every container's events into one timeline, then judge the run.

The judging (checks, metrics) is pure and lives in `lab.verify` and `lab.report`; this module is
the edge that drives Docker and collects what happened.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lab import events as ev
from lab.control import adversary, impair, salvage
from lab.control import farm as farm_control
from lab.control.actions import ActionError, ActionResult, Lab
from lab.control.preflight import FaultWatch, PreflightError, RunLock, check_lab
from lab.observe.live import PlainView
from lab.observe.stream import ExecStream, LineQueue
from lab.observe.timeline import Timeline, write_jsonl
from lab.scenario.foreign_run import ForeignEnds, missing_images
from lab.scenario.names import topology_names
from lab.scenario.record import RECORD, RUN_END, TIMEOUT_ERROR, TOPOLOGY_COPY, scenario_copy
from lab.scenario.schema import Scenario, Step
from lab.scenario.stacks import Endpoints
from lab.scenario.steps import ACTIONS
from lab.topology.farm import farm_of
from lab.topology.load import ROOT
from lab.topology.model import CLIENT, SERVER, Topology

ARTIFACTS = ROOT / "artifacts"
RUNTIME = ARTIFACTS / ".runtime"
LOCK = RUNTIME / "run.lock"
CONTROL_SOCKET = "/run/lab/client.sock"
FIRST_PACKET_WAIT = 10.0  # s a black-box client may take to send its first packet
FAULT_GRACE = 0.3  # s an action that failed waits for the Engine to report the fault behind it
# s the run waits after its clients are done for the server's last events, when it cannot tell that
# they are all in (server_settled): a foreign server, a farm, an attack, a connection left open
SETTLE_WAIT = 0.8
INTERRUPTED = "interrupted (Ctrl-C)"

__all__ = ["ARTIFACTS", "RunInterrupted", "RunResult", "ScenarioRunner", "client_command", "restore_after",
           "topology_names"]


@dataclass
class RunResult:
    """What a run left: its directory, and once judged (:func:`lab.verify.judge.judge_run`) its verdict."""

    scenario: str
    run_id: str
    run_dir: Path
    error: str | None = None
    duration_s: float = 0.0
    client_exit: dict[str, int | None] = field(default_factory=dict)
    steps_played: int = 0
    foreign: dict[str, int | None] = field(default_factory=dict)  # a black-box server's state at the end
    restored: bool = True  # False: it ended well and left the lab as it was for the next run's reset
    verdict: Any = None  # a lab.verify.judge.Verdict once judged (verify sits above scenario)

    @property
    def passed(self) -> bool:
        return self.verdict is not None and self.verdict.passed

    @property
    def checks(self) -> list[Any]:
        return self.verdict.checks if self.verdict else []

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        return self.verdict.metrics if self.verdict else {}


def client_command(scenario: Scenario, topology: Topology, transport: str, run_id: str) -> list[str]:
    """The client program's command line for one transport of a scenario (pure)."""
    workload = scenario.workload
    port = topology.server_preferred_port if workload.migration == "preferred" and transport == "quic" \
        else (workload.port or topology.server_port)
    host = f"[{topology.server_address6}]" if workload.family == 6 else topology.server_address
    farm = farm_of(topology) if scenario.farm is not None else None
    if scenario.farm is not None and farm is None:
        raise ActionError(f"{scenario.name}: runs against the farm, and compose.yaml defines none (x-lab.farm)")
    if farm is not None:  # the farm's one address; its preferred port when the client is to move
        host, port = farm.address, (farm.preferred_port or farm.port) if workload.migration == "preferred" \
            else farm.port
    logs = f"/logs/runs/{run_id}"
    args = ["python", "-m", "lab.endpoints.client", f"--server={host}:{port}",
            f"--transport={transport}", f"--workload={workload.kind}",
            f"--keylog={logs}/keys-{ev.family_of(transport)}.log", f"--qlog-dir={logs}/qlog"]
    if transport == "quic":  # the TCP baseline takes no migration commands
        args.append(f"--control-socket={CONTROL_SOCKET}")
    if workload.kind == "download":
        args.append(f"--size={workload.size}")
        if workload.rate:
            args.append(f"--rate={workload.rate}")
    elif workload.kind == "video":
        args += [f"--bitrate={workload.bitrate}bit", f"--segment={workload.segment:g}s",
                 f"--segments={workload.segments}", f"--startup={workload.startup:g}s",
                 f"--buffer={workload.buffer:g}s"]
    else:
        args.append(f"--interval-ms={workload.interval * 1000:g}")
        if workload.duration:
            args.append(f"--duration={workload.duration:g}s")
        if workload.kind == "call" and transport == "quic" and not workload.datagrams:
            args.append("--call-stream")
    migration = workload.migration if transport == "quic" else "none"
    args.append(f"--migration={migration}")
    if migration == "active" and scenario.initial.networks:
        # An aware client binds to its interface's address; only its own migrate moves it.
        args.append(f"--local={topology.client_addresses[scenario.initial.networks[0]]}")
    args.append("--rotate-cid" if workload.rotate_cid else "--no-rotate-cid")
    strategies = workload.transport == "strategies"  # reconnect-vs-migrate: every client, one detection delay
    if transport == "quic" or strategies:
        args.append(f"--probe-after={workload.probe_after * 1000:g}ms")
    if strategies and transport == "tcp":
        args.append("--strategy")
    # Also copy the events to the container's own log, so `docker compose logs client` shows them.
    return ["bash", "-c", 'set -o pipefail; mkdir -p "$0/qlog"; "${@}" 2>&1 | tee -a /proc/1/fd/1', logs, *args]


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C ended a run; the message says whether the lab was restored."""


@contextlib.contextmanager
def interrupts_deferred(note: Callable[[str], None]) -> Iterator[list[int]]:
    """Within: Ctrl-C is noted (in the list yielded), not obeyed, so that what runs is not cut short.

    Signal handlers belong to the main thread; elsewhere (a notebook's worker) nothing changes.
    """
    pressed: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pressed
        return

    def defer(signum: int, frame: object) -> None:
        pressed.append(signum)
        note("Ctrl-C: restoring the lab first, it takes a few seconds")

    previous = signal.signal(signal.SIGINT, defer)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def restore_lab(lab: Lab) -> str | None:
    """Back to compose.yaml's initial state: None when done, else what stopped the reset.

    After a fault a part of the lab may be gone (a dead router or client, a removed network):
    then what survives is restored part by part (`lab.control.salvage`), and `make up` brings
    back the rest.
    """
    try:
        lab.reset(lab.topology.client_start_networks)
        return None
    except Exception as exc:  # docker-py raises more than ActionError here (a gone container: APIError)
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    salvage.restore(lab)
    return problem


def restore_after(topology: Topology) -> str | None:
    """Restore the lab after a batch whose runs may have left it as it was (``restore=False``),
    unless another run holds it now (that run's own reset comes first): what stopped the reset, else None."""
    try:
        lock = RunLock(LOCK).acquire("restore")
    except PreflightError:
        return None
    try:
        return restore_lab(Lab(topology))
    finally:
        lock.release()


def server_settled(timeline: list[ev.Event], since: float) -> bool:
    """Whether every connection the lab's server reported since ``since`` has reported its close (pure).

    Then nothing of the run is still to come from the server. Its QUIC close is reported after its
    qlog is complete: aioquic's ``_close_end`` queues ConnectionTerminated and ends the qlog trace
    in the same call, and IncrementalQlog.end_trace writes the file out before returning.
    """
    seen: set[str] = set()
    closed: set[str] = set()
    for event in timeline:
        if event.role == "server" and event.conn and event.ts >= since:
            seen.add(event.conn)
            if isinstance(event, ev.ConnectionClosed):
                closed.add(event.conn)
    return bool(seen) and seen == closed


class StepTrigger:
    """Decides, from observed events and the clock, whether a step may fire (pure)."""

    @staticmethod
    def due_at(step: Step, timeline: list[ev.Event], workload_start: float, previous_done: float) -> float | None:
        trigger = step.trigger
        fired: float | None
        if trigger.kind == "at":
            fired = workload_start + (trigger.at or 0.0)
        elif trigger.kind == "after":
            fired = next((e.ts for e in timeline if e.TYPE == trigger.event and e.ts >= workload_start
                          and (trigger.role is None or e.role == trigger.role)), None)
        elif trigger.kind == "after_bytes":
            fired = next((e.ts for e in timeline if isinstance(e, ev.Progress) and e.role == "client"
                          and e.bytes >= (trigger.bytes or 0)), None)
        else:  # right after the previous step
            fired = previous_done
        if fired is None:
            return None
        return max(fired, previous_done) + step.delay


class ScenarioRunner:
    foreign: ForeignEnds | None = None  # the foreign end(s) of a black-box run, once prepared

    def __init__(self, scenario: Scenario, topology: Topology, view: PlainView | None = None,
                 capture: bool = True, endpoints: Endpoints | None = None, restore: bool = True) -> None:
        self.scenario = scenario
        # False (the runs of a batch but its last): a run that ends well leaves the restore to the
        # next run's own reset, the same commands, instead of doing them twice; see restore_after.
        self.restore = restore
        self.endpoints = endpoints or Endpoints()
        self.topology = topology
        self.lab = Lab(topology)
        self.view = view or PlainView()
        self.capture = capture
        self.events: list[ev.Event] = []
        self.raw_lines: dict[str, list[str]] = {}

    # --- helpers ----------------------------------------------------------------------------

    def _record(self, event: ev.Event, source: str) -> None:
        self.events.append(event)
        self.view.event(event, source)

    def _action_event(self, result: ActionResult, started: float, step: Step | None = None) -> ev.Event:
        detail = dict(result.detail)
        detail["took_ms"] = round((time.time() - started) * 1000, 1)
        if step is not None and step.origin:
            detail["step"] = step.origin
        event = ev.Action(ts=started, mono=time.monotonic(), role="controller", conn=None, transport="",
                          action=result.action, target=result.target, detail=detail, ok=result.ok)
        return event

    def _apply(self, step: Step) -> ActionResult:
        """Apply a step as its action's spec says (``lab.scenario.steps.ACTIONS``)."""
        spec = ACTIONS.get(step.action)
        if spec is None or spec.apply is None:  # flap is expanded by Scenario.plan() before it gets here
            raise ActionError(f"action {step.action!r} is not supported by this controller")
        if spec.commands_client and self.foreign is not None:
            return ActionResult(step.action, step.network or "", {
                "skipped": f"the {self.endpoints.client.name} client is a black box: it cannot be told to "
                           f"{step.action}; what it did is in the capture"})
        return spec.apply(self.lab, step)

    def _black_box_step(self, step: Step) -> Step:
        """A step waiting for an event that a black-box end never emits runs right after the previous
        step instead (its action event says so: ``trigger_replaced``)."""
        trigger = step.trigger
        if self.foreign is None or trigger.kind not in ("after", "after_bytes"):
            return step
        foreign_roles = {r for r, s in (("client", self.endpoints.client), ("server", self.endpoints.server))
                         if not s.white_box}
        silent = trigger.kind == "after_bytes" and "client" in foreign_roles or (
            trigger.kind == "after" and (trigger.role in foreign_roles or trigger.role is None and
                                         foreign_roles == {"client", "server"}))
        if not silent:
            return step
        return replace(step, trigger=replace(trigger, kind="after_step"),
                       origin=f"{step.origin or ''} trigger_replaced: {trigger.kind} {trigger.role or ''}:"
                              f"{trigger.event or trigger.bytes} (a black box emits no events)".strip())

    def _ingest(self, line_source: str, text: str, received: float) -> None:
        self.raw_lines.setdefault(line_source, []).append(text)
        if line_source.startswith("foreign/"):  # a black box's own log: shown, kept, never taken as an event
            if text.strip():
                self.view.note(f"{line_source}: {text.strip()[:160]}")
            return
        try:
            event = ev.parse_line(text)
        except (ev.SchemaError, TypeError) as exc:
            role, _, transport = line_source.partition("/")
            event = ev.Error(ts=received, mono=0.0, role="router" if role in self.topology.routers else role,
                             transport=transport, message=f"{line_source}: unparsable event: {exc}")
        if event is not None:
            self._record(event, line_source if event.role == "router" else line_source.split("/")[0])

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Play the scenario and leave every artifact in its run directory; judge it with judge_run.

        Raises PreflightError (nothing touched) when the lab is not ready or another run holds it.
        """
        scenario = self.scenario
        if self.endpoints.black_box and scenario.farm is not None:  # nothing touched yet
            raise PreflightError(f"{scenario.name}: a farm scenario runs the lab's own replicas behind the "
                                 "balancer; it takes no other stack (drop --client/--server)")
        lock = RunLock(LOCK).acquire(scenario.name)
        try:
            check_lab(self.topology)
            missing = missing_images(self.endpoints, self.topology) if self.endpoints.black_box else []
            if missing:
                raise PreflightError(f"image missing for {', '.join(missing)}: build it (make qh3-image for qh3)")
            if self.endpoints.black_box and self.scenario.workload.kind != "download":
                raise PreflightError(f"{self.scenario.name}: a black-box run needs a download workload "
                                     f"(the interop contract's transfer), not {self.scenario.workload.kind}")
            if self.attacking:
                try:
                    adversary.ensure_up(self.topology)
                except (ActionError, RuntimeError) as exc:
                    raise PreflightError(str(exc)) from None
            if self.farming:
                try:
                    farm_control.ensure_up(self.topology)
                except (ActionError, RuntimeError) as exc:
                    raise PreflightError(str(exc)) from None
            return self._run()
        finally:
            if self.attacking:  # only the scenarios that attack have a victim and an attacker
                with contextlib.suppress(Exception):
                    adversary.remove(self.topology)
                    self.lab.forget(*adversary.hosts(self.topology))
            if self.farming:  # and only the farm's scenarios the balancer and the replicas
                with contextlib.suppress(Exception):
                    farm_control.remove(self.topology)
                    self.lab.forget(*self.farm_hosts)
            lock.release()

    @property
    def attacking(self) -> bool:
        return self.scenario.attacks

    @property
    def farming(self) -> bool:
        return self.scenario.farm is not None and self.foreign is None and not self.endpoints.black_box

    @property
    def lab_ends_alone(self) -> bool:
        """The lab's own client and server, with no foreign end, farm or attacker beside them: then
        the server's events tell when a run is over (server_settled), and its reset undoes it all."""
        return self.foreign is None and not self.farming and not self.attacking

    @property
    def farm_hosts(self) -> tuple[str, ...]:
        farm = farm_of(self.topology) if self.farming else None
        return farm.services if farm else ()

    def _run(self) -> RunResult:
        scenario = self.scenario
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
        run_dir = ARTIFACTS / scenario.name / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        latest = ARTIFACTS / scenario.name / "latest"
        with contextlib.suppress(FileNotFoundError):
            latest.unlink()
        latest.symlink_to(run_id)
        result = RunResult(scenario.name, run_id, run_dir)
        started = time.time()
        self._write_record(run_dir, run_id, started)
        self.view.start(scenario.name, scenario.description)
        streams = LineQueue()
        faults = FaultWatch(self.topology)
        interrupted = False
        try:
            self._play(run_id, run_dir, streams, result, faults)
        except (ActionError, RuntimeError) as exc:  # a failed action or container command ends the run
            # A fault makes the next action fail: the fault, once the Engine reports it, is the cause.
            result.error = result.error or faults.fault(wait=FAULT_GRACE) or str(exc)
        except KeyboardInterrupt:
            interrupted = True
            result.error = INTERRUPTED
        finally:
            # Ctrl-C from here on waits: a collection or a reset cut short leaves the lab half-restored.
            with interrupts_deferred(self.view.note) as pressed:
                faults.close()
                if self.foreign is not None:
                    try:
                        result.foreign.update({f"{k}_exit_after_stop": v
                                               for k, v in self.foreign.teardown().items()})
                    except (ActionError, RuntimeError) as exc:
                        result.error = result.error or str(exc)
                self.view.stop()
                result.duration_s = time.time() - started
                self._record(ev.Action(ts=time.time(), mono=time.monotonic(), role="controller", conn=None,
                                       transport="", action=RUN_END, target=scenario.name, ok=result.error is None,
                                       detail={"error": result.error, "exit_codes": result.client_exit,
                                               **({"foreign": result.foreign} if result.foreign else {}),
                                               "steps_played": result.steps_played,
                                               "steps_planned": len(scenario.plan()),
                                               "duration_s": round(result.duration_s, 3)}), "controller")
                problem, collected = None, False
                try:
                    self._collect(run_id, run_dir)
                    collected = True
                finally:
                    if self.restore or not collected or result.error is not None or interrupted or pressed \
                            or not self.lab_ends_alone:
                        self.view.note("restoring the lab")
                        problem = self._restore()
                    else:
                        result.restored = False
        if interrupted or pressed:
            raise RunInterrupted("the lab is restored" if problem is None else
                                 f"the lab could not be fully restored ({problem}): run `make up`")
        return result

    def _restore(self) -> str | None:
        return restore_lab(self.lab)

    def _write_record(self, run_dir: Path, run_id: str, started: float) -> None:
        """What judging the run again needs besides its observations: scenario, topology, options."""
        config = self.topology.extra.get("config")
        if config is None:
            raise ActionError("the topology was not read from compose.yaml: cannot record the run")
        source = Path(self.scenario.file)
        (run_dir / scenario_copy(self.scenario.name)).write_text(source.read_text())
        (run_dir / TOPOLOGY_COPY).write_text(json.dumps(config, indent=1) + "\n")
        (run_dir / RECORD).write_text(json.dumps({
            "run_id": run_id, "scenario": self.scenario.name, "file": str(source), "started": started,
            "capture": self.capture, "endpoints": self.endpoints.to_dict(),
            "files": [f.to_dict() for f in (self.foreign.files if self.foreign else ())]}, indent=1) + "\n")

    def _play(self, run_id: str, run_dir: Path, streams: LineQueue, result: RunResult, faults: FaultWatch) -> None:
        scenario = self.scenario
        t = time.time()
        with faults.own():  # a reset may recreate the client
            reset = self.lab.reset(scenario.initial.networks)
        self._record(self._action_event(reset, t), "controller")
        for network, impairment in scenario.initial.impair.items():
            t = time.time()
            self._record(self._action_event(impair.apply(self.lab, network, impairment), t), "controller")
        for step in scenario.initial.nat:  # before the client's first packet makes a mapping
            t = time.time()
            self._record(self._action_event(self._apply(step), t, step), "controller")
        if self.endpoints.black_box:
            self.foreign = ForeignEnds(self.lab, self.topology, scenario, self.endpoints, run_dir, run_id)
            t = time.time()
            self._record(self._action_event(self.foreign.prepare(), t), "controller")
            self._write_record(run_dir, run_id, t)  # now with the served file's sha256
        if self.farming and scenario.farm is not None:
            t = time.time()
            farm_control.set_mode(self.topology, scenario.farm.mode)
            self._record(self._action_event(ActionResult("farm", "balancer", {
                "mode": farm_control.mode(self.topology), "expects": scenario.farm.connection,
                "replicas": list(self.farm_hosts[1:])}), t), "controller")
        if self.capture:
            t = time.time()
            names = self.lab.start_captures()
            if self.farming:
                names += farm_control.start_captures(self.lab)
                time.sleep(0.3)  # the replicas' dumpcap starts detached: let it open its socket first
            self._record(self._action_event(ActionResult("capture", "routers", {"interfaces": names}), t),
                         "controller")
        since = time.time() - 0.2
        streams.follow_container(SERVER, self.lab.ctr(SERVER), since)
        for router in self.topology.routers:
            streams.follow_container(router, self.lab.ctr(router), since)
        for host in adversary.hosts(self.topology) if self.attacking else ():
            streams.follow_container(host, self.lab.ctr(host), since)
        for host in self.farm_hosts:  # the replicas' events (role server) and the balancer's lines
            streams.follow_container(host, self.lab.ctr(host), since)
        clients: dict[str, ExecStream] = {}
        if self.foreign is not None:
            end = self.foreign.start_client()
            streams.follow_container("foreign/client", end.container, time.time() - 5)
        else:
            for transport in scenario.transports:
                command = client_command(scenario, self.topology, transport, run_id)
                clients[transport] = ExecStream(self.lab.ctr(CLIENT), command)
                streams.add(f"client/{transport}", clients[transport].output)
        workload_start = time.time()
        plan = list(scenario.plan())
        step_index, previous_done = 0, workload_start
        deadline = workload_start + scenario.timeout
        client_sources = {f"client/{t}" for t in clients} or {"foreign/client"}
        finished_at: float | None = None
        next_foreign_check = 0.0
        # A black box starts its program in a new container (interpreter start-up included), so its
        # steps are timed from its first packet, which the router's NAT mapping shows; else a
        # rebinding "at 1s" can land in the middle of its handshake.
        clock_pending = self.foreign is not None
        while True:
            line = streams.get(timeout=0.02)
            while line is not None:
                self._ingest(line.source, line.text, line.received)
                line = streams.get(timeout=0)
            now = time.time()
            if clock_pending:
                first = next((e.ts for e in self.events if isinstance(e, ev.NatMapping) and e.ts >= workload_start),
                             None)
                if first is not None or now - workload_start > FIRST_PACKET_WAIT:
                    started, workload_start = workload_start, first or now
                    previous_done, clock_pending = workload_start, False
                    self._record(self._action_event(ActionResult("clock", "steps", {
                        "from": "the client's first NAT mapping" if first else "no NAT mapping seen: the clock",
                        "after_start_ms": round((workload_start - started) * 1000, 1)}), workload_start),
                        "controller")
            if step_index < len(plan) and not clock_pending:
                step = self._black_box_step(plan[step_index])
                due = StepTrigger.due_at(step, self.events, workload_start, previous_done)
                if due is not None and now >= due:
                    self.view.note(f"step {step_index + 1}/{len(plan)}: {step.action} "
                                   f"{step.network or step.router or ''} {step.description or ''}".strip())
                    t = time.time()
                    try:
                        with faults.own():  # the client's connects and disconnects are the scenario's
                            outcome = self._apply(step)
                    except (ActionError, RuntimeError) as exc:
                        self._record(self._action_event(ActionResult(step.action, step.network or step.router or "",
                                                                     {"error": str(exc)}, ok=False), t, step),
                                     "controller")
                        raise
                    self._record(self._action_event(outcome, t, step), "controller")
                    previous_done = time.time() + (step.duration or 0.0 if step.action == "wait" else 0.0)
                    step_index += 1
                    result.steps_played = step_index
                    continue
            fault = faults.fault()
            if fault is not None:
                result.error = fault
                break
            if self.foreign is not None and now >= next_foreign_check:
                next_foreign_check = now + 0.5
                gone = self.foreign.server_gone()
                if gone is not None:
                    result.error = gone
                    self.foreign.kill_client()
                    break
            if finished_at is None and not (client_sources & streams.open_sources):
                finished_at = now
            if finished_at is not None and (now - finished_at > SETTLE_WAIT or (
                    self.lab_ends_alone and step_index == len(plan) and server_settled(self.events, workload_start))):
                break  # the clients are done, and the server's last events are in or have had time to arrive
            if now > deadline:
                result.error = f"{TIMEOUT_ERROR}: the scenario did not finish within {scenario.timeout:g} s"
                self.lab.ctr(CLIENT).exec_run(["pkill", "-f", "lab.endpoints.client"])
                if self.foreign is not None:
                    self.foreign.kill_client()
                break
        for line in streams.drain():
            self._ingest(line.source, line.text, line.received)
        result.client_exit = {t: s.exit_code() for t, s in clients.items()}
        if self.foreign is not None:
            result.client_exit["client"] = self.foreign.client_exit()
            result.foreign["server_running_at_end"] = self.foreign.server_running()
        fault = faults.fault()
        if fault is not None and result.error is None:
            result.error = fault
        if step_index < len(plan):
            missing = plan[step_index]
            result.error = result.error or (
                f"step {step_index + 1} ({missing.action}, line {missing.line}) never triggered")

    def _collect(self, run_id: str, run_dir: Path) -> None:
        """Every artifact of the run: events, logs, qlog, key logs, captures (keys injected)."""
        timeline = Timeline.from_streams(ev.adopt_client_transports(self.events))
        write_jsonl(run_dir / "events.jsonl", timeline)
        logs = run_dir / "logs"
        logs.mkdir(exist_ok=True)
        for source, lines in self.raw_lines.items():
            (logs / f"{source.replace('/', '-')}.log").write_text("\n".join(lines) + "\n")
        if self.capture:
            with contextlib.suppress(Exception):
                self.lab.stop_captures(run_dir / "captures")
            if self.farming:
                with contextlib.suppress(Exception):
                    farm_control.stop_captures(self.lab, run_dir / "captures")
        client_runtime = RUNTIME / CLIENT / "runs" / run_id
        if client_runtime.exists():
            shutil.copytree(client_runtime, run_dir / "client", dirs_exist_ok=True)
            shutil.rmtree(client_runtime, ignore_errors=True)
        conns = {e.conn for e in self.events if e.conn and e.role == "server"}
        server_qlog = RUNTIME / SERVER / "qlog"
        for conn in conns:
            for path in server_qlog.glob(f"{conn}*.qlog"):
                (run_dir / "server" / "qlog").mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, run_dir / "server" / "qlog" / path.name)
        if self.farming:
            with contextlib.suppress(Exception):
                farm_control.collect(self.topology, RUNTIME, run_dir, conns)
