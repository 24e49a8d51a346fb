"""The migration as a packet sequence diagram, drawn from the captures (pure).

Lanes: the client, each NAT router the connection crossed, the server. Every drawn message is a UDP
datagram the captures hold: on the server side of a NAT from ``captures/server-side.pcapng`` (the
routers' WAN sides merged, decrypted with the key log), on the client side from the router's own
``captures/<router>-lan.pcapng``. A NAT rewrites addresses and ports, not the QUIC bytes, so one
datagram is found on both sides by its direction, its UDP payload size and its time (in order, a
short time apart); the diagram then shows its 4-tuple before and after the NAT, with its CIDs and
frames. Which datagrams are drawn: the first in each direction on every path (a path as the server
sees it, and as the client sees it), and every one that carries PATH_CHALLENGE, PATH_RESPONSE,
NEW_CONNECTION_ID, RETIRE_CONNECTION_ID, HANDSHAKE_DONE or CONNECTION_CLOSE; the others are counted
between them. The routers' own ``nat_mapping`` events and the controller's network actions are
placed on the same time axis, each naming its line in ``events.jsonl``.

The input records are what :func:`lab.verify.pcap.read_quic_packets` returns (``QuicPacket``); this
module only reads their attributes (:class:`Packet`), so it does not import the judge.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any, Literal, Protocol

__all__ = ["Datagram", "Lane", "Leg", "Marker", "Message", "Note", "Packet", "SequenceDiagram", "Skip",
           "build_sequence", "datagrams", "describe_packet", "sequence_svg"]

SHOWN_FRAMES = {0x1A: "PATH_CHALLENGE", 0x1B: "PATH_RESPONSE", 0x18: "NEW_CONNECTION_ID",
                0x19: "RETIRE_CONNECTION_ID", 0x1E: "HANDSHAKE_DONE", 0x1C: "CONNECTION_CLOSE",
                0x1D: "CONNECTION_CLOSE"}
PACKET_TYPES = {"initial": "Initial", "handshake": "Handshake", "0rtt": "0-RTT", "1rtt": "1-RTT", "retry": "Retry",
                "vn": "Version Negotiation"}
# Network actions of the controller that are drawn across the lanes (as in lab.observe.timeline, plus impair).
ACTIONS = frozenset({"connect", "disconnect", "route", "migrate", "rebind", "renumber", "temporary_address",
                     "blackhole", "flap", "impair"})
MATCH_WINDOW_S = 0.5  # a NAT forwards in well under a millisecond; a delay line in the router adds its delay
MATCH_CLOCK_S = 0.000002  # both sides are captured in one container, on one clock: only rounding goes backwards

Direction = Literal["c2s", "s2c"]


class Packet(Protocol):
    """What the diagram reads of a decoded QUIC packet (``lab.verify.pcap.QuicPacket`` has all of it)."""

    frame: int
    index_in_datagram: int
    time: float
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    long_header: bool
    packet_type: str
    dcid: str
    scid: str
    packet_number: int | None
    decrypted: bool
    frame_types: tuple[int, ...]
    path_challenge: tuple[str, ...]
    path_response: tuple[str, ...]
    new_connection_id_seqs: tuple[int, ...]
    retire_connection_id_seqs: tuple[int, ...]
    udp_payload_length: int

    @property
    def frame_names(self) -> tuple[str, ...]: ...


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass(frozen=True)
class Datagram:
    """One UDP datagram of one capture file, with the QUIC packets it carried (coalesced ones share it)."""

    capture: str  # the file's name, e.g. server-side.pcapng
    frame: int
    time: float
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    size: int  # UDP payload bytes
    packets: tuple[Any, ...]  # Packet records

    @property
    def src(self) -> str:
        return _endpoint(self.src_ip, self.src_port)

    @property
    def dst(self) -> str:
        return _endpoint(self.dst_ip, self.dst_port)

    @property
    def decrypted(self) -> bool:
        return any(p.decrypted for p in self.packets)


def datagrams(packets: Iterable[Packet], capture: str) -> list[Datagram]:
    """Group a capture's QUIC packets by frame, in capture order."""
    groups: dict[int, list[Packet]] = {}
    for packet in packets:
        groups.setdefault(packet.frame, []).append(packet)
    out = []
    for frame, group in groups.items():
        first = group[0]
        out.append(Datagram(capture, frame, first.time, first.src_ip, first.src_port, first.dst_ip, first.dst_port,
                            first.udp_payload_length, tuple(group)))
    return sorted(out, key=lambda d: (d.time, d.frame))


@dataclass(frozen=True)
class Lane:
    name: str
    kind: Literal["client", "nat", "server", "peer"]
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Leg:
    """A datagram as one capture saw it, on one side of a NAT."""

    capture: str
    frame: int
    time: float
    src: str
    dst: str


@dataclass(frozen=True)
class Message:
    """A drawn datagram: its two legs (either may be missing), its content and why it is drawn."""

    time: float
    direction: Direction
    lane: str  # the NAT (or peer) lane it crossed
    wan: Leg | None  # between the NAT and the server (server-side.pcapng)
    lan: Leg | None  # between the client and the NAT (<router>-lan.pcapng); None: not found there
    packets: tuple[Any, ...]  # the decrypted side's Packet records
    reasons: tuple[str, ...]
    lan_captured: bool = True  # False: the run has no capture of this NAT's client side

    @property
    def challenges(self) -> tuple[str, ...]:
        return tuple(d for p in self.packets for d in p.path_challenge)

    @property
    def responses(self) -> tuple[str, ...]:
        return tuple(d for p in self.packets for d in p.path_response)


@dataclass(frozen=True)
class Note:
    """A router's report of a NAT mapping (a ``nat_mapping`` event), at that router's lane."""

    time: float
    lane: str
    text: str
    line: int  # in events.jsonl


@dataclass(frozen=True)
class Marker:
    """A network action of the controller, drawn across every lane."""

    time: float
    text: str
    line: int


@dataclass(frozen=True)
class Skip:
    """Datagrams between two drawn rows that are counted, not drawn."""

    c2s: int
    s2c: int


Row = Message | Note | Marker | Skip


@dataclass(frozen=True)
class SequenceDiagram:
    lanes: tuple[Lane, ...]
    rows: tuple[Row, ...]
    t0: float
    captures: tuple[str, ...]  # the capture files it was drawn from
    notes: tuple[str, ...] = ()  # what is missing (a NAT's client side not captured, rows left out)
    datagrams: int = 0  # server-side datagrams in all

    @property
    def messages(self) -> list[Message]:
        return [r for r in self.rows if isinstance(r, Message)]


# --- building ---------------------------------------------------------------------------------------------------


def _frames_summary(packet: Any) -> list[str]:
    """Frame names, repeats collapsed (``STREAM x3``), with the data of the frames the diagram is about."""
    names: list[str] = []
    counts: list[int] = []
    for name in packet.frame_names:
        label = str(name).upper()
        if names and names[-1] == label:
            counts[-1] += 1
        else:
            names.append(label)
            counts.append(1)
    out = []
    challenges, responses = iter(packet.path_challenge), iter(packet.path_response)
    for label, count in zip(names, counts, strict=True):
        text = label if count == 1 else f"{label} x{count}"
        if label == "PATH_CHALLENGE":
            text = " ".join(["PATH_CHALLENGE"] + [next(challenges, "?") for _ in range(count)])
        elif label == "PATH_RESPONSE":
            text = " ".join(["PATH_RESPONSE"] + [next(responses, "?") for _ in range(count)])
        elif label == "NEW_CONNECTION_ID" and packet.new_connection_id_seqs:
            text += f" (seq {_seqs(packet.new_connection_id_seqs)})"
        elif label == "RETIRE_CONNECTION_ID" and packet.retire_connection_id_seqs:
            text += f" (seq {_seqs(packet.retire_connection_id_seqs)})"
        out.append(text)
    return out


def _seqs(values: Sequence[int]) -> str:
    ordered = sorted(values)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(str(v) for v in ordered)


def describe_packet(packet: Any) -> str:
    """``1-RTT dcid e247d350... pn 100: PATH_CHALLENGE 3366246703ee0869, PADDING`` (from the capture)."""
    head = [PACKET_TYPES.get(packet.packet_type, packet.packet_type), f"dcid {packet.dcid or '(empty)'}"]
    if packet.scid:
        head.append(f"scid {packet.scid}")
    if packet.packet_number is not None:
        head.append(f"pn {packet.packet_number}")
    if not packet.decrypted:
        return " ".join(head) + ": not decrypted"
    return " ".join(head) + ": " + ", ".join(_frames_summary(packet))


def _reasons_of(datagram: Datagram) -> list[str]:
    found = []
    for packet in datagram.packets:
        for ftype in packet.frame_types:
            name = SHOWN_FRAMES.get(ftype)
            if name and name not in found:
                found.append(name)
    return found


def _same_packet(a: Datagram, b: Datagram) -> bool:
    """False only when both were decrypted and their first packets differ (DCID or packet number)."""
    first_a, first_b = a.packets[0], b.packets[0]
    if first_a.packet_number is None or first_b.packet_number is None:
        return True
    return (first_a.dcid, first_a.packet_number) == (first_b.dcid, first_b.packet_number)


def _match(lan: list[Datagram], wan: list[Datagram], way: Direction) -> dict[int, Datagram]:
    """Pair one direction's datagrams of a NAT's two sides: id(wan datagram) -> its lan datagram.

    In order, same UDP payload size, the same DCID and packet number when both sides were decrypted,
    and a transit time through the NAT (lan to wan for the client's datagrams, wan to lan for the
    server's) between 0 and :data:`MATCH_WINDOW_S`, the one closest to the previous pair's transit (a
    delay line in the router shifts them all alike). Full-size datagrams all look alike; where the
    packet numbers are unknown (a NAT's side without the handshake cannot be decrypted), the transit
    time is what tells a forwarded datagram from one the NAT dropped.
    """
    times = [d.time for d in wan]
    sign = 1.0 if way == "c2s" else -1.0  # wan time = lan time + sign * transit

    def best_in(low_transit: float, high_transit: float, datagram: Datagram, start: int, expected: float
                ) -> tuple[float, int, float] | None:
        bounds = sorted((datagram.time + sign * low_transit, datagram.time + sign * high_transit))
        low = max(start, bisect.bisect_left(times, bounds[0]))
        high = bisect.bisect_right(times, bounds[1])
        best = None
        for k in range(low, high):
            if wan[k].size != datagram.size or not _same_packet(wan[k], datagram):
                continue
            transit = sign * (wan[k].time - datagram.time)
            score = abs(transit - expected)
            if best is None or score < best[0]:
                best = (score, k, transit)
        return best

    pairs: dict[int, Datagram] = {}
    start, transit_before = 0, 0.0
    for datagram in lan:
        best = (best_in(transit_before - MATCH_CLOCK_S, transit_before + MATCH_CLOCK_S, datagram, start,
                        transit_before)
                or best_in(-MATCH_CLOCK_S, MATCH_WINDOW_S, datagram, start, transit_before))
        if best is not None:
            pairs[id(wan[best[1]])] = datagram
            start, transit_before = best[1] + 1, best[2]
    return pairs


def _event_text(data: Mapping[str, Any]) -> str:
    change = data.get("change", "")
    return f"NAT {data.get('router', '?')}: {data.get('inside', '?')} = {data.get('outside', '?')} ({change})"


def _is_marker(data: Mapping[str, Any]) -> bool:
    return (data.get("type") == "action" and data.get("role") == "controller" and data.get("action") in ACTIONS
            and isinstance(data.get("ts"), int | float))


Placed = tuple[Datagram | None, Datagram | None, Direction, str]  # (server side, client side, direction, lane)


def _reasons(placed: Sequence[Placed], lan_packets: Mapping[str, Any], marker_times: Sequence[float]
             ) -> dict[int, list[str]]:
    """Why a datagram is drawn, for the reasons that depend on its neighbours: the first and the last
    datagram of each direction on each path (server side and client side), and the first of each run
    of datagrams that one side's capture holds and the other's does not."""
    reasons: dict[int, list[str]] = {}
    first: dict[tuple[str, ...], int] = {}
    last: dict[tuple[str, ...], int] = {}
    for index, (w, lan_d, way, lane) in enumerate(placed):
        who = "client" if way == "c2s" else "server"
        for side, d in (("server-side", w), ("client-side", lan_d)):
            if d is None:
                continue
            client_end, server_end = (d.src, d.dst) if way == "c2s" else (d.dst, d.src)
            key = (side, lane, way, client_end, server_end, who)
            first.setdefault(key, index)
            last[key] = index
    final = {}
    for key, index in last.items():  # the path each side and direction ends on
        side_way = (key[0], key[2])
        if side_way not in final or index > last[final[side_way]]:
            final[side_way] = key
    for key, index in first.items():
        reasons.setdefault(index, []).append(f"first {key[5]} datagram on {key[0]} path {key[3]}-{key[4]}")
    for key, index in last.items():
        if final[(key[0], key[2])] != key:
            reasons.setdefault(index, []).append(f"last {key[5]} datagram on {key[0]} path {key[3]}-{key[4]}")
    run_start: dict[tuple[str, str], int] = {}
    for index, (w, lan_d, way, lane) in enumerate(placed):
        missing = ("lan" if w is not None and lan_d is None and lane in lan_packets
                   else "wan" if w is None else "")
        key = (lane, way)
        if missing and key not in run_start:
            run_start[key] = index
        elif not missing and key in run_start:
            _missing_run(reasons, placed, run_start.pop(key), index, lane, way)
    for (lane, way), start in run_start.items():
        _missing_run(reasons, placed, start, len(placed), lane, way)
    return reasons


def _missing_run(reasons: dict[int, list[str]], placed: Sequence[Placed], start: int, end: int, lane: str,
                 way: Direction) -> None:
    count = sum(1 for item in placed[start:end] if item[2] == way and item[3] == lane)
    w = placed[start][0]
    where = f"{lane}-lan.pcapng" if w is not None else "server-side.pcapng"
    reasons.setdefault(start, []).append(f"first of {count} {'client' if way == 'c2s' else 'server'} datagram(s) "
                                         f"not in {where}")


def build_sequence(wan_packets: Sequence[Packet], lan_packets: Mapping[str, Sequence[Packet]], *,
                   servers: Iterable[str], routers: Mapping[str, str], events: Sequence[tuple[int, Mapping[str, Any]]]
                   = (), t0: float | None = None, wan_capture: str = "server-side.pcapng",
                   max_messages: int = 80) -> SequenceDiagram:
    """The sequence diagram of a run.

    ``wan_packets``: the server-side capture's packets; ``lan_packets``: router -> its client-side
    capture's packets, for the routers whose ``-lan`` capture exists; ``servers``: the server's IPs;
    ``routers``: router -> its public (internet) IP, in lane order; ``events``: ``(line number, event)``
    of events.jsonl (nat_mapping and controller actions are placed on the diagram).
    """
    server_ips = set(servers)
    by_ip = {ip: name for name, ip in routers.items()}
    wan = datagrams(wan_packets, wan_capture)

    def direction(d: Datagram) -> Direction | None:
        if d.dst_ip in server_ips and d.src_ip not in server_ips:
            return "c2s"
        if d.src_ip in server_ips and d.dst_ip not in server_ips:
            return "s2c"
        return None

    def far_end(d: Datagram, way: Direction) -> str:
        return d.src_ip if way == "c2s" else d.dst_ip

    # Each server-side datagram: its NAT lane, and its client-side twin when that side was captured.
    placed: list[tuple[Datagram | None, Datagram | None, Direction, str]] = []  # (wan, lan, direction, lane)
    wan_by_lane: dict[tuple[str, Direction], list[Datagram]] = {}
    for d in wan:
        way = direction(d)
        if way is None:
            continue
        lane = by_ip.get(far_end(d, way), far_end(d, way))
        wan_by_lane.setdefault((lane, way), []).append(d)
    matched: dict[int, Datagram] = {}
    lan_only: list[tuple[Datagram, Direction, str]] = []
    for router, packets in lan_packets.items():
        for way in ("c2s", "s2c"):
            side = [d for d in datagrams(packets, f"{router}-lan.pcapng") if direction(d) == way]
            pairs = _match(side, wan_by_lane.get((router, way), []), way)
            matched.update(pairs)
            used = {id(v) for v in pairs.values()}
            lan_only += [(d, way, router) for d in side if id(d) not in used]
    for (lane, way), group in wan_by_lane.items():
        for d in group:
            placed.append((d, matched.get(id(d)), way, lane))
    placed += [(None, d, way, router) for d, way, router in lan_only]
    placed.sort(key=lambda item: (item[0] or item[1]).time)  # type: ignore[union-attr]

    zero = t0 if t0 is not None else (min((d.time for d in wan), default=0.0))
    marker_times = sorted(float(data["ts"]) for _, data in events if _is_marker(data))
    reasons_at = _reasons(placed, lan_packets, marker_times)
    candidates: list[tuple[int, Message]] = []
    for index, (w, lan_d, way, lane) in enumerate(placed):
        content = w if (w is not None and (w.decrypted or lan_d is None or not lan_d.decrypted)) else lan_d
        assert content is not None
        reasons = reasons_at.get(index, []) + _reasons_of(content)
        if not reasons:
            continue
        message = Message(
            time=(w or lan_d).time,  # type: ignore[union-attr]
            direction=way, lane=lane,
            wan=Leg(w.capture, w.frame, w.time, w.src, w.dst) if w is not None else None,
            lan=Leg(lan_d.capture, lan_d.frame, lan_d.time, lan_d.src, lan_d.dst) if lan_d is not None else None,
            packets=content.packets, reasons=tuple(reasons), lan_captured=lane in lan_packets)
        candidates.append((index, message))

    notes: list[str] = []
    if len(candidates) > max_messages:
        notes.append(f"{len(candidates) - max_messages} more datagram(s) of the kinds drawn here are left out "
                     f"(the first {max_messages} are drawn)")
        candidates = candidates[:max_messages]
    last_drawn = candidates[-1][1].time if candidates else float("inf")

    def time_of(item: tuple[Datagram | None, Datagram | None, Direction, str]) -> float:
        return (item[0] or item[1]).time  # type: ignore[union-attr]

    def skips(items: list[tuple[Datagram | None, Datagram | None, Direction, str]]) -> list[tuple[float, int, Row]]:
        """The skipped datagrams as Skip rows, split at each network action so that they stay on its side."""
        out: list[tuple[float, int, Row]] = []
        groups: dict[int, list[tuple[Datagram | None, Datagram | None, Direction, str]]] = {}
        for item in items:
            groups.setdefault(bisect.bisect_right(marker_times, time_of(item)), []).append(item)
        for group in groups.values():
            c2s = sum(1 for item in group if item[2] == "c2s")
            out.append((time_of(group[0]), 2, Skip(c2s, len(group) - c2s)))
        return out

    rows: list[tuple[float, int, Row]] = []
    previous = -1
    for index, message in candidates:
        rows += skips(placed[previous + 1:index])
        rows.append((message.time, 1, message))
        previous = index
    if candidates:
        rows += skips(placed[previous + 1:])

    lanes_used = {m.lane for _, m in candidates}
    for line, data in events:
        ts = data.get("ts")
        if not isinstance(ts, int | float) or ts > last_drawn:
            continue
        if data.get("type") == "nat_mapping" and data.get("router") in routers:
            rows.append((float(ts), 0, Note(float(ts), str(data["router"]), _event_text(data), line)))
            lanes_used.add(str(data["router"]))
        elif _is_marker(data):
            where = data.get("target", "")
            rows.append((float(ts), 0, Marker(float(ts), f"{data['action']} {where}".strip(), line)))
    rows.sort(key=lambda item: (item[0], item[1]))
    ordered: list[Row] = []
    for _, _, row in rows:
        if isinstance(row, Skip) and ordered and isinstance(ordered[-1], Skip):
            ordered[-1] = Skip(ordered[-1].c2s + row.c2s, ordered[-1].s2c + row.s2c)
        else:
            ordered.append(row)

    client_addresses: list[str] = []
    for _, message in candidates:
        if message.lan is not None:
            address = message.lan.src if message.direction == "c2s" else message.lan.dst
            ip = address.rsplit(":", 1)[0]
            if ip not in client_addresses:
                client_addresses.append(ip)
    lanes = [Lane("client", "client", tuple(client_addresses))]
    first_time: dict[str, float] = {}
    for _, message in candidates:
        first_time.setdefault(message.lane, message.time)
    nats = sorted((name for name in routers if name in lanes_used), key=lambda n: first_time.get(n, float("inf")))
    lanes += [Lane(name, "nat", (routers[name],)) for name in nats]
    lanes += [Lane(name, "peer", (name,)) for name in sorted(lanes_used - set(routers))]
    lanes.append(Lane("server", "server", tuple(sorted(server_ips))))
    for name in routers:
        if name in lanes_used and name not in lan_packets:
            notes.append(f"no {name}-lan.pcapng: the client side of {name} was not captured (dashed legs)")
    captures = (wan_capture,) + tuple(f"{r}-lan.pcapng" for r in lan_packets if r in lanes_used)
    return SequenceDiagram(tuple(lanes), tuple(ordered), zero, captures, tuple(notes), len(wan))


# --- drawing ----------------------------------------------------------------------------------------------------

COLOURS = {"c2s": "#1f77b4", "s2c": "#2ca02c", "PATH_CHALLENGE": "#d62728", "PATH_RESPONSE": "#d62728",
           "NEW_CONNECTION_ID": "#8c564b", "RETIRE_CONNECTION_ID": "#8c564b", "marker": "#9467bd",
           "note": "#7f7f7f"}
FONT = 'font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"'


@dataclass
class _Canvas:
    width: int
    parts: list[str] = field(default_factory=list)
    y: float = 0.0


def _arrow(x1: float, x2: float, y: float, colour: str, dashed: bool, lost: bool = False) -> str:
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    head = 7 if x2 > x1 else -7
    line = (f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" stroke="{colour}" stroke-width="1.6"'
            f'{dash}/>')
    if lost:
        return line + (f'<path d="M{x2 - 5:.1f},{y - 5:.1f} L{x2 + 5:.1f},{y + 5:.1f} M{x2 - 5:.1f},{y + 5:.1f} '
                       f'L{x2 + 5:.1f},{y - 5:.1f}" stroke="{colour}" stroke-width="1.6"/>')
    return line + (f'<path d="M{x2:.1f},{y:.1f} L{x2 - head:.1f},{y - 4:.1f} L{x2 - head:.1f},{y + 4:.1f} Z" '
                   f'fill="{colour}"/>')


def _label(x: float, y: float, text: str, anchor: str = "middle", size: int = 10, colour: str = "#333",
           cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return (f'<text{klass} x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{colour}">'
            f'{escape(text)}</text>')


def _content(message: Message) -> str:
    """The datagram's packets as tspans, the frames the diagram is about in colour."""
    pieces = []
    for packet in message.packets:
        text = describe_packet(packet)
        head, _, frames = text.partition(": ")
        spans = [escape(head + ": ")]
        for i, frame in enumerate(frames.split(", ")):
            name = frame.split(" ", 1)[0]
            colour = COLOURS.get(name)
            sep = ", " if i else ""
            if colour:
                spans.append(f'{sep}<tspan fill="{colour}" font-weight="bold">{escape(frame)}</tspan>')
            else:
                spans.append(escape(sep + frame))
        pieces.append("".join(spans))
    return " | ".join(pieces)


def sequence_svg(diagram: SequenceDiagram, frame_href: str = "#f-{frame}", event_href: str = "#ev-{line}",
                 width: int = 1180, standalone: bool = False) -> str:
    """The diagram as SVG: lanes left to right, time downwards (rows in time order, not to scale).

    Links: each message's frame number to ``frame_href`` (server-side frame), each note and marker to
    ``event_href`` (its line in events.jsonl); in a standalone file links are left out.
    """
    gutter, margin = 130, 100
    lanes = diagram.lanes
    span = (width - gutter - margin) / max(len(lanes) - 1, 1)
    x = {lane.name: gutter + i * span for i, lane in enumerate(lanes)}
    canvas = _Canvas(width)
    parts = canvas.parts
    y = 20.0
    for lane in lanes:  # lane headers: the name, then the addresses, two a line
        kind = {"nat": " (NAT)", "peer": " (no NAT known)"}.get(lane.kind, "")
        rows = [", ".join(lane.addresses[i:i + 2]) for i in range(0, len(lane.addresses), 2)][:2] or ["not captured"]
        parts.append(f'<rect x="{x[lane.name] - 85:.1f}" y="{y:.1f}" width="170" height="{22 + 13 * len(rows)}" '
                     'rx="6" fill="#f4f6fa" stroke="#889"/>')
        parts.append(_label(x[lane.name], y + 16, lane.name + kind, size=12, colour="#111"))
        for i, text in enumerate(rows):
            parts.append(_label(x[lane.name], y + 30 + 13 * i, text, size=10))
    top = y + 48
    y = top + 22

    def link(href: str, body: str) -> str:
        return body if standalone else f'<a href="{escape(href)}">{body}</a>'

    body: list[str] = []
    for row in diagram.rows:
        if isinstance(row, Marker):
            body.append(f'<line x1="{gutter - 40}" x2="{width - margin + 40}" y1="{y:.1f}" y2="{y:.1f}" '
                        f'stroke="{COLOURS["marker"]}" stroke-dasharray="6 4"/>')
            body.append(_label(gutter - 110, y + 4, f"{row.time - diagram.t0:+.3f} s", "start", 10,
                               COLOURS["marker"]))
            text = _label(x[lanes[0].name] + 6, y - 4, f"{row.text} (events.jsonl:{row.line})", "start", 11,
                          COLOURS["marker"], "marker")
            body.append(link(event_href.format(line=row.line), text))
            y += 26
        elif isinstance(row, Note):
            lane_x = x.get(row.lane, gutter)
            right = lane_x > width / 2  # the text goes towards the middle, not off the edge
            text = _label(lane_x + (-6 if right else 6), y, f"{row.text}, events.jsonl:{row.line}",
                          "end" if right else "start", 10, COLOURS["note"], "nat-note")
            body.append(link(event_href.format(line=row.line), text))
            body.append(f'<circle cx="{x.get(row.lane, gutter):.1f}" cy="{y - 3:.1f}" r="3" fill="{COLOURS["note"]}"/>')
            y += 18
        elif isinstance(row, Skip):
            body.append(_label(width / 2, y, f"... {row.c2s + row.s2c:,} datagram(s) not drawn (client to server "
                               f"{row.c2s:,}, server to client {row.s2c:,})", size=10, colour="#999"))
            y += 18
        else:
            y = _message(row, diagram, x, lanes, y, body, link, frame_href)
    height = int(y + 10)
    for lane in lanes:
        parts.append(f'<line x1="{x[lane.name]:.1f}" x2="{x[lane.name]:.1f}" y1="{top:.1f}" y2="{height - 4}" '
                     f'stroke="#bbb" stroke-width="1"/>')
    namespace = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    head = (f'<svg{namespace} id="sequence-diagram" class="sequence" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" {FONT} font-size="10" role="img" aria-label="packet sequence of the migration">'
            f'<rect width="{width}" height="{height}" fill="white"/>')
    return "\n".join([head, *parts, *body, "</svg>"])


def _message(row: Message, diagram: SequenceDiagram, x: Mapping[str, float], lanes: Sequence[Lane], y: float,
             body: list[str], link: Any, frame_href: str) -> float:
    colour = COLOURS[row.direction]
    client_x, nat_x, server_x = x[lanes[0].name], x.get(row.lane, x[lanes[0].name]), x[lanes[-1].name]
    c2s = row.direction == "c2s"
    attrs = (f'class="message" data-direction="{row.direction}" data-challenge="{" ".join(row.challenges)}" '
             f'data-response="{" ".join(row.responses)}"')
    body.append(f'<g {attrs}>')
    frame_text = f"#{row.wan.frame}" if row.wan else f"lan #{row.lan.frame}" if row.lan else ""
    if row.wan:
        frame_text = link(frame_href.format(frame=row.wan.frame), _label(gutter_x(x, lanes) - 110, y + 9,
                                                                         frame_text, "start", 10, "#1a5fb4"))
    else:
        frame_text = _label(gutter_x(x, lanes) - 110, y + 9, frame_text, "start", 10)
    body.append(_label(gutter_x(x, lanes) - 110, y - 3, f"{row.time - diagram.t0:+.3f} s", "start", 10))
    body.append(frame_text)
    # Client side leg (between the client and its NAT).
    lan_dashed = row.lan is None
    a, b = (client_x, nat_x) if c2s else (nat_x, client_x)
    lan_lost = row.lan is None and not c2s and row.lan_captured
    body.append(_arrow(a, b, y, colour if row.lan else "#aaa", lan_dashed, lost=lan_lost))
    if row.lan:
        body.append(_label((a + b) / 2, y - 4, f"{row.lan.src} > {row.lan.dst}"))
    else:
        why = (f"not in {row.lane}-lan.pcapng" if row.lan_captured else "client side not captured")
        body.append(_label((a + b) / 2, y - 4, why, colour="#999"))
    # Server side leg (between the NAT and the server).
    a, b = (nat_x, server_x) if c2s else (server_x, nat_x)
    wan_lost = row.wan is None and c2s
    body.append(_arrow(a, b, y, colour if row.wan else "#aaa", row.wan is None, lost=wan_lost))
    if row.wan:
        body.append(_label((a + b) / 2, y - 4, f"{row.wan.src} > {row.wan.dst}"))
    else:
        body.append(_label((a + b) / 2, y - 4, "not in server-side.pcapng", colour="#999"))
    title = escape("; ".join(row.reasons))
    body.append(f'<text class="content" x="{client_x:.1f}" y="{y + 15:.1f}" font-size="10" fill="#222">'
                f'<title>{title}</title>{_content(row)}</text>')
    body.append("</g>")
    return y + 40


def gutter_x(x: Mapping[str, float], lanes: Sequence[Lane]) -> float:
    return x[lanes[0].name]
