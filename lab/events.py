"""The lab's event schema: one frozen dataclass per event type.

Every endpoint (server, client, router, controller) writes one JSON object per line to stdout,
as things happen. The controller reads the same types back. The schema is documented in
``docs/events.md``; this module is its single source of truth.

Common fields of every event:

- ``type``: the event type (the ``TYPE`` of its class);
- ``ts``: wall-clock time, UNIX seconds (float) -- used to merge containers into one timeline;
- ``mono``: monotonic seconds of the emitting process -- used for durations inside one process;
- ``role``: ``server``, ``client``, ``router``, ``controller`` or ``attacker``;
- ``conn``: the connection's original destination CID in hex (None where no connection applies);
- ``transport``: ``quic`` or ``tcp``; a reconnection strategy's client (``reconnect-vs-migrate``)
  names its strategy (``quic-0rtt``, ``quic-full``, ``tcp-resume``), whose family is the part
  before the dash (``family_of``).

Addresses are strings ``"ip:port"`` with IPv4-mapped IPv6 normalised to plain IPv4.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, TextIO


@dataclass(frozen=True)
class Event:
    TYPE: ClassVar[str] = ""

    ts: float = 0.0
    mono: float = 0.0
    role: str = ""
    conn: str | None = None
    transport: str = "quic"

    def to_dict(self) -> dict[str, Any]:
        data = {"type": self.TYPE}
        data.update(dataclasses.asdict(self))
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=False)


# --- connection lifecycle -------------------------------------------------------------------


@dataclass(frozen=True)
class HandshakeCompleted(Event):
    TYPE: ClassVar[str] = "handshake_completed"
    local: str = ""
    peer: str = ""
    alpn: str | None = None
    duration_ms: float | None = None


@dataclass(frozen=True)
class ConnectionClosed(Event):
    TYPE: ClassVar[str] = "connection_closed"
    reason: str = ""
    error_code: int | None = None


@dataclass(frozen=True)
class Error(Event):
    TYPE: ClassVar[str] = "error"
    message: str = ""


# --- paths (RFC 9000 §8.2, §9) -------------------------------------------------------------


@dataclass(frozen=True)
class PathDiscovered(Event):
    TYPE: ClassVar[str] = "path_discovered"
    peer: str = ""
    local: str | None = None


@dataclass(frozen=True)
class PathChallengeSent(Event):
    TYPE: ClassVar[str] = "path_challenge_sent"
    peer: str = ""
    data: str = ""  # the 8 challenge bytes in hex


@dataclass(frozen=True)
class PathResponseReceived(Event):
    TYPE: ClassVar[str] = "path_response_received"
    peer: str = ""
    data: str = ""


@dataclass(frozen=True)
class PathValidated(Event):
    TYPE: ClassVar[str] = "path_validated"
    peer: str = ""
    validation_ms: float | None = None  # from path_discovered (or challenge sent) to validation


@dataclass(frozen=True)
class PathAbandoned(Event):
    TYPE: ClassVar[str] = "path_abandoned"
    peer: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ActivePathChanged(Event):
    TYPE: ClassVar[str] = "active_path_changed"
    old_peer: str = ""
    new_peer: str = ""
    local: str | None = None
    address_changed: bool = False  # False for a port-only change (NAT rebinding)


@dataclass(frozen=True)
class AmplificationLimited(Event):
    TYPE: ClassVar[str] = "amplification_limited"
    peer: str = ""
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass(frozen=True)
class CongestionReset(Event):
    TYPE: ClassVar[str] = "congestion_reset"
    peer: str = ""
    cwnd_before: int = 0
    cwnd_after: int = 0
    srtt_before_ms: float | None = None


# --- connection IDs ------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerCidChanged(Event):
    TYPE: ClassVar[str] = "peer_cid_changed"
    old_cid: str = ""
    new_cid: str = ""


@dataclass(frozen=True)
class HostCidRetired(Event):
    TYPE: ClassVar[str] = "host_cid_retired"
    cid: str = ""


# --- client migration ----------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationStarted(Event):
    TYPE: ClassVar[str] = "migration_started"
    mode: str = ""  # passive | active | preferred
    old_local: str | None = None
    new_local: str | None = None
    rotate_cid: bool = False


@dataclass(frozen=True)
class MigrationCompleted(Event):
    TYPE: ClassVar[str] = "migration_completed"
    mode: str = ""
    local: str | None = None
    peer: str | None = None
    duration_ms: float | None = None


# --- workloads -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress(Event):
    TYPE: ClassVar[str] = "progress"
    bytes: int = 0
    total: int | None = None
    local: str | None = None
    peer: str | None = None


@dataclass(frozen=True)
class TransferComplete(Event):
    TYPE: ClassVar[str] = "transfer_complete"
    bytes: int = 0
    sha256: str = ""
    expected_sha256: str = ""
    ok: bool = False
    duration_ms: float | None = None


@dataclass(frozen=True)
class EchoRtt(Event):
    TYPE: ClassVar[str] = "echo_rtt"
    seq: int = 0
    rtt_ms: float = 0.0


@dataclass(frozen=True)
class DataGap(Event):
    """Application data stopped and resumed: emitted when data resumes after a gap >= threshold.

    The client measures it on its own clock, at the granularity of individual reads, so that the
    disruption of a network change is exact rather than sampled from progress events.
    """

    TYPE: ClassVar[str] = "data_gap"
    start_ts: float = 0.0
    end_ts: float = 0.0
    gap_ms: float = 0.0
    bytes: int = 0  # bytes received when the gap began


@dataclass(frozen=True)
class GapHistogram(Event):
    """Every inter-arrival gap of application data the client saw, in 1 ms buckets (at the end).

    ``counts`` maps the gap's whole milliseconds (as a string) to how many gaps that long there
    were; gaps under 1 ms are only counted in ``samples``. ``threshold_ms``: from this length on a
    gap was also reported as a ``data_gap`` event.
    """

    TYPE: ClassVar[str] = "gap_histogram"
    bucket_ms: int = 1
    counts: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    max_ms: float = 0.0
    threshold_ms: float = 0.0
    # The QUIC client times an arrival by the kernel's receive time of its datagram (kernel_timed of
    # them; the rest, and the TCP client's, by the application's read). delivery_max_ms: the longest
    # gap as the application read the data, its own scheduling delay included; None where not measured.
    kernel_timed: int = 0
    delivery_max_ms: float | None = None


@dataclass(frozen=True)
class ProbeSent(Event):
    """The client heard nothing for its detection delay and sent a PING (a passive client's way to
    show the server where it now is). ``silence_ms``: how long data had stopped."""

    TYPE: ClassVar[str] = "probe_sent"
    silence_ms: float = 0.0
    probe_after_ms: float = 0.0


@dataclass(frozen=True)
class IdleEnded(Event):
    """The echo client's quiet time (an ``idle`` step) is over and the first reply after it arrived.

    ``dead_ms``: from the first frame sent after the quiet time to its reply, which includes any
    new NAT mapping and path validation on the way; ``pings``: keep-alive PINGs sent while quiet,
    every ``keepalive_ms`` (None: none, as aioquic sends none by itself).
    """

    TYPE: ClassVar[str] = "idle_ended"
    idle_ms: float = 0.0
    keepalive_ms: float | None = None
    pings: int = 0
    dead_ms: float = 0.0


@dataclass(frozen=True)
class ReconnectStarted(Event):
    TYPE: ClassVar[str] = "reconnect_started"
    reason: str = ""
    offset: int = 0


@dataclass(frozen=True)
class Reconnected(Event):
    TYPE: ClassVar[str] = "reconnected"
    offset: int = 0
    local: str | None = None
    duration_ms: float | None = None


@dataclass(frozen=True)
class SessionResumption(Event):
    """What a handshake did with a TLS session ticket (RFC 8446 §2.2, §4.2.10; QUIC: RFC 9001 §4.6).

    ``offered``: the client sent a ticket (pre_shared_key); ``resumed``: the handshake used it;
    ``early_data``: ``accepted``, ``rejected`` (offered, the server refused: the data is sent again
    in 1-RTT) or ``none`` (not offered; TCP: Python's ssl has no TLS 1.3 early data).
    """

    TYPE: ClassVar[str] = "session_resumption"
    offered: bool = False
    resumed: bool = False
    early_data: str = "none"



@dataclass(frozen=True)
class Segment(Event):
    """One video segment the player fetched (video workload): its timing, size and sha256 verdict."""

    TYPE: ClassVar[str] = "segment"
    index: int = 0
    bytes: int = 0
    requested_ts: float = 0.0  # wall clock: the request was sent
    received_ts: float = 0.0  # wall clock: its last byte arrived
    download_ms: float = 0.0
    sha256_ok: bool = False
    segment_s: float = 2.0  # seconds of video in a segment
    startup_s: float = 2.0  # the player's start-up (and resume) threshold
    count: int = 0  # segments in the video
    bitrate: int = 0  # bits per second
    buffer_s: float = 0.0  # the player's buffer just after this segment arrived
    target_s: float = 0.0  # the player asks for the next segment while its buffer is below this


@dataclass(frozen=True)
class CallFreeze(Event):
    """A time in which no call message arrived in one direction (call workload), from 3 intervals on."""

    TYPE: ClassVar[str] = "call_freeze"
    direction: str = "down"  # up (at the server) | down (at the client)
    start_ts: float = 0.0
    end_ts: float = 0.0
    freeze_ms: float = 0.0
    ongoing: bool = False


@dataclass(frozen=True)
class CallStats(Event):
    """The call's summary (call workload), once at its end; see docs/events.md."""

    TYPE: ClassVar[str] = "call_stats"
    sent: int = 0
    received: int = 0
    lost: int = 0
    interval_ms: float = 20.0
    latency_ms: dict[str, Any] = field(default_factory=dict)  # up/down -> p50, p95, p99, max
    late: dict[str, int] = field(default_factory=dict)  # up/down -> messages over threshold_ms one way
    max_freeze_ms: dict[str, float] = field(default_factory=dict)  # up/down -> longest gap between arrivals
    threshold_ms: float = 150.0
    datagrams: bool = False  # QUIC DATAGRAM frames (RFC 9221); false: a stream

# --- the controller and routers ------------------------------------------------------------


@dataclass(frozen=True)
class Action(Event):
    """Something the controller did to the lab (connect, disconnect, rebind, impair...)."""

    TYPE: ClassVar[str] = "action"
    action: str = ""
    target: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    ok: bool = True


@dataclass(frozen=True)
class NatMapping(Event):
    """A router observed or changed a NAT mapping (from conntrack)."""

    TYPE: ClassVar[str] = "nat_mapping"
    router: str = ""
    inside: str = ""
    outside: str = ""
    change: str = "new"  # new | destroyed


@dataclass(frozen=True)
class AttackStats(Event):
    """What the off-path attacker did while it was on (role ``attacker``): copies sent, answers read."""

    TYPE: ClassVar[str] = "attack_stats"
    kind: str = ""  # forward | spoof
    source: str = ""  # the source address it sent from ("ip:port"; the victim's when spoofing)
    forwarded: int = 0
    forwarded_bytes: int = 0  # UDP payload bytes
    replies: int = 0  # datagrams the server sent back to the attacker's own address
    reply_bytes: int = 0


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        HandshakeCompleted, ConnectionClosed, Error, PathDiscovered, PathChallengeSent,
        PathResponseReceived, PathValidated, PathAbandoned, ActivePathChanged,
        AmplificationLimited, CongestionReset, PeerCidChanged, HostCidRetired,
        MigrationStarted, MigrationCompleted, Progress, TransferComplete, EchoRtt, DataGap, GapHistogram,
        ProbeSent, IdleEnded, ReconnectStarted, Reconnected, SessionResumption, Action, NatMapping, Segment,
        CallFreeze, CallStats,
        AttackStats,
    )
}


class SchemaError(ValueError):
    pass


def family_of(transport: str) -> str:
    """The protocol a transport label runs: ``quic-0rtt`` -> ``quic``, ``tcp-resume`` -> ``tcp``."""
    return transport.split("-", 1)[0]


def adopt_client_transports(events: list[Event]) -> list[Event]:
    """Server events labelled with the strategy of the client whose connection they belong to.

    The QUIC server cannot tell a reconnecting client's connection from the migrating one's: both
    are ``quic``. A QUIC connection's ``conn`` (its original destination CID) is the same at both
    ends, so a server event takes the ``transport`` of the client events with its ``conn``.
    """
    owner = {e.conn: e.transport for e in events if e.role == "client" and e.conn}
    return [dataclasses.replace(e, transport=owner[e.conn])
            if e.role == "server" and e.conn in owner and owner[e.conn] != e.transport
            and family_of(owner[e.conn]) == family_of(e.transport) else e
            for e in events]


def from_dict(data: dict[str, Any]) -> Event:
    """Build the typed event from its JSON object; unknown types or fields raise SchemaError."""
    kind = data.get("type")
    cls = EVENT_TYPES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise SchemaError(f"unknown event type {kind!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    extra = set(data) - names - {"type"}
    if extra:
        raise SchemaError(f"{kind}: unknown field(s) {sorted(extra)}")
    return cls(**{k: v for k, v in data.items() if k != "type"})


def parse_line(line: str) -> Event | None:
    """Parse one line of output; None when it is not an event (plain log text)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        # An endpoint's event cut off mid-line is lost evidence, not log text: the runner records it
        # as an error event, so checks that look for an absence cannot pass on a truncated stream.
        raise SchemaError(f"a JSON event line that does not parse ({exc}): {line[:80]!r}") from None
    if not isinstance(data, dict) or "type" not in data:
        return None
    return from_dict(data)


def normalise_address(addr: Any) -> str:
    """("::ffff:10.0.0.1", 443, 0, 0) -> "10.0.0.1:443"."""
    if isinstance(addr, str):
        return addr
    host, port = addr[0], addr[1]
    if host.startswith("::ffff:"):
        host = host[len("::ffff:"):]
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


class Emitter:
    """Writes events of one role as JSON lines, flushed at once so that log readers see them live."""

    def __init__(self, role: str, stream: TextIO | None = None, transport: str = "quic") -> None:
        self.role = role
        self.transport = transport
        self.stream = stream if stream is not None else sys.stdout
        self.extra_streams: list[TextIO] = []

    def emit(self, cls: type[Event], conn: str | None = None, **fields: Any) -> Event:
        fields.setdefault("transport", self.transport)
        event = cls(ts=time.time(), mono=time.monotonic(), role=self.role, conn=conn, **fields)
        line = event.to_json() + "\n"
        for stream in (self.stream, *self.extra_streams):
            try:
                stream.write(line)
                stream.flush()
            except (OSError, ValueError):
                pass
        return event
