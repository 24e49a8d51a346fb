"""Cross-checks: facts that the endpoints' events, their qlog and the capture must agree on (pure).

Each source was written by a different program (our endpoints, aioquic's qlog writer, tshark), so
an agreement between them is evidence that none of them is lying; a disagreement fails the run.
"""

from __future__ import annotations

from lab import events as ev
from lab.addresses import host_of
from lab.observe.timeline import Timeline
from lab.verify import capture_checks
from lab.verify.pcap import QuicPacket
from lab.verify.result import CheckResult, not_verified

_PEER_EVENTS = ("handshake_completed", "path_discovered", "active_path_changed")


def server_challenges(timeline: Timeline) -> set[str]:
    """PATH_CHALLENGE data the server's events say it sent."""
    server = timeline.for_transport("quic").by_role("server")
    return {e.data.lower() for e in server.of(ev.PathChallengeSent) if isinstance(e, ev.PathChallengeSent)}


def server_peers(timeline: Timeline) -> set[str]:
    """Client addresses the server's events report (handshake, discovered paths, path changes)."""
    peers = set()
    for event in timeline.for_transport("quic").by_role("server"):
        if event.TYPE not in _PEER_EVENTS:
            continue
        for name in ("peer", "new_peer"):
            value = getattr(event, name, None)
            if value:
                peers.add(value)
    return peers


def challenges_in_capture(timeline: Timeline, packets: list[QuicPacket], servers: set[str]) -> CheckResult:
    name = "cross_check_challenges"
    expected = "the server's PATH_CHALLENGE data in the capture equal those in its events"
    summary = capture_checks.summarize(packets, servers)
    server_ips = {capture_checks.canonical_ip(host_of(a)) for a in servers}
    captured = {c["data"].replace(":", "").lower() for c in summary["path_challenges"]
                if host_of(c["src"]) in server_ips}
    events = server_challenges(timeline)
    if not captured and not events:
        return not_verified(name, "no PATH_CHALLENGE in the capture nor in the server's events", expected, "captures",
                            "quic")
    return CheckResult(name, captured == events, f"capture {sorted(captured)}, events {sorted(events)}", expected,
                       "quic", len(captured | events), "captures")


def challenges_in_qlog(timeline: Timeline, qlog: set[str]) -> CheckResult:
    name, expected = "cross_check_qlog", "the server's qlog shows the same PATH_CHALLENGE data as its events"
    events = server_challenges(timeline)
    if not qlog and not events:
        return not_verified(name, "no PATH_CHALLENGE in the server's qlog nor in its events", expected, "qlog", "quic")
    return CheckResult(name, qlog == events, f"qlog {sorted(qlog)}, events {sorted(events)}", expected, "quic",
                       len(qlog | events), "qlog")


def paths_in_capture(timeline: Timeline, packets: list[QuicPacket], servers: set[str]) -> CheckResult:
    name, expected = "cross_check_paths", "the client addresses the capture shows equal those the server reported"
    server_ips = {capture_checks.canonical_ip(host_of(a)) for a in servers}
    captured = {capture_checks.endpoint(p.src_ip, p.src_port) for p in packets
                if capture_checks.canonical_ip(p.src_ip) not in server_ips}
    peers = server_peers(timeline)
    if not captured and not peers:
        return not_verified(name, "no client address in the capture nor in the server's events", expected,
                            "captures", "quic")
    return CheckResult(name, captured == peers, f"capture {sorted(captured)}, events {sorted(peers)}", expected,
                       "quic", len(captured | peers), "captures")
