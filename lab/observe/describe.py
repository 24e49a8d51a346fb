"""One human sentence per observed event (pure): the lab narrates only what it observed."""

from __future__ import annotations

from lab import events as ev

_SKIP_DETAIL = {"route", "gateway"}
# Gaps the client meters from 5 ms on (lab.endpoints.shared.gaps); a person watching wants the stalls
# they would notice. Shorter ones stay in the events, the histogram and the report.
SHOWN_GAP_MS = 50.0


def worth_showing(event: ev.Event) -> bool:
    """Whether a live view or a narration prints the event (every event is recorded regardless)."""
    if isinstance(event, ev.DataGap):
        return event.gap_ms >= SHOWN_GAP_MS
    return not isinstance(event, ev.GapHistogram)


def describe(event: ev.Event) -> str:
    """A short sentence for an event, built only from the event's own fields."""
    match event:
        case ev.HandshakeCompleted():
            took = f" in {event.duration_ms:.1f} ms" if event.duration_ms is not None else ""
            return f"handshake completed with {event.peer}{took} (alpn {event.alpn})"
        case ev.PathDiscovered():
            return f"new path from {event.peer} discovered"
        case ev.PathChallengeSent():
            return f"PATH_CHALLENGE {event.data} sent to {event.peer}"
        case ev.PathResponseReceived():
            return f"PATH_RESPONSE {event.data} received from {event.peer}"
        case ev.PathValidated():
            took = f" in {event.validation_ms:.1f} ms" if event.validation_ms is not None else ""
            return f"path {event.peer} validated{took}"
        case ev.PathAbandoned():
            return f"path {event.peer} abandoned: {event.reason}"
        case ev.ActivePathChanged():
            kind = "address change" if event.address_changed else "port change (NAT rebinding)"
            return f"active path {event.old_peer} -> {event.new_peer} ({kind})"
        case ev.AmplificationLimited():
            return (f"anti-amplification: {event.bytes_sent} B sent for {event.bytes_received} B received "
                    f"from unvalidated {event.peer}")
        case ev.CongestionReset():
            return f"congestion controller reset (cwnd {event.cwnd_before} -> {event.cwnd_after}) on new IP"
        case ev.PeerCidChanged():
            return f"now sending to connection ID {event.new_cid} (was {event.old_cid})"
        case ev.HostCidRetired():
            return f"peer retired our connection ID {event.cid}"
        case ev.MigrationStarted():
            return f"{event.mode} migration {event.old_local} -> {event.new_local}" + \
                (" with a new connection ID" if event.rotate_cid else "")
        case ev.MigrationCompleted():
            took = f" in {event.duration_ms:.1f} ms" if event.duration_ms is not None else ""
            return f"{event.mode} migration completed{took}: {event.local} <-> {event.peer}"
        case ev.Progress():
            total = f"/{event.total / 1e6:.1f}" if event.total else ""
            return f"{event.bytes / 1e6:.2f}{total} MB via {event.local or '?'}"
        case ev.DataGap():
            return f"data stalled for {event.gap_ms:.0f} ms"
        case ev.GapHistogram():
            return f"{event.samples} data arrivals, longest gap {event.max_ms:.1f} ms"
        case ev.ProbeSent():
            return f"no data for {event.silence_ms:.0f} ms: PING sent (detection delay {event.probe_after_ms:.0f} ms)"
        case ev.TransferComplete():
            verdict = "sha256 verified" if event.ok else "sha256 MISMATCH"
            return f"transfer complete: {event.bytes} B, {verdict} ({event.sha256[:16]}...)"
        case ev.EchoRtt():
            return f"echo #{event.seq} rtt {event.rtt_ms:.1f} ms"
        case ev.ReconnectStarted():
            return f"connection broken ({event.reason}); reconnecting to resume at byte {event.offset}"
        case ev.Reconnected():
            took = f" after {event.duration_ms:.0f} ms" if event.duration_ms is not None else ""
            return f"reconnected{took}, resuming at byte {event.offset}"
        case ev.ConnectionClosed():
            return f"connection closed: {event.reason}"
        case ev.Error():
            return f"error: {event.message}"
        case ev.NatMapping():
            verb = "maps" if event.change == "new" else "forgets"
            return f"NAT {verb} {event.inside} <-> {event.outside}"
        case ev.Action():
            detail = ", ".join(f"{k}={v}" for k, v in event.detail.items()
                               if k not in _SKIP_DETAIL and v is not None and not isinstance(v, dict))
            status = "" if event.ok else " FAILED"
            return f"{event.action} {event.target}{status}" + (f" ({detail})" if detail else "")
    return event.TYPE
