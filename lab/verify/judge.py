"""The one judge: a run's verdict from its artifacts alone.

``judge_run(run_dir)`` reads what a run left in ``artifacts/<scenario>/<run-id>/`` (the scenario
and topology it ran with, the merged event stream, both sides' qlog, the server-side capture) and
judges all of it in one place. `scenario run`, `walkthrough`, `bench` and `lab verify` call it the
same way, so a recorded run re-judged later gets the verdict it got live.

Evidence or nothing: a missing or unreadable source is a failed check that names its file, never
a missing row; a check with nothing to judge is ``not verified`` and fails the run unless the
scenario lists that source under ``optional_evidence`` (or the run was made without captures).
Apart from decoding the capture with the lab image's tshark (the edge in :mod:`lab.verify.pcap`),
everything here is a function of the files.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab import events as ev
from lab.errors import LabError
from lab.observe.timeline import Timeline
from lab.report import strategies
from lab.report.metrics import compute_metrics
from lab.report.render import read_qlog_document, write_reports
from lab.scenario.names import topology_names
from lab.scenario.record import (
    DOWNLOADS,
    EVENTS,
    KEYLOG,
    RECORD,
    RUN_END,
    SERVER_CAPTURE,
    SERVER_KEYLOG,
    TOPOLOGY_COPY,
    scenario_copy,
)
from lab.scenario.schema import Scenario, ScenarioError, parse_scenario
from lab.scenario.stacks import Endpoints
from lab.scenario.steps import ACTIONS
from lab.topology.farm import farm_of
from lab.topology.model import Topology, TopologyError, topology_from_config
from lab.verify import (
    attack_checks,
    blackbox,
    capture_checks,
    conformance,
    cross_checks,
    farm_checks,
    qlog_fill,
    tcp_tls,
)
from lab.verify.checks import evaluate
from lab.verify.conformance import Finding
from lab.verify.pcap import ImageTools, QuicPacket, TsharkError, prepare_captures, read_quic_packets
from lab.verify.result import (
    EXPECTED_FAILURE,
    NOT_APPLICABLE,
    NOT_VERIFIED,
    UNEXPECTED_PASS,
    CheckResult,
    Figure,
    not_verified,
)

# Steps that move the client to a new path (new address or port), from the action table. Connect,
# disconnect, blackhole and impairment change reachability, not the path; a preferred-address
# workload moves by itself.
MIGRATING_ACTIONS = frozenset(name for name, spec in ACTIONS.items() if spec.moves_client)


class NotARunDir(LabError):
    """The directory lacks what identifies a run (its record, scenario or topology)."""


@dataclass(frozen=True)
class RunRecord:
    """What the runner wrote when the run started: enough to judge it again anywhere."""

    run_id: str
    scenario: Scenario
    topology: Topology
    capture: bool
    started: float
    endpoints: Endpoints = field(default_factory=Endpoints)
    files: tuple[dict[str, Any], ...] = ()  # served by a black-box run: name, size, sha256


@dataclass
class Verdict:
    scenario: str
    run_id: str
    run_dir: Path
    checks: list[CheckResult] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    optional: frozenset[str] = frozenset()
    error: str | None = None
    duration_s: float = 0.0
    description: str = ""
    packets: int | None = None
    decoded: list[Any] | None = field(default=None, repr=False)  # the server-side capture as judged
    endpoints: Endpoints = field(default_factory=Endpoints)
    conformance: list[Finding] | None = None  # None: not judged (no decoded capture)
    strategies: list[dict[str, Any]] | None = None  # reconnect-vs-migrate's table (lab.report.strategies)
    strict: bool = False
    timeline: Timeline = field(default_factory=Timeline, repr=False)

    def counts(self, check: CheckResult) -> bool:
        """Whether ``check`` stands in the way of a pass."""
        if check.status == UNEXPECTED_PASS:
            return True  # a recorded failure that no longer fails: the record is stale
        if check.passed or check.status in (NOT_APPLICABLE, EXPECTED_FAILURE):
            return False
        return not (check.status == NOT_VERIFIED and check.source in self.optional)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and not any(self.counts(c) for c in self.checks)

    def tally(self) -> dict[str, int]:
        return dict(Counter(c.status for c in self.checks))

    def write_reports(self, prefetched: Prefetched | None = None) -> dict[str, Any]:
        """report.json, report.md, goodput.svg, report.html (...) in the run directory; returns the report.

        report.html draws the packets: the server-side capture is handed over as the judge decoded
        it (decoding is the slow part), the NATs' client sides are decoded for it, or taken from
        ``prefetched`` (:func:`prefetch_client_sides`) when decoded there with the same arguments.
        """
        report = self.to_dict()
        judged = (self.run_dir / SERVER_CAPTURE).resolve()

        def read_packets(pcap: Path, keylog: Path | None, ports: Any) -> list[Any]:
            if self.decoded is not None and Path(pcap).resolve() == judged:
                return self.decoded
            early = (prefetched or {}).get(_decode_key(pcap, keylog, ports))
            if early is not None:
                return early.result()  # its error, if any, is the decoder's, as below
            return read_quic_packets(pcap, keylog, ports)

        write_reports(self.run_dir, report, self.timeline, self.description, read_packets=read_packets)
        return report

    def to_dict(self) -> dict[str, Any]:
        """report.json: `metrics` holds the first transport's figures at top level (disruption_ms,
        validation_ms, handshakes, paths_seen) and every transport's under `by_transport`."""
        first = next(iter(self.metrics.values()), {})
        return {
            "scenario": self.scenario,
            "run_id": self.run_id,
            "passed": self.passed,
            "error": self.error,
            "duration_s": round(self.duration_s, 3),
            "tally": self.tally(),
            "optional_evidence": sorted(self.optional),
            "checks": [c.to_dict() for c in self.checks],
            "figures": [f.to_dict() for f in self.figures],
            "metrics": {**first, "by_transport": self.metrics},
            "captures": {"tool": "tshark (lab image)", "packets": self.packets,
                         "files": sorted(p.name for p in (self.run_dir / "captures").glob("*.pcapng"))},
            "endpoints": self.endpoints.to_dict(),
            # A farm run's figures (which replica, rebindings until the move, the reaction), by farm check.
            **({"farm": farm} if (farm := farm_checks.summary(self.checks)) else {}),
            **({} if self.strategies is None else {"strategies": self.strategies}),
            **({} if self.conformance is None else {"conformance": [f.to_dict() for f in self.conformance],
                                                     "conformance_strict": self.strict}),
        }


# --- reading the artifacts ----------------------------------------------------------------


def read_record(run_dir: Path) -> RunRecord:
    missing = [name for name in (RECORD, TOPOLOGY_COPY) if not (run_dir / name).is_file()]
    if missing:
        raise NotARunDir(f"{run_dir}: not a run directory (missing {', '.join(missing)}); "
                         "a run directory looks like artifacts/NAME/latest")
    copy = run_dir
    try:
        record = json.loads((run_dir / RECORD).read_text())
        topology = topology_from_config(json.loads((run_dir / TOPOLOGY_COPY).read_text()))
        copy = run_dir / scenario_copy(str(record["scenario"]))
        scenario = parse_scenario(copy.read_text(), str(copy), topology_names(topology))
        return RunRecord(str(record["run_id"]), scenario, topology, bool(record.get("capture", True)),
                         float(record.get("started", 0.0)), Endpoints.from_dict(record.get("endpoints")),
                         tuple(record.get("files") or ()))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, TopologyError) as exc:
        if isinstance(exc, ScenarioError):
            raise NotARunDir(str(exc).splitlines()[0]) from None
        raise NotARunDir(f"{run_dir}: unreadable run record: {exc}") from None
    except OSError as exc:
        raise NotARunDir(f"{copy}: {exc.strerror}") from None



def read_events_file(path: Path) -> tuple[Timeline, CheckResult]:
    """The recorded timeline, and a check that it was complete.

    A line that does not parse is kept as an ``error`` event quoting it (so ``run_completed``
    fails), never dropped: a cut-off stream must not pass checks that look for an absence.
    """
    name, expected = "events_recorded", "a readable event stream that ends with run_end"
    if not path.is_file():
        return Timeline(), CheckResult(name, False, f"{path.name} is missing", expected, evidence=0)
    found: list[ev.Event] = []
    bad: list[str] = []
    last_ts = 0.0
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ev.SchemaError("not a JSON object")
            event = ev.from_dict(data)
            last_ts = max(last_ts, event.ts)
            found.append(event)
        except (json.JSONDecodeError, ev.SchemaError, TypeError, ValueError) as exc:
            bad.append(f"{path.name}:{number}")
            found.append(ev.Error(ts=last_ts, role="controller", transport="",
                                  message=f"{path.name}:{number}: unparsable event line ({exc}): {line[:80]!r}"))
    timeline = Timeline.from_streams(found)
    ended = timeline.last(ev.Action, role="controller")
    complete = any(isinstance(e, ev.Action) and e.action == RUN_END for e in timeline)
    problems = []
    if bad:
        problems.append(f"{len(bad)} unparsable line(s) ({', '.join(bad[:3])})")
    if not complete:
        problems.append(f"no {RUN_END} event: the stream is cut short"
                        + (f" after {ended.action}" if isinstance(ended, ev.Action) else ""))
    if problems:
        return timeline, CheckResult(name, False, "; ".join(problems), expected, evidence=len(found))
    return timeline, CheckResult(name, True, f"{len(found)} events, ends with {RUN_END}", expected, evidence=len(found))


@dataclass(frozen=True)
class Qlog:
    path: Path
    events: list[dict[str, Any]]


SIDES = ("client", "server")
SideQlogs = dict[str, tuple[list["Qlog"], list[str]]]  # side -> (its qlog files, problems reading them)


def read_qlogs(directory: Path) -> tuple[list[Qlog], list[str]]:
    """The qlog files of one side, and one problem string per unreadable file."""
    logs: list[Qlog] = []
    problems: list[str] = []
    for path in sorted(directory.glob("*.qlog")) if directory.is_dir() else []:
        try:
            data = read_qlog_document(path)
            events = [e for trace in data.get("traces", []) for e in trace.get("events", [])]
            logs.append(Qlog(path, events))
        except (json.JSONDecodeError, AttributeError, TypeError) as exc:
            problems.append(f"{path.parent.parent.name}/{path.parent.name}/{path.name}: unreadable ({exc})")
    return logs, problems


def qlog_challenges(logs: list[Qlog]) -> set[str]:
    """PATH_CHALLENGE data the qlog recorded as sent."""
    found: set[str] = set()
    for log in logs:
        for event in log.events:
            if event.get("name") != "transport:packet_sent":
                continue
            for frame in (event.get("data") or {}).get("frames", []):
                if frame.get("frame_type") == "path_challenge":
                    found.add(str(frame.get("data", "")).lower())
    return found


# --- the judgement -------------------------------------------------------------------------


def expects_migration(scenario: Scenario, topology: Topology | None = None) -> bool:
    """Whether the scenario moves the client to a new path (the migration capture checks apply)."""
    return (scenario.workload.migration == "preferred" or any(s.action in MIGRATING_ACTIONS for s in scenario.plan())
            or (topology is not None and idle_outlasts_binding(scenario, topology)))


def idle_outlasts_binding(scenario: Scenario, topology: Topology) -> bool:
    """Whether an ``idle`` step outlasts the NAT binding its traffic leaves by (RFC 9308 §3.2).

    The binding then expires, the client's next packet gets a new mapping, and the server sees a
    new path. The binding's timeout is the router's conntrack timeout for a replied flow from
    compose.yaml, or the last ``nat`` step's ``udp_timeout`` (which sets both of conntrack's).
    A keep-alive more often than the timeout keeps the binding, so that idle moves nothing.
    """
    timeouts = {router: float(nat.udp_timeout_stream) for router, nat in topology.nat.items()}
    starts = scenario.initial.networks or topology.client_start_networks
    route = starts[0] if starts else None
    for step in (*scenario.initial.nat, *scenario.plan()):
        if step.action == "route":
            route = step.network
        elif step.action == "disconnect" and step.network == route:
            route = None
        elif step.action == "nat" and step.udp_timeout is not None and step.router:
            timeouts[step.router] = float(step.udp_timeout)
        elif step.action == "idle" and route in topology.gateways:
            timeout = timeouts.get(topology.gateways[route].router)
            quiet = step.keepalive if step.keepalive is not None else step.duration
            if timeout is not None and quiet is not None and quiet > timeout:
                return True
    return False


def run_completed(timeline: Timeline, planned: int) -> CheckResult:
    """Every step played, no error event, every endpoint exited 0 (from the runner's run_end event)."""
    name, expected = "run_completed", "every step played, no error event, clients exited 0"
    end = next((e for e in reversed(timeline.events) if isinstance(e, ev.Action) and e.action == RUN_END), None)
    problems: list[str] = []
    detail = end.detail if isinstance(end, ev.Action) else {}
    if end is None:
        problems.append(f"no {RUN_END} event: the run did not finish recording")
    if detail.get("error"):
        problems.append(str(detail["error"]))
    # A client the scenario's own step ended (farm_rebind's give_up) exits as it was made to: not a failure.
    gave_up = any(isinstance(e, ev.Action) and e.ok and (e.detail.get("gave_up") or {}).get("ended")
                  for e in timeline)
    for transport, code in sorted((detail.get("exit_codes") or {}).items()):
        if code != 0 and not gave_up:
            problems.append(f"{transport} client exited {code if code is not None else 'without a code (killed?)'}")
    errors = [e for e in timeline.of(ev.Error) if isinstance(e, ev.Error)]
    for error in errors[:3]:
        problems.append(f"{error.role} error: {error.message}")
    if len(errors) > 3:
        problems.append(f"... {len(errors) - 3} more error event(s)")
    played = detail.get("steps_played")
    if end is not None and played is not None and played < planned:
        problems.append(f"{played} of {planned} steps played")
    if problems:
        return CheckResult(name, False, "; ".join(problems), expected, evidence=len(errors) + (end is not None))
    codes = ", ".join(f"{t} {c}" for t, c in sorted((detail.get("exit_codes") or {}).items())) or "none"
    if gave_up and any(c != 0 for c in (detail.get("exit_codes") or {}).values()):
        codes += " (ended by the scenario's give_up)"
    return CheckResult(name, True, f"{played if played is not None else planned} of {planned} steps played, "
                       f"exit codes: {codes}, no error event", expected,
                       evidence=1 + len(detail.get("exit_codes") or {}))


def _server_addresses(topology: Topology, scenario: Scenario | None = None) -> set[str]:
    """Where the client may reach the server: the lab's server (both families: a connection over
    IPv6 has the server's IPv6 address in the captures), or for a farm scenario the farm's address
    and the replicas' unicast ones."""
    farm = farm_of(topology) if scenario is not None and scenario.farm is not None else None
    if farm is not None:
        return set(farm.addresses)
    return {a for a in (topology.server_address, topology.server_preferred_address,
                        getattr(topology, "server_address6", None),
                        getattr(topology, "server_preferred_address6", None)) if a}


ATTACK_CAPTURES = ("captures/victim.pcapng", "captures/attacker.pcapng")


def read_side_qlogs(run_dir: Path) -> SideQlogs:
    """Each side's qlog files and the problems reading them, read once for every check that uses them."""
    return {side: read_qlogs(run_dir / side / "qlog") for side in SIDES}


def _capture_checks(run_dir: Path, record: RunRecord, timeline: Timeline, migration: bool, qlogs: SideQlogs,
                    tools: ImageTools | None) -> tuple[list[CheckResult], list[Figure], list[QuicPacket] | None]:
    scenario, topology = record.scenario, record.topology
    expected = "the server-side capture decoded by the lab image's tshark"
    capture = run_dir / SERVER_CAPTURE
    if not record.capture:
        return [not_verified("capture_verified", "the run was made without captures (--no-capture)", expected,
                             "captures", "quic")], [], None
    try:
        prepare_captures(run_dir, tools)  # raw captures of a fresh run: keys injected, server side merged
    except TsharkError as exc:
        return [CheckResult("capture_verified", False, f"preparing the captures: {str(exc).splitlines()[0]}",
                            expected, "quic", 0, "captures")], [], None
    if not capture.is_file():
        return [CheckResult("capture_verified", False, f"{SERVER_CAPTURE} is missing", expected, "quic", 0,
                            "captures")], [], None
    keylog = run_dir / KEYLOG
    if not keylog.is_file() and (run_dir / SERVER_KEYLOG).is_file():
        keylog = run_dir / SERVER_KEYLOG  # a black-box client that writes none; its server did
    ports = (topology.server_port, topology.server_preferred_port)
    try:
        packets = read_quic_packets(capture, keylog if keylog.is_file() else None, ports, tools)
    except (TsharkError, OSError) as exc:
        return [CheckResult("capture_verified", False, f"{SERVER_CAPTURE}: {str(exc).splitlines()[0]}", expected,
                            "quic", 0, "captures")], [], None
    received: dict = {}
    dropped: list[tuple[float, int]] = []
    for logs, _ in qlogs.values():  # what each receiver decrypted itself, for what tshark could not
        for log in logs:
            received.update(qlog_fill.received_frames(log.events))
            dropped += qlog_fill.dropped_undecrypted(log.events)
    packets = qlog_fill.mark_dropped(qlog_fill.fill_from_qlog(packets, received), dropped)
    checks = [CheckResult("capture_verified", bool(packets), f"{len(packets)} QUIC packets in {SERVER_CAPTURE}",
                          expected, "quic", len(packets), "captures")]
    servers = _server_addresses(topology, scenario)
    if scenario.attacks:  # the victim's and the attacker's captures are in the server's view (prepare_captures)
        missing = [name for name in ATTACK_CAPTURES if not (run_dir / name).is_file()]
        hostile = topology.adversary
        if missing or hostile is None:
            why = f"{', '.join(missing)} missing: the attack was not captured" if missing else \
                "the topology defines no adversary"
            checks.append(CheckResult("capture_verified", False, why, expected, "quic", 0, "captures"))
        checks.extend(attack_checks.run_all(timeline, None if missing or hostile is None else packets, servers))
    plan = scenario.plan()
    rotating = scenario.workload.migration == "active" and scenario.workload.rotate_cid
    # A new DCID on every new path is expected only when every path change is an active
    # migration with rotation; a NAT rebinding keeps the CID by design.
    active = rotating and not any(step.action == "rebind" for step in plan)
    lossy = any((i.loss or i.profile) for i in scenario.initial.impair.values()) or any(
        step.action == "impair" for step in plan)
    judged = packets
    if scenario.workload.transport == "strategies":  # the migrating connection's packets; the others reconnect
        judged = strategies.packets_of(packets, {e.conn for e in timeline.for_transport("quic").by_role("client")
                                                 if e.conn}, topology.server_port)
    checks += capture_checks.run_all(judged, servers, migration=migration, active_migration=active and migration,
                                     lossy=lossy, rotating=rotating and migration)
    checks = [c.with_(name=c.name if c.name.startswith("capture_") else f"capture_{c.name}") for c in checks]
    if record.endpoints.black_box:  # the cross-checks compare with the lab's own events
        return checks, [], packets
    # A flow the farm's hash moved reaches a replica that reports nothing (aioquic drops it silently):
    # the servers' events cannot list it. The farm checks judge where it went, from that replica's capture.
    if not (scenario.farm and scenario.farm.connection == "breaks"):
        checks.append(cross_checks.paths_in_capture(timeline, judged, servers))
    if migration:
        checks.append(cross_checks.challenges_in_capture(timeline, judged, servers))
    linkability = capture_checks.cid_linkability(judged, servers)
    figures = [Figure("cid_linkability", str(linkability.observed), "captures", "quic")]
    return checks, figures, packets


def _qlog_checks(qlogs: SideQlogs, timeline: Timeline, migration: bool, black_box: bool = False) -> list[CheckResult]:
    checks: list[CheckResult] = []
    for side, (logs, problems) in qlogs.items():
        name, expected = f"qlog_{side}", f"a readable qlog of the {side}'s connection in {side}/qlog/"
        events = sum(len(log.events) for log in logs)
        if problems:
            checks.append(CheckResult(name, False, "; ".join(problems), expected, "quic", events, "qlog"))
        elif not logs and black_box:  # the contract's QLOGDIR is a request, not an obligation
            checks.append(not_verified(name, f"the {side}'s stack wrote no qlog to {side}/qlog/", expected, "qlog",
                                       "quic"))
        elif not logs:
            checks.append(CheckResult(name, False, f"no qlog in {side}/qlog/", expected, "quic", 0, "qlog"))
        else:
            checks.append(CheckResult(name, events > 0, f"{len(logs)} file(s), {events} events", expected, "quic",
                                      events, "qlog"))
    if migration:
        checks.append(cross_checks.challenges_in_qlog(timeline, qlog_challenges(qlogs["server"][0])))
    return checks


DecodeKey = tuple[Path, Path | None, tuple[int, ...]]
Prefetched = dict[DecodeKey, "Future[list[QuicPacket]]"]
PREFETCH_MIN_BYTES = 4096  # a client side with less holds no datagram worth drawing (an empty one is 808 B)


def _decode_key(pcap: Path, keylog: Path | None, ports: Iterable[int]) -> DecodeKey:
    return Path(pcap).resolve(), None if keylog is None else Path(keylog).resolve(), tuple(ports)


def prefetch_client_sides(run_dir: Path, pool: ThreadPoolExecutor) -> Prefetched:
    """Start decoding the NATs' client-side captures that report.html will want (those with traffic)
    while the judge decodes the server side: the same call, arguments and result as the report's own
    (lab.report.render.decode_captures), only earlier. Nothing when the run has no readable record."""
    try:
        record = read_record(run_dir)
        prepare_captures(run_dir)  # the pcapng files the judge would make first; idempotent
    except (NotARunDir, TsharkError, OSError):
        return {}
    if not record.capture or not (run_dir / SERVER_CAPTURE).is_file():
        return {}
    keylog = run_dir / KEYLOG
    key = keylog if keylog.is_file() else None
    ports = (record.topology.server_port, record.topology.server_preferred_port)
    found: Prefetched = {}
    for router in record.topology.routers:
        pcap = run_dir / "captures" / f"{router}-lan.pcapng"
        if pcap.is_file() and pcap.stat().st_size >= PREFETCH_MIN_BYTES:
            found[_decode_key(pcap, key, ports)] = pool.submit(read_quic_packets, pcap, key, ports)
    return found


def judge_and_report(run_dir: str | Path, strict: bool = False) -> Verdict:
    """What every verb does after a run: judge it from its artifacts, then write its reports.

    The client sides report.html draws are decoded while the judge works (a container each, on the
    other core), not after it.
    """
    run_dir = Path(run_dir)
    with ThreadPoolExecutor(max_workers=4) as pool:
        prefetched = prefetch_client_sides(run_dir, pool)
        verdict = judge_run(run_dir, strict=strict)
        verdict.write_reports(prefetched)
    return verdict


def judge_run(run_dir: str | Path, tools: ImageTools | None = None, strict: bool = False) -> Verdict:
    """Judge a run from its directory. Raises :class:`NotARunDir` when it is not one.

    ``strict``: MUST violations among the RFC 9000 conformance findings fail the run (they are
    reported either way, apart from the scenario's checks).
    """
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    scenario = record.scenario
    timeline, stream = read_events_file(run_dir / EVENTS)
    optional = set(scenario.optional_evidence) | (set() if record.capture else {"captures"})
    if record.endpoints.black_box:
        optional.add("qlog")  # the contract asks for a qlog only where the stack can write one
    verdict = Verdict(scenario.name, record.run_id, run_dir, optional=frozenset(optional),
                      description=scenario.description, timeline=timeline, endpoints=record.endpoints,
                      strict=strict)
    verdict.checks.append(stream)
    if record.endpoints.black_box:
        _judge_black_box(verdict, record, timeline, tools)
    else:
        _judge_white_box(verdict, record, timeline, tools)
    if verdict.decoded is not None:
        verdict.conformance = conformance.evaluate(verdict.decoded, _server_addresses(record.topology, scenario))
        if strict:
            verdict.checks.append(conformance_check(verdict.conformance))
    known = scenario.known_failures
    if known and not record.endpoints.black_box:  # recorded for the lab's own endpoints, not any stack's
        verdict.checks = [c.with_(known_failure=known[c.name]) if c.name in known else c for c in verdict.checks]
    return verdict


def conformance_check(findings: list[Finding]) -> CheckResult:
    """--strict: the MUST rules of RFC 9000 the capture can show, as one check."""
    bad = conformance.violations(findings)
    observed = "; ".join(f"{f.rule} ({f.endpoint}): {f.summary}" for f in bad) or \
        f"no MUST violation in {len(findings)} finding(s)"
    judged = [f for f in findings if f.verdict != "not observed"]
    return CheckResult("conformance_strict", not bad, observed, "no RFC 9000 MUST violation in the capture", "quic",
                       len(judged), "captures", verified=bool(judged))


def _downloads(run_dir: Path, files: Iterable[dict[str, Any]]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for item in files:
        path = run_dir / DOWNLOADS / str(item["name"])
        found[str(item["name"])] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return found


def _run_end(verdict: Verdict, timeline: Timeline) -> dict[str, Any]:
    """The runner's run_end event: its duration and error go to the verdict; its detail is returned."""
    end = next((e for e in reversed(timeline.events) if isinstance(e, ev.Action) and e.action == RUN_END), None)
    if not isinstance(end, ev.Action):
        return {}
    verdict.duration_s = float(end.detail.get("duration_s") or 0.0)
    verdict.error = end.detail.get("error")
    return dict(end.detail)


def _judge_black_box(verdict: Verdict, record: RunRecord, timeline: Timeline, tools: ImageTools | None) -> None:
    """A run with a foreign end: captures, qlog, the files' sha256 and the exit code (lab.verify.blackbox)."""
    run_dir, scenario, ends = verdict.run_dir, record.scenario, record.endpoints
    verdict.checks.append(run_completed(timeline, len(scenario.plan())))
    detail = _run_end(verdict, timeline)
    codes = {**(detail.get("exit_codes") or {}), **(detail.get("foreign") or {})}
    verdict.checks.append(blackbox.exit_check(ends.client.name, codes.get("client")))
    if not ends.server.white_box:
        verdict.checks.append(blackbox.server_check(ends.server.name, codes.get("server_running_at_end")))
    verdict.checks.append(blackbox.files_check(record.files, _downloads(run_dir, record.files)))
    qlogs = read_side_qlogs(run_dir)
    verdict.checks.extend(_qlog_checks(qlogs, timeline, False, black_box=True))
    checks, figures, packets = _capture_checks(run_dir, record, timeline, expects_migration(scenario, record.topology),
                                               qlogs, tools)
    verdict.checks.extend(checks)
    verdict.figures.extend(figures)
    verdict.packets = None if packets is None else len(packets)
    verdict.decoded = packets
    servers = _server_addresses(record.topology)
    why = next((str(c.observed) for c in checks if c.name == "capture_verified" and not c.passed), "")
    verdict.checks.extend(blackbox.expectation_checks(scenario.expect, packets, servers, why))
    facts = blackbox.capture_facts(packets, servers) if packets else None
    verdict.metrics["quic"] = {
        "method": "black box: the server-side capture",
        "disruption_ms": None if facts is None else facts.longest_client_silence_ms,
        "validation_ms": None if facts is None else facts.validation_ms,
        "handshakes": None if facts is None else facts.handshakes,
        "paths_seen": None if facts is None else len(facts.client_tuples),
        "capture": None if facts is None else facts.to_dict(),
        "detection_delay_ms": scenario.workload.probe_after * 1000,
    }


def _judge_white_box(verdict: Verdict, record: RunRecord, timeline: Timeline, tools: ImageTools | None) -> None:
    """A run of the lab's own endpoints: their events, both qlogs, the capture and the cross-checks."""
    run_dir, scenario = verdict.run_dir, record.scenario
    for transport in scenario.transports:
        verdict.checks.extend(evaluate(timeline, scenario.expect, transport))
        verdict.metrics[transport] = compute_metrics(timeline, transport).to_dict()
        if transport == "quic" and verdict.metrics[transport]["detection_delay_ms"] is None:
            # No probe was needed: the delay the client ran with is the scenario's (configured, not observed).
            verdict.metrics[transport]["detection_delay_ms"] = scenario.workload.probe_after * 1000
    verdict.checks.append(run_completed(timeline, len(scenario.plan())))
    _run_end(verdict, timeline)
    if "quic" in scenario.transports:
        # A farm scenario that expects the break does not expect the validation the migration checks look for.
        breaks = bool(scenario.farm and scenario.farm.connection == "breaks")
        migration = expects_migration(scenario, record.topology) and not breaks
        qlogs = read_side_qlogs(run_dir)
        verdict.checks.extend(_qlog_checks(qlogs, timeline, migration))
        checks, figures, packets = _capture_checks(run_dir, record, timeline, migration, qlogs, tools)
        verdict.checks.extend(checks)
        verdict.figures.extend(figures)
        verdict.packets = None if packets is None else len(packets)
        verdict.decoded = packets
        if scenario.farm is not None:
            verdict.checks.extend(_farm_checks(run_dir, record, timeline, packets, tools))
    if scenario.workload.transport == "strategies":  # after the capture checks: their decoded packets
        verdict.strategies = _strategies(verdict, record, timeline, tools)


def _farm_checks(run_dir: Path, record: RunRecord, timeline: Timeline, packets: list[QuicPacket] | None,
                 tools: ImageTools | None) -> list[CheckResult]:
    """The farm's checks (lab.verify.farm_checks) on each replica's capture and log and the server's view."""
    scenario, farm = record.scenario, farm_of(record.topology)
    if farm is None or scenario.farm is None:
        return [CheckResult("farm_verified", False, "the run's topology defines no farm (x-lab.farm)",
                            "the farm of compose.yaml", "quic", 0, "events")]
    keylog = run_dir / KEYLOG
    replicas: dict[str, list[QuicPacket] | None] = {}
    dcids: dict[str, dict[str, list[str]]] = {}
    problems: list[CheckResult] = []
    for replica in farm.replicas:
        pcap = run_dir / "captures" / f"{replica.name}.pcapng"
        if not record.capture or not pcap.is_file():
            replicas[replica.name] = None
            continue
        try:
            replicas[replica.name] = read_quic_packets(pcap, keylog if keylog.is_file() else None,
                                                       (farm.port, farm.preferred_port or farm.port), tools)
            dcids[replica.name] = farm_checks.short_header_dcids(pcap.read_bytes())
        except (TsharkError, OSError) as exc:
            replicas[replica.name] = None
            problems.append(CheckResult("farm_replica_capture", False, f"{pcap.name}: {str(exc).splitlines()[0]}",
                                        "a readable capture of each replica", "quic", 0, "captures"))
    logs = {r.name: run_dir / "logs" / f"{r.name}.log" for r in farm.replicas}
    events = {name: farm_checks.replica_events(path.read_text(errors="replace").splitlines())
              for name, path in logs.items() if path.is_file()}
    view = farm_checks.FarmView(farm, scenario.farm.connection, scenario.workload.migration == "preferred",
                                timeline.events, replicas, packets, events, dcids)
    return problems + farm_checks.run_all(view)


def _strategies(verdict: Verdict, record: RunRecord, timeline: Timeline, tools: ImageTools | None) -> list[Any]:
    """reconnect-vs-migrate: each strategy's row (lab.report.strategies), the capture decoded twice:
    QUIC by the capture checks (below, so called after them), TCP with the TCP key log here."""
    scenario, run_dir = record.scenario, verdict.run_dir
    capture, tcp_keys = run_dir / SERVER_CAPTURE, run_dir / "client" / "keys-tcp.log"
    tcp_packets = None
    if record.capture and capture.is_file():
        try:
            tcp_packets = tcp_tls.read_tcp_packets(capture, tcp_keys if tcp_keys.is_file() else None,
                                                      record.topology.server_port, tools)
        except (TsharkError, OSError, ValueError):
            tcp_packets = None
    cellular = scenario.initial.impair.get("cellular")
    delay = getattr(cellular, "delay", None) or 0.0
    rows = strategies.strategy_table(timeline, verdict.metrics, verdict.decoded, tcp_packets,
                                     record.topology.server_port, wait_s=max(delay, 0.005),
                                     strategies=scenario.transports)
    return [row.to_dict() for row in rows]
