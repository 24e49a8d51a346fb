"""Checks: pure verdicts on an observed timeline.

Each check is a function ``(timeline, argument) -> CheckResult`` that looks only at events the
endpoints, routers and controller actually emitted, and says in ``observed`` exactly what it saw,
so that a failed run explains itself (the lab never narrates what it did not observe).

The registry :data:`CHECKS` maps a check name to its function, the parser of its argument (used
by the scenario validator, so a bad argument is caught when the YAML is loaded, not after a
30-second run) and the transports it applies to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lab.addresses import host_of, same_ip
from lab.events import (
    ActivePathChanged,
    AmplificationLimited,
    ConnectionClosed,
    HandshakeCompleted,
    HostCidRetired,
    MigrationCompleted,
    PathDiscovered,
    PathValidated,
    PeerCidChanged,
    Reconnected,
    ReconnectStarted,
    TransferComplete,
    family_of,
)
from lab.observe.timeline import Timeline
from lab.report.call import call_stats, longest_freeze
from lab.report.player import Playback, playback
from lab.scenario.expectations import EXPECTATIONS, Comparison, comparison_parser

__all__ = ["CHECKS", "CheckResult", "CheckSpec", "Comparison", "comparison_parser", "evaluate", "run_check"]
from lab.verify.result import CheckResult, not_verified

# --- helpers --------------------------------------------------------------------------------


def _fmt_ms(value: float) -> str:
    return f"{value:.0f} ms"


def _server_peers(timeline: Timeline) -> list[str]:
    """Distinct client addresses the server saw, in order of first sight."""
    seen: list[str] = []
    for event in timeline:
        if event.role != "server":
            continue
        address = None
        if isinstance(event, HandshakeCompleted | PathDiscovered):
            address = event.peer
        elif isinstance(event, ActivePathChanged):
            address = event.new_peer
        if address and address not in seen:
            seen.append(address)
    return seen


def _completion_ts(timeline: Timeline) -> float | None:
    done = timeline.first(TransferComplete, role="client")
    return done.ts if done else None


# --- the checks -----------------------------------------------------------------------------


def connection_survived(timeline: Timeline, argument: None = None) -> CheckResult:
    """No connection closed with an error, none closed before the transfer completed, one connection.

    For QUIC, "one connection" means every endpoint event carries the same original DCID; for TCP
    it means the client never had to reconnect (a reconnect is a new TCP connection).
    """
    name = "connection_survived"
    problems: list[str] = []
    done = _completion_ts(timeline)
    for event in timeline.of(ConnectionClosed):
        assert isinstance(event, ConnectionClosed)
        errored = event.error_code not in (None, 0)
        early = done is not None and event.ts < done
        if errored or early:
            code = f" error {event.error_code}" if errored else ""
            problems.append(f"{event.role} closed{code} ({event.reason or 'no reason'})"
                            + (" before transfer_complete" if early else ""))
    conns = sorted({e.conn for e in timeline if e.role in ("client", "server") and e.conn and e.transport == "quic"})
    if len(conns) > 1:
        problems.append(f"{len(conns)} QUIC connections ({', '.join(c[:8] for c in conns)})")
    reconnects = timeline.count(ReconnectStarted)
    if reconnects:
        problems.append(f"reconnected {reconnects} time(s)")
    if problems:
        return CheckResult(name, False, "; ".join(problems), "one connection, not closed with an error")
    handshakes = timeline.of(HandshakeCompleted)
    if not conns and not handshakes:
        return CheckResult(name, False, "no connection observed", "one connection, not closed with an error")
    observed = f"one connection {conns[0][:8]}" if conns else "one connection"
    return CheckResult(name, True, observed + ", no error close", "one connection, not closed with an error",
                       evidence=len(handshakes) + len(timeline.of(ConnectionClosed)))


def single_handshake(timeline: Timeline, argument: None = None) -> CheckResult:
    """Exactly one handshake_completed per endpoint: a migration must not be a new connection."""
    client = timeline.count(HandshakeCompleted, "client")
    server = timeline.count(HandshakeCompleted, "server")
    return CheckResult("single_handshake", client == 1 and server == 1,
                       f"client {client}, server {server}", "client 1, server 1", evidence=client + server)


def transfer_complete(timeline: Timeline, argument: None = None) -> CheckResult:
    """The client received the whole download and its sha256 matches the expected one."""
    name = "transfer_complete"
    done = timeline.first(TransferComplete, role="client")
    if done is None:
        return CheckResult(name, False, "no transfer_complete", "ok, sha256 matches")
    assert isinstance(done, TransferComplete)
    matches = bool(done.sha256) and done.sha256 == done.expected_sha256
    if done.ok and matches:
        return CheckResult(name, True, f"{done.bytes} bytes, sha256 {done.sha256[:12]} matches", "ok, sha256 matches",
                           evidence=1)
    return CheckResult(name, False, f"{done.bytes} bytes, ok={done.ok}, sha256 {done.sha256[:12] or '-'} vs expected "
                       f"{done.expected_sha256[:12] or '-'}", "ok, sha256 matches")


def paths_validated(timeline: Timeline, argument: Comparison) -> CheckResult:
    """How many paths the server validated with PATH_CHALLENGE/PATH_RESPONSE (RFC 9000 §8.2)."""
    found = timeline.of(PathValidated, role="server")
    peers = ", ".join(e.peer for e in found if isinstance(e, PathValidated))
    observed = f"{len(found)}" + (f" ({peers})" if peers else "")
    return CheckResult("paths_validated", argument.holds(len(found)), observed, str(argument),
                       evidence=len(timeline.by_role("server")))


def server_saw_addresses(timeline: Timeline, argument: Comparison) -> CheckResult:
    """Distinct client ip:port the server saw (handshake, discovered paths, active path changes)."""
    peers = _server_peers(timeline)
    return CheckResult("server_saw_addresses", argument.holds(len(peers)),
                       f"{len(peers)} ({', '.join(peers) or 'none'})", str(argument), evidence=len(peers))


def server_saw_ips(timeline: Timeline, argument: Comparison) -> CheckResult:
    """Distinct client IPs the server saw: tells an address change from a port-only rebinding."""
    ips: list[str] = []
    for peer in _server_peers(timeline):
        if host_of(peer) not in ips:
            ips.append(host_of(peer))
    return CheckResult("server_saw_ips", argument.holds(len(ips)), f"{len(ips)} ({', '.join(ips) or 'none'})",
                       str(argument), evidence=len(ips))


def _cid_changes(timeline: Timeline) -> tuple[int, str]:
    """Times the client switched the DCID it sends with; server-side retirements as a fallback."""
    client = [e for e in timeline.of(PeerCidChanged, role="client") if isinstance(e, PeerCidChanged)]
    if client:
        return len(client), ", ".join(f"{e.old_cid[:8]}->{e.new_cid[:8]}" for e in client)
    retired = [e for e in timeline.of(HostCidRetired, role="server") if isinstance(e, HostCidRetired)]
    if retired:
        return len(retired), "server saw retired: " + ", ".join(e.cid[:8] for e in retired)
    return 0, ""


def cid_changed(timeline: Timeline, argument: Comparison | None = None) -> CheckResult:
    """The client moved to a new connection ID (RFC 9000 §9.5: unlinkable migration)."""
    wanted = argument or Comparison(">=", 1)
    count, detail = _cid_changes(timeline)
    return CheckResult("cid_changed", wanted.holds(count), f"{count}" + (f" ({detail})" if detail else ""),
                       str(wanted), evidence=len(timeline.by_role("client")))


def cid_unchanged(timeline: Timeline, argument: None = None) -> CheckResult:
    """The client kept its connection ID (expected when it does not know it moved)."""
    name, expected = "cid_unchanged", "0 changes"
    if timeline.first(HandshakeCompleted, role="client") is None:
        return not_verified(name, "the client never completed a handshake: no connection to keep a CID on", expected)
    count, detail = _cid_changes(timeline)
    return CheckResult(name, count == 0, f"{count} change(s)" + (f" ({detail})" if detail else ""),
                       expected, evidence=len(timeline.by_role("client")))


def max_disruption_ms(timeline: Timeline, argument: Comparison) -> CheckResult:
    """The longest pause in application data at the client after the first network-changing action.

    Without any network action the whole run counts. A download that never completed counts its
    trailing stall, reported as a lower bound.
    """
    name = "max_disruption_ms"
    samples = timeline.data_samples()
    if not samples:
        return not_verified(name, "no application data observed at the client", str(argument))
    action = timeline.first_network_action()
    gap = timeline.largest_gap(action.ts if action else None)
    where = f" after {action.action} {action.target}" if action else " (no network action)"
    if gap is None:
        return CheckResult(name, argument.holds(0.0), f"no gap in {samples} data samples" + where, str(argument),
                           evidence=samples)
    bound = ">= " if gap.ongoing else ""
    reason = ", data never resumed" if gap.ongoing else f" ({gap.source})"
    return CheckResult(name, argument.holds(gap.gap_ms) and not gap.ongoing,
                       f"{bound}{gap.gap_ms:.0f} ms{reason}{where}", str(argument), evidence=samples)


def validation_ms(timeline: Timeline, argument: Comparison) -> CheckResult:
    """The slowest path validation by either side (about one RTT when the path is alive).

    The server validates a migrated client; the client validates a server's preferred address.
    """
    values = [e.validation_ms for e in timeline.of(PathValidated)
              if isinstance(e, PathValidated) and e.validation_ms is not None]
    if not values:
        return not_verified("validation_ms", "no path validated: no validation time to judge", str(argument))
    return CheckResult("validation_ms", argument.holds(max(values)), f"{max(values):.1f} ms (max of {len(values)})",
                       str(argument), evidence=len(values))


def amplification_respected(timeline: Timeline, argument: None = None) -> CheckResult:
    """No unvalidated path got more than 3x the bytes received on it (RFC 9000 §8.1, §9.3)."""
    name, expected = "amplification_respected", "sent <= 3x received"
    events = [e for e in timeline.of(AmplificationLimited) if isinstance(e, AmplificationLimited)]
    paths = len(_server_peers(timeline))
    if not paths and not events:
        return not_verified(name, "the server reported no client path: nothing to judge", expected)
    over = [e for e in events if e.bytes_sent > 3 * e.bytes_received]
    if over:
        worst = max(over, key=lambda e: e.bytes_sent / max(e.bytes_received, 1))
        observed = f"{len(over)} over the limit, e.g. {worst.bytes_sent} sent for {worst.bytes_received} received"
        return CheckResult(name, False, observed, expected, evidence=len(events))
    return CheckResult(name, True, f"{len(events)} amplification_limited event(s) on {paths} server path(s), "
                       "none over 3x", expected, evidence=paths + len(events))


def migrated_to_preferred(timeline: Timeline, argument: str | None = None) -> CheckResult:
    """The client moved to the server's preferred address (RFC 9000 §9.6).

    With an argument (an IP or ip:port), the client's new peer must be that address; without one,
    any client move to a peer address other than the one it handshook with counts (a preferred
    address may differ only in port, as on loopback).
    """
    name = "migrated_to_preferred"
    expected = argument or "client moves to the preferred address"
    handshake = timeline.first(HandshakeCompleted, role="client")
    original = handshake.peer if isinstance(handshake, HandshakeCompleted) else ""
    moves = [e for e in timeline.of(ActivePathChanged, role="client") if isinstance(e, ActivePathChanged)]
    for move in moves:
        if argument is not None:
            has_port = host_of(argument) != argument
            ok = move.new_peer == argument if has_port else same_ip(move.new_peer, argument)
        else:
            ok = bool(original) and move.new_peer != original
        if ok:
            return CheckResult(name, True, f"client moved {move.old_peer} -> {move.new_peer}", expected,
                               evidence=len(moves))
    completed = [e for e in timeline.of(MigrationCompleted, role="client")
                 if isinstance(e, MigrationCompleted) and e.mode == "preferred"]
    if completed and argument is None:
        return CheckResult(name, True, f"client migration_completed (preferred) to {completed[0].peer}", expected,
                           evidence=len(completed))
    seen = ", ".join(m.new_peer for m in moves) or "no client active_path_changed"
    return CheckResult(name, False, f"{seen} (handshake peer {original or '-'})", expected)


def tcp_reconnected(timeline: Timeline, argument: None = None) -> CheckResult:
    """The TCP client noticed the break and reconnected (every reconnect_started got a reconnected)."""
    started = [e for e in timeline.of(ReconnectStarted, role="client")]
    done = [e for e in timeline.of(Reconnected, role="client") if isinstance(e, Reconnected)]
    answered = sum(1 for s in started if any(d.ts >= s.ts for d in done))
    ok = bool(started) and answered == len(started) and len(done) >= len(started)
    durations = [d.duration_ms for d in done if d.duration_ms is not None]
    took = f", took {', '.join(_fmt_ms(d) for d in durations)}" if durations else ""
    return CheckResult("tcp_reconnected", ok, f"{len(started)} reconnect_started, {len(done)} reconnected{took}",
                       "reconnect_started then reconnected", evidence=len(started) + len(done))


def reconnects(timeline: Timeline, argument: Comparison) -> CheckResult:
    """How many times the client had to start a new connection (reconnect_started)."""
    count = timeline.count(ReconnectStarted, role="client")
    done = timeline.count(Reconnected, role="client")
    if timeline.first(HandshakeCompleted, role="client") is None and not count:
        return not_verified("reconnects", "the client never connected: no connection to count reconnects of",
                            str(argument))
    return CheckResult("reconnects", argument.holds(count), f"{count} (completed {done})", str(argument),
                       evidence=count + timeline.count(HandshakeCompleted, role="client"))


# --- what a person notices (video, call) --------------------------------------------------


def _playback_or_why(name: str, timeline: Timeline, argument: Comparison) -> Playback | CheckResult:
    pb = playback(timeline)
    if pb is None:
        return not_verified(name, "no segment event: no playback to judge", str(argument))
    return pb


def _stalls_text(pb: Playback) -> str:
    if not pb.stalls:
        low = f", buffer never below {pb.min_buffer_s:.2f} s" if pb.min_buffer_s is not None else ""
        return f"no stall in {pb.segments} segment(s){low}"
    ongoing = " (the last still going on when the run ended)" if pb.stalls[-1].ongoing else ""
    return (f"{len(pb.stalls)} stall(s), {pb.rebuffer_ms:.0f} ms in total, longest {pb.max_rebuffer_ms:.0f} ms"
            f"{ongoing}")


def rebuffer_events(timeline: Timeline, argument: Comparison) -> CheckResult:
    """How many times playback stopped because the buffer ran dry (the video workload's player model)."""
    pb = _playback_or_why("rebuffer_events", timeline, argument)
    if isinstance(pb, CheckResult):
        return pb
    return CheckResult("rebuffer_events", argument.holds(pb.rebuffer_events), _stalls_text(pb), str(argument),
                       evidence=len(pb.download_ms))


def max_rebuffer_ms(timeline: Timeline, argument: Comparison) -> CheckResult:
    """The longest rebuffering stall; one still going on when the run ended fails (a lower bound)."""
    pb = _playback_or_why("max_rebuffer_ms", timeline, argument)
    if isinstance(pb, CheckResult):
        return pb
    ongoing = any(s.ongoing for s in pb.stalls)
    return CheckResult("max_rebuffer_ms", argument.holds(pb.max_rebuffer_ms) and not ongoing,
                       ("no stall" if not pb.stalls else f"{'>= ' if ongoing else ''}{pb.max_rebuffer_ms:.0f} ms")
                       + f" ({_stalls_text(pb)})", str(argument), evidence=len(pb.download_ms))


def startup_ms(timeline: Timeline, argument: Comparison) -> CheckResult:
    """From the player's first request to its first frame (``startup`` seconds buffered)."""
    pb = _playback_or_why("startup_ms", timeline, argument)
    if isinstance(pb, CheckResult):
        return pb
    if pb.startup_ms is None:
        return CheckResult("startup_ms", False, f"playback never started ({pb.segments} segment(s) verified)",
                           str(argument), evidence=len(pb.download_ms))
    return CheckResult("startup_ms", argument.holds(pb.startup_ms),
                       f"{pb.startup_ms:.0f} ms ({pb.startup_s:g} s buffered)", str(argument),
                       evidence=len(pb.download_ms))


def freeze_ms(timeline: Timeline, argument: Comparison) -> CheckResult:
    """The longest time a call's messages stopped arriving, either way (up at the server, down at the client)."""
    stats = call_stats(timeline)
    if stats is None:
        return not_verified("freeze_ms", "no call_stats event: no call to judge", str(argument))
    ms, direction = longest_freeze(stats)
    ongoing = any(getattr(e, "ongoing", False) for e in timeline.of("call_freeze", "client"))
    lost = f"; {stats.lost} of {stats.sent} messages lost" if stats.lost else ""
    observed = f"{'>= ' if ongoing else ''}{ms:.0f} ms {direction}stream (longest gap between arrivals){lost}"
    return CheckResult("freeze_ms", argument.holds(ms) and not ongoing, observed, str(argument),
                       evidence=stats.received)


# --- registry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckSpec:
    """A check in the registry: its function, argument parser and the transports it applies to."""

    run: Callable[[Timeline, Any], CheckResult]
    parse: Callable[[Any], Any]
    transports: frozenset[str]
    argument_help: str = ""

    @staticmethod
    def parse_help(parsed: Any) -> str:
        return "as expected" if parsed is None else str(parsed)

    @property
    def doc(self) -> str:
        return (self.run.__doc__ or "").strip().splitlines()[0]


# One spec per check: the scenario language's vocabulary (argument parser, transports) with the
# function of the same name in this module that judges it.
CHECKS: dict[str, CheckSpec] = {
    name: CheckSpec(globals()[name], spec.parse, spec.transports, spec.argument_help)
    for name, spec in EXPECTATIONS.items()
}


def run_check(timeline: Timeline, name: str, argument: Any = None, transport: str | None = None) -> CheckResult:
    """Run one check on the events of one transport (controller/router events are shared).

    ``argument`` may be raw (as written in YAML) or already parsed; raw values are parsed here.
    """
    spec = CHECKS[name]
    parsed = argument if isinstance(argument, Comparison) else spec.parse(argument)
    view = timeline.for_transport(transport) if transport else timeline
    spoken = sum(1 for e in view if e.role in ("client", "server"))
    if not spoken:
        what = f"no {transport} events" if transport else "no events"
        return not_verified(name, f"{what} from the client or the server", str(spec.parse_help(parsed)), "events",
                            transport)
    result = spec.run(view, parsed)
    # A check that counts nothing narrower rests on the endpoints' events it looked through.
    evidence = spoken if result.evidence is None else result.evidence
    return result.with_(transport=transport, source="events", evidence=evidence)


def evaluate(timeline: Timeline, expectations: Iterable[Any], transport: str) -> list[CheckResult]:
    """Run a scenario's expectations for one transport's run.

    ``expectations`` are objects with ``check``, ``argument`` and ``transport`` attributes (the
    scenario schema's ``Expectation``). Those scoped to another transport, or whose check does not
    apply to this transport, are skipped: a tcp-vs-quic scenario lists both sides' expectations.
    """
    results = []
    for item in expectations:
        spec = CHECKS[item.check]
        if (item.transport and item.transport != transport) or family_of(transport) not in spec.transports:
            continue
        results.append(run_check(timeline, item.check, item.argument, transport))
    return results
