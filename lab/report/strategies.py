"""Reconnection strategies compared (reconnect-vs-migrate): each one's disruption, handshakes and
round trips, and its ratio to migration.

Pure (the TCP side of the capture is decoded by ``lab.verify.tcp_tls``). The figures come from two sources:

- the events: each strategy's disruption (its clients' largest data gap after the first network
  action, as ``compute_metrics`` measures it), its transfer's sha256 verdict, and what its
  handshakes did with a session ticket (``session_resumption``);
- the server-side capture: per strategy, the connections it opened and their handshake packets
  (QUIC: Initial, Handshake and 0-RTT packets; TCP: ClientHello and ServerHello, and which of them
  carried ``pre_shared_key``, extension 41), and the round trips from the first packet of the
  connection made after the change to its first byte of data.

Round trips are counted at the server's side: every time the server sent and the client's next
packet arrived ``wait_s`` or more later, the client had waited for the server (one round trip);
the data's own trip to the client is one more. ``wait_s`` is half the cellular round trip, so a
client's packets sent back to back never count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lab.events import DataGap, NatMapping, Progress, ReconnectStarted, SessionResumption, TransferComplete, family_of
from lab.observe.timeline import Timeline

PSK_EXTENSION = 41  # pre_shared_key (RFC 8446 §4.2.11)
STREAM_FRAMES = frozenset(range(0x08, 0x10))
APPLICATION_DATA = 23


@dataclass(frozen=True)
class TcpPacket:
    """One TCP segment to or from the server as tshark decoded it (TLS decrypted with the key log)."""

    time: float
    src_port: int
    dst_port: int
    syn: bool
    payload: int
    handshake_types: tuple[int, ...] = ()  # TLS handshake messages: 1 ClientHello, 2 ServerHello
    extensions: tuple[int, ...] = ()  # TLS extension types in them
    content_types: tuple[int, ...] = ()  # decrypted records' content types (23: application data)


@dataclass(frozen=True)
class Exchange:
    """A packet of one connection, reduced to what round trips need."""

    time: float
    from_server: bool
    data: bool = False  # carries application data from the server (the first byte)


def round_trips(exchanges: Sequence[Exchange], wait_s: float) -> int | None:
    """Round trips from the connection's first client packet to the client's first byte of data.

    None when the capture holds no first byte (or the connection does not start with the client).
    """
    ordered = sorted(exchanges, key=lambda x: x.time)
    if not ordered or ordered[0].from_server:
        return None
    waits = 0
    last_server: float | None = None
    for item in ordered:
        if item.from_server:
            if item.data:
                return waits + 1
            last_server = item.time
        elif last_server is not None:
            if item.time - last_server >= wait_s:
                waits += 1
            last_server = None
    return None


def first_byte_ms(exchanges: Sequence[Exchange], rtt_s: float) -> float | None:
    """What the new connection cost the client: from sending its first packet to receiving the first
    byte of data. The capture sees both at the server, half a round trip after and before the client,
    so that is the server-side span plus one round trip ``rtt_s``. None without a first byte."""
    ordered = sorted(exchanges, key=lambda x: x.time)
    if not ordered or ordered[0].from_server:
        return None
    first_data = next((x.time for x in ordered if x.from_server and x.data), None)
    return None if first_data is None else round((first_data - ordered[0].time + rtt_s) * 1000, 1)


def parse_tcp_fields(text: str) -> list[TcpPacket]:
    """``tshark -T fields`` lines (see ``tcp_tshark_args``) -> one record per segment."""
    def ints(value: str) -> tuple[int, ...]:
        return tuple(int(v, 0) for v in value.split(",") if v.strip())

    packets = []
    for line in text.splitlines():
        cols = line.split("\t")
        if len(cols) < 8 or not cols[0]:
            continue
        packets.append(TcpPacket(time=float(cols[0]), src_port=int(cols[1]), dst_port=int(cols[2]),
                                 syn=cols[3] in ("1", "True"), payload=int(cols[4] or 0),
                                 handshake_types=ints(cols[5]), extensions=ints(cols[6]),
                                 content_types=ints(cols[7])))
    return packets


def _quic_connections(packets: Iterable[Any], server_port: int) -> dict[str, list[Any]]:
    """The capture's QUIC packets grouped by connection, keyed by the client's first DCID (``conn``)."""
    by_odcid: dict[str, list[Any]] = {}
    cids: dict[str, str] = {}  # any CID of a connection -> its odcid
    for packet in sorted(packets, key=lambda p: (p.time, p.index_in_datagram)):
        to_server = packet.dst_port == server_port
        if packet.packet_type == "initial" and to_server and packet.dcid not in cids:
            cids[packet.dcid] = packet.dcid
            if packet.scid:
                cids[packet.scid] = packet.dcid
        elif packet.packet_type == "initial" and not to_server and packet.dcid in cids and packet.scid:
            cids.setdefault(packet.scid, cids[packet.dcid])
        odcid = cids.get(packet.dcid)
        if odcid is not None:
            by_odcid.setdefault(odcid, []).append(packet)
            for cid in getattr(packet, "new_connection_ids", ()):  # CIDs it issued belong to it too
                cids.setdefault(cid, odcid)
    return by_odcid


def packets_of(packets: Sequence[Any], conns: set[str], server_port: int) -> list[Any]:
    """The capture's QUIC packets of the connections named ``conns`` (their original DCIDs), in order."""
    groups = _quic_connections(packets, server_port)
    mine = {id(p) for odcid, group in groups.items() if odcid in conns for p in group}
    return [p for p in packets if id(p) in mine]


def _tcp_streams(packets: Iterable[TcpPacket], server_port: int) -> dict[int, list[TcpPacket]]:
    """Segments grouped by the client's port (one TCP connection each in a short run)."""
    streams: dict[int, list[TcpPacket]] = {}
    for packet in packets:
        client_port = packet.src_port if packet.dst_port == server_port else packet.dst_port
        streams.setdefault(client_port, []).append(packet)
    return streams


def _port(address: str | None) -> int | None:
    if not address or ":" not in address:
        return None
    try:
        return int(address.rsplit(":", 1)[1])
    except ValueError:
        return None


@dataclass
class Strategy:
    name: str
    ok: bool | None = None  # the transfer's sha256 matched
    disruption_ms: float | None = None
    ratio: float | None = None  # disruption / migration's disruption
    recovery_ms: float | None = None  # the part of the disruption after the network change had completed
    recovery_ratio: float | None = None  # recovery / migration's recovery
    connections: int = 0  # client handshakes (events)
    resumed: bool | None = None  # the connection after the change resumed a session (events)
    early_data: str | None = None  # and its 0-RTT outcome (events)
    capture_connections: int | None = None  # connections the capture shows
    capture_handshake: dict[str, int] | None = None  # the handshake packets of the connection after the change
    round_trips: int | None = None  # to the first byte after the change (capture)
    first_byte_ms: float | None = None  # the new connection's first packet to its first byte, at the client (capture)
    evidence: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _after_change(timeline: Timeline, transport: str, change_ts: float | None) -> tuple[list[str], list[Any]]:
    """The client's conns and session_resumption events made after the change."""
    view = timeline.for_transport(transport)
    resumptions = [e for e in view.of(SessionResumption, "client") if change_ts is None or e.ts >= change_ts]
    return [e.conn for e in resumptions if e.conn], resumptions


def strategy_table(timeline: Timeline, metrics: dict[str, dict[str, Any]], quic_packets: Sequence[Any] | None,
                   tcp_packets: Sequence[TcpPacket] | None, server_port: int, wait_s: float,
                   strategies: Sequence[str]) -> list[Strategy]:
    """One row per strategy; ``metrics``: the judge's per-transport metrics (``compute_metrics``)."""
    action = timeline.first_network_action()
    change_ts = action.ts if action is not None else None
    quic_conns = _quic_connections(quic_packets, server_port) if quic_packets is not None else None
    tcp_streams = _tcp_streams(tcp_packets, server_port) if tcp_packets is not None else None
    nat = {e.inside: e.outside for e in timeline.of(NatMapping) if isinstance(e, NatMapping) and e.change == "new"}
    migration = (metrics.get("quic") or {}).get("disruption_ms")
    migration_recovery = (metrics.get("quic") or {}).get("recovery_ms")
    rows = []
    for name in strategies:
        view = timeline.for_transport(name)
        m = metrics.get(name) or {}
        done = view.first(TransferComplete, "client")
        row = Strategy(name=name, ok=done.ok if isinstance(done, TransferComplete) else None,
                       disruption_ms=m.get("disruption_ms"), connections=int(m.get("handshakes") or 0))
        if row.disruption_ms is not None and migration:
            row.ratio = round(row.disruption_ms / migration, 2)
        row.recovery_ms = m.get("recovery_ms")
        if row.recovery_ms is not None and migration_recovery:
            row.recovery_ratio = round(row.recovery_ms / migration_recovery, 2)
        conns, resumptions = _after_change(timeline, name, change_ts)
        if name != "quic" and resumptions:
            row.resumed, row.early_data = resumptions[-1].resumed, resumptions[-1].early_data
        conn_after = conns[-1] if conns else None
        if name == "quic":
            conn_after = next((e.conn for e in view.of(DataGap, "client") if e.conn), None)
        notes = []
        if family_of(name) == "quic" and quic_conns is not None:
            mine = {e.conn for e in view.by_role("client") if e.conn}
            row.capture_connections = sum(1 for odcid in quic_conns if odcid in mine)
            packets = quic_conns.get(conn_after or "", [])
            if name == "quic":  # migration: no new handshake; the first byte after the change on the new path
                row.capture_handshake = {"initial": 0, "handshake": 0, "0rtt": 0}
                notes.append("no handshake after the change (migration)")
            elif packets:
                kinds = [p.packet_type for p in packets]
                row.capture_handshake = {k: kinds.count(k) for k in ("initial", "handshake", "0rtt")}
                exchanges = [Exchange(p.time, p.src_port == server_port,
                                      p.src_port == server_port and bool(STREAM_FRAMES & set(p.frame_types)))
                             for p in packets]
                row.round_trips = round_trips(exchanges, wait_s)
                row.first_byte_ms = first_byte_ms(exchanges, 2 * wait_s)
            else:
                notes.append("the connection after the change is not in the capture")
        elif family_of(name) == "tcp" and tcp_streams is not None:
            ports = _client_ports(view, nat=nat)
            row.capture_connections = sum(1 for p in ports if p in tcp_streams)
            after = _client_ports(view, change_ts, nat)
            segments = tcp_streams.get(after[-1], []) if after else []
            if segments:
                client_hello = [s for s in segments if 1 in s.handshake_types and s.dst_port == server_port]
                server_hello = [s for s in segments if 2 in s.handshake_types and s.src_port == server_port]
                row.capture_handshake = {
                    "syn": sum(1 for s in segments if s.syn), "client_hello": len(client_hello),
                    "server_hello": len(server_hello),
                    "client_hello_psk": sum(1 for s in client_hello if PSK_EXTENSION in s.extensions),
                    "server_hello_psk": sum(1 for s in server_hello if PSK_EXTENSION in s.extensions)}
                exchanges = [Exchange(s.time, s.src_port == server_port,
                                      s.src_port == server_port and APPLICATION_DATA in s.content_types
                                      and not s.handshake_types and s.payload > 0 and _after_handshake(segments, s))
                             for s in segments if s.syn or s.payload > 0]
                row.round_trips = round_trips(exchanges, wait_s)
                row.first_byte_ms = first_byte_ms(exchanges, 2 * wait_s)
            else:
                notes.append("the connection after the change is not in the capture (NAT changed its port?)")
        if change_ts is not None and not any(isinstance(e, Progress) and e.bytes > 0 and e.ts < change_ts
                                             for e in view.of(Progress, "client")):
            notes.append("no data before the change: not comparable")
            row.ratio = row.recovery_ratio = None
        if name != "quic" and not view.of(ReconnectStarted, "client"):
            notes.append("no reconnect observed")
        row.evidence = "; ".join(notes)
        rows.append(row)
    return rows


def _after_handshake(segments: Sequence[TcpPacket], segment: TcpPacket) -> bool:
    """A server segment after the client's Finished: the client has sent application data before it
    (its request), so the server's application data is the download, not a session ticket."""
    return any(s.dst_port != segment.src_port and s.time < segment.time and APPLICATION_DATA in s.content_types
               for s in segments)


def _client_ports(view: Timeline, since: float | None = None, nat: dict[str, str] | None = None) -> list[int]:
    """The ports the server saw for the client's TCP handshakes, in order: ``handshake_completed.local``
    as the NAT in between mapped it (``nat_mapping`` events: routers may pick new ports)."""
    ports = []
    for event in view.by_role("client"):
        if event.TYPE == "handshake_completed" and (since is None or event.ts >= since):
            local = getattr(event, "local", None)
            port = _port((nat or {}).get(local or "", local))
            if port is not None:
                ports.append(port)
    return ports


def markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The report's strategies table."""
    if not rows:
        return []
    lines = ["## Reconnection strategies", "",
             "| strategy | sha256 | disruption ms | ratio to migration | recovery ms | recovery ratio | connections | "
             "resumed | 0-RTT | handshake packets after the change (capture) | round trips to first byte (capture) | "
             "first packet to first byte, ms (capture + r) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        hs = row.get("capture_handshake")
        lines.append("| " + " | ".join([
            row["name"], {True: "ok", False: "MISMATCH", None: "-"}[row.get("ok")],
            _fmt(row.get("disruption_ms")), _fmt(row.get("ratio")), _fmt(row.get("recovery_ms")),
            _fmt(row.get("recovery_ratio")), str(row.get("connections")),
            _fmt(row.get("resumed")), row.get("early_data") or "-",
            ", ".join(f"{k} {v}" for k, v in hs.items()) if hs else "not verified",
            _fmt(row.get("round_trips")), _fmt(row.get("first_byte_ms"))]) + " |")
    return lines + [""]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return str(value)


def summarise(tables: Sequence[Sequence[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per strategy over several runs' tables: the runs it was measured in (sha256 ok, a ratio) and the
    median [min-max] of its disruption, recovery and their ratios to migration."""
    values: dict[str, dict[str, list[float]]] = {}
    for rows in tables:
        for row in rows:
            if not row.get("ok") or row.get("ratio") is None or row.get("disruption_ms") is None:
                continue
            slot = values.setdefault(row["name"], {"disruption_ms": [], "recovery_ms": [], "ratio": [],
                                                   "recovery_ratio": [], "round_trips": [], "first_byte_ms": []})
            for key in slot:
                if row.get(key) is not None:
                    slot[key].append(float(row[key]))
    return {name: {"runs": len(slot["disruption_ms"]),
                   **{key: _spread(found) for key, found in slot.items()}} for name, slot in values.items()}


def _spread(found: list[float]) -> dict[str, float] | None:
    if not found:
        return None
    ordered = sorted(found)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {"median": round(median, 3), "min": round(ordered[0], 3), "max": round(ordered[-1], 3),
            "n": len(ordered)}
