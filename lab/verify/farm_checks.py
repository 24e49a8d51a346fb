"""Checks of the server-farm scenarios (docs/load-balancers.md), pure, on a run's events and captures.

A farm run has three views of where the client's datagrams went:

- the controller's ``farm_rebind`` action events: each new flow the balancer's conntrack table
  showed after a NAT rebinding, and the replica it was DNATed to;
- each replica's own capture (``captures/replica-N.pcapng``, dumpcap on its farm interface):
  what reached it and what it sent, with the DCIDs whose plaintext server ID says which replica
  issued them (QUIC-LB);
- the server's view (``server-side.pcapng``, the NATs' WAN sides): what the client sent to the
  farm's address or a replica's unicast one, and what came back.

Plus each replica's events (``logs/replica-N.log``: its path validations). One spec per check
(:data:`CHECKS`), each applying to the scenarios it can judge: ``breaks`` (4-tuple hashing moves
the flow to a replica that never saw the connection), ``survives`` (CID routing keeps it), and
``preferred`` (the client moves to the holder's unicast address, RFC 9000 §9.6). A check with
nothing to judge (the hash never moved the flow, a capture is missing) is not verified.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab import events as ev
from lab.endpoints.quic.quic_lb import LbConfig, server_id_of
from lab.topology.farm import Farm
from lab.verify.pcap import QuicPacket
from lab.verify.result import CheckResult, not_verified

GRACE = 1.0  # s after the move during which data already in flight may still arrive
LB = LbConfig()


@dataclass(frozen=True)
class Move:
    """What one ``farm_rebind`` step saw at the balancer."""

    ts: float  # when the step ended: the last rebinding's flow was in the balancer's table
    holder: str
    rebindings: tuple[tuple[str, str], ...]  # (the client's outside tuple "ip:port", the replica it went to)
    moved_to: str | None
    moved_flow: str | None


@dataclass
class FarmView:
    """Everything the farm checks read, gathered by the judge from the run directory."""

    farm: Farm
    connection: str  # breaks | survives (the scenario's farm.connection)
    preferred: bool  # the workload moves to the server's preferred address
    timeline: Sequence[ev.Event]
    replica_packets: dict[str, list[QuicPacket] | None]  # None: that replica's capture is missing
    server_side: list[QuicPacket] | None
    replica_events: dict[str, list[ev.Event]] = field(default_factory=dict)
    # replica -> client tuple -> the DCIDs (hex) of its short headers, read from the capture's bytes:
    # tshark cannot tell a short header's DCID where it never saw the handshake that set its length.
    replica_dcids: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def moves(self) -> list[Move]:
        found = []
        for e in self.timeline:
            if isinstance(e, ev.Action) and e.action == "farm_rebind" and e.ok:
                d = e.detail
                # When the balancer showed the move (the step goes on for its give_up time after it).
                after = d.get("moved_after_s") if d.get("moved_after_s") is not None else \
                    float(d.get("took_ms") or 0) / 1000
                found.append(Move(e.ts + float(after), str(d.get("holder")),
                                  tuple((str(r.get("outside")), str(r.get("replica")))
                                        for r in d.get("rebindings") or ()),
                                  d.get("moved_to"), d.get("moved_flow")))
        return found

    @property
    def moved(self) -> Move | None:
        return next((m for m in self.moves if m.moved_to), None)

    def address(self, name: str) -> str:
        return next(r.address for r in self.farm.replicas if r.name == name)

    def handshake_replica(self) -> str | None:
        """The replica that sent the server's handshake (long-header packets): where the connection lives."""
        for name, packets in self.replica_packets.items():
            if packets and any(p.long_header and p.src_ip == self.address(name) for p in packets):
                return name
        return None


def _sid(dcid_hex: str) -> int | None:
    try:
        return server_id_of(LB, bytes.fromhex(dcid_hex))
    except ValueError:
        return None


def _first_per_datagram(packets: Iterable[QuicPacket]) -> list[QuicPacket]:
    return [p for p in packets if p.index_in_datagram == 0]


def _tuple(p: QuicPacket, side: str) -> str:
    return f"{p.src_ip}:{p.src_port}" if side == "src" else f"{p.dst_ip}:{p.dst_port}"


# --- the checks -----------------------------------------------------------------------------------


def balancer_flows(view: FarmView) -> CheckResult:
    """breaks: a rebound flow reached the other replica; survives: every rebound flow stayed on the holder."""
    name = "farm_balancer_flows"
    moves = view.moves
    rebindings = [r for m in moves for r in m.rebindings]
    if view.connection == "breaks":
        expected = "a rebound flow DNATed to another replica than the connection's (4-tuple hash)"
        moved = view.moved
        if moved is None:
            why = (f"{len(rebindings)} rebinding(s), every new flow hashed to {moves[0].holder}: the flow never "
                   "moved, so the break was not put to the test") if moves else "no farm_rebind step was played"
            return not_verified(name, why, expected, "events", "quic")
        observed = (f"rebinding {len(moved.rebindings)} sent {moved.moved_flow} to {moved.moved_to}; the connection "
                    f"lives on {moved.holder}"
                    + (f" (the {len(moved.rebindings) - 1} before hashed to it again)" if len(moved.rebindings) > 1
                       else ""))
        return CheckResult(name, True, observed, expected, "quic", len(rebindings), "events",
                           details={"rebindings_until_moved": len(moved.rebindings), "holder": moved.holder,
                                    "moved_to": moved.moved_to})
    expected = "every rebound flow DNATed to the replica that holds the connection (its CIDs' server ID)"
    if not rebindings:
        return not_verified(name, "no rebinding at the balancer", expected, "events", "quic")
    away = [(flow, replica) for m in moves for flow, replica in m.rebindings if replica != m.holder]
    holders = sorted({m.holder for m in moves})
    observed = (f"{len(rebindings)} rebound flow(s), " + (
        f"all to {', '.join(holders)}" if not away else
        f"{len(away)} sent elsewhere: {', '.join(f'{f} -> {r}' for f, r in away)}"))
    return CheckResult(name, not away, observed, expected, "quic", len(rebindings), "events",
                       details={"rebindings": len(rebindings), "holder": holders[0] if holders else None})


def _moved_arrivals(view: FarmView, name: str, expected: str
                    ) -> tuple[Move, list[QuicPacket], list[QuicPacket]] | CheckResult:
    """The moved flow, the other replica's packets and the datagrams of the flow among them; or the
    not-verified result when the flow never moved or that replica was not captured."""
    moved = view.moved
    if moved is None:
        return not_verified(name, "the flow never moved to another replica", expected, "captures", "quic")
    packets = view.replica_packets.get(moved.moved_to or "")
    if packets is None:
        return not_verified(name, f"no capture of {moved.moved_to}", expected, "captures", "quic")
    return moved, packets, [p for p in _first_per_datagram(packets) if _tuple(p, "src") == moved.moved_flow]


def replica_captures(view: FarmView) -> CheckResult:
    """Each replica's own capture: who received the client's datagrams, and whose server ID their DCIDs carry."""
    name = "farm_replica_captures"
    missing = [n for n, p in view.replica_packets.items() if p is None]
    if view.connection == "breaks":
        expected = "the moved flow's datagrams in the other replica's capture, DCIDs naming the holder's server ID"
        found = _moved_arrivals(view, name, expected)
        if isinstance(found, CheckResult):
            return found
        moved, _, arrived = found
        holder_id = next(r.server_id for r in view.farm.replicas if r.name == moved.holder)
        raw = view.replica_dcids.get(moved.moved_to or "")
        dcids = raw.get(moved.moved_flow or "", []) if raw is not None else \
            [p.dcid for p in arrived if not p.long_header]
        ids = sorted({sid for dcid in dcids if (sid := _sid(dcid)) is not None})
        if not arrived:
            return CheckResult(name, False, f"{moved.moved_to}'s capture holds no datagram from {moved.moved_flow}",
                               expected, "quic", 0, "captures")
        ok = ids == [holder_id]
        observed = (f"{len(arrived)} datagram(s) from {moved.moved_flow} reached {moved.moved_to}; the DCIDs of "
                    f"its {len(dcids)} short header(s) carry server ID {', '.join(map(str, ids)) or 'none'} "
                    f"({moved.holder}'s is {holder_id})")
        return CheckResult(name, ok, observed, expected, "quic", len(arrived), "captures",
                           details={"datagrams_at_other_replica": len(arrived)})
    expected = "the connection's datagrams in its holder's capture only"
    if missing:
        return not_verified(name, f"no capture of {', '.join(missing)}", expected, "captures", "quic")
    holder = view.handshake_replica()
    if holder is None:
        return not_verified(name, "no replica's capture holds the server's handshake", expected, "captures", "quic")
    farm_side = {r.address for r in view.farm.replicas}
    counts = {n: len([p for p in _first_per_datagram(pk or []) if p.src_ip not in farm_side])
              for n, pk in view.replica_packets.items()}
    others = {n: c for n, c in counts.items() if n != holder and c}
    observed = ", ".join(f"{n}: {c} datagram(s) from the client" for n, c in sorted(counts.items())) + \
        f" (the handshake ran on {holder})"
    return CheckResult(name, not others and counts[holder] > 0, observed, expected, "quic", sum(counts.values()),
                       "captures", details={"holder": holder, **{f"datagrams_{n}": c for n, c in counts.items()}})


def other_replica_reaction(view: FarmView) -> CheckResult:
    """What the replica that never saw the connection sent to the moved flow: silence, or a stateless
    reset (RFC 9000 §10.3: a short header it cannot decrypt), never a handshake of its own."""
    name = "farm_other_replica_reaction"
    expected = "silence or a stateless reset (RFC 9000 §10.3) to the moved flow, no handshake"
    found = _moved_arrivals(view, name, expected)
    if isinstance(found, CheckResult):
        return found
    moved, packets, arrived = found
    own = view.address(moved.moved_to or "")
    if not arrived:
        return not_verified(name, f"no datagram of {moved.moved_flow} reached {moved.moved_to}", expected,
                            "captures", "quic")
    client_ip, _, client_port = (moved.moved_flow or "").rpartition(":")
    sent = [p for p in _first_per_datagram(packets) if p.src_ip == own and p.dst_ip == client_ip
            and str(p.dst_port) == client_port]
    handshakes = [p for p in sent if p.long_header]
    if not sent:
        reaction = "silence"
        observed = (f"silence: {moved.moved_to} sent 0 datagrams in reply to the {len(arrived)} it received from "
                    f"{moved.moved_flow} (no stateless reset: aioquic drops what carries a CID it never issued)")
    elif handshakes:
        reaction = "handshake"
        observed = f"{moved.moved_to} answered {moved.moved_flow} with {len(handshakes)} long-header packet(s)"
    else:
        reaction = "stateless reset"
        observed = (f"a stateless reset: {moved.moved_to} sent {len(sent)} short-header datagram(s) to "
                    f"{moved.moved_flow} in reply to {len(arrived)}")
    return CheckResult(name, not handshakes, observed, expected, "quic", len(arrived) + len(sent), "captures",
                       details={"reaction": reaction, "received": len(arrived), "sent": len(sent)})


def connection_broke(view: FarmView) -> CheckResult:
    """breaks: after the move, no byte reached the client and no datagram from the farm reached the moved
    flow (events and the server's view), and the transfer never completed."""
    name = "farm_connection_broke"
    expected = "no data after the flow moved: the connection breaks (what 4-tuple hashing does to migration)"
    moved = view.moved
    if moved is None:
        return not_verified(name, "the flow never moved to another replica: the break was not put to the test",
                            expected, "events", "quic")
    progress = [e for e in view.timeline if isinstance(e, ev.Progress) and e.role == "client"]
    done = [e for e in view.timeline if isinstance(e, ev.TransferComplete) and e.role == "client" and e.ok]
    at_move = max((e.bytes for e in progress if e.ts <= moved.ts + GRACE), default=0)
    later = [e for e in progress if e.ts > moved.ts + GRACE]
    final = max((e.bytes for e in progress), default=0)
    end = max((e.ts for e in view.timeline), default=moved.ts)
    problems = []
    if done:
        problems.append("the transfer completed")
    if final > at_move:
        problems.append(f"{final - at_move} bytes arrived later than {GRACE:g} s after the move")
    answered = None
    if view.server_side is not None:
        client_ip, _, client_port = (moved.moved_flow or "").rpartition(":")
        answered = [p for p in _first_per_datagram(view.server_side) if p.dst_ip == client_ip
                    and str(p.dst_port) == client_port and p.src_ip in view.farm.addresses]
        if answered:
            problems.append(f"{len(answered)} datagram(s) from the farm reached the moved flow")
    observed = (f"stalled at {at_move} bytes: 0 bytes in the {end - moved.ts - GRACE:.1f} s from {GRACE:g} s after "
                f"the move to the end of the run"
                + (f"; 0 datagrams from {view.farm.address} to {moved.moved_flow} in the server's view"
                   if answered == [] else "")
                + ("; no transfer_complete" if not done else "")) if not problems else "; ".join(problems)
    return CheckResult(name, not problems, observed, expected, "quic", len(progress) + len(later) + (
        len(view.server_side) if view.server_side else 0), "events",
        details={"stalled_at_bytes": at_move, "silent_s": round(end - moved.ts, 2)})


def holder_validated(view: FarmView) -> CheckResult:
    """survives / preferred: the replica that holds the connection validated every new path itself (its own
    events), and the other replica validated none."""
    name = "farm_holder_validated"
    expected = "path_validated by the holding replica for each new path, by no other"
    holder = next((m.holder for m in view.moves), None) or view.handshake_replica()
    if holder is None:
        return not_verified(name, "no holder known (no farm_rebind and no capture of the handshake)", expected,
                            "events", "quic")
    validated = {n: [e.peer for e in es if isinstance(e, ev.PathValidated)] for n, es in view.replica_events.items()}
    if not any(validated.values()):
        return not_verified(name, "no replica reported a path validation", expected, "events", "quic")
    wanted = [flow for m in view.moves for flow, _ in m.rebindings]
    missing = [flow for flow in wanted if flow not in validated.get(holder, [])]
    others = {n: v for n, v in validated.items() if n != holder and v}
    ok = not missing and not others and bool(validated.get(holder))
    observed = f"{holder} validated {len(validated.get(holder, []))} path(s)" + (
        f"; not {', '.join(missing)}" if missing else "") + (
        "; " + ", ".join(f"{n} validated {len(v)}" for n, v in others.items()) if others else "")
    return CheckResult(name, ok, observed, expected, "quic", sum(len(v) for v in validated.values()), "events",
                       details={"holder": holder})


def preferred_on_replica(view: FarmView) -> CheckResult:
    """preferred: the client moved to the unicast address of the replica that ran its handshake (the server's
    view), and that address sent it data (RFC 9000 §9.6)."""
    name = "farm_preferred_address"
    expected = "the client on the holder's unicast address, data from it"
    if view.server_side is None:
        return not_verified(name, "no server-side capture", expected, "captures", "quic")
    holder = view.handshake_replica()
    if holder is None:
        return not_verified(name, "no replica's capture holds the server's handshake", expected, "captures", "quic")
    unicast = next(r.unicast for r in view.farm.replicas if r.name == holder)
    datagrams = _first_per_datagram(view.server_side)
    to_vip = [p for p in datagrams if p.dst_ip == view.farm.address]
    to_unicast = [p for p in datagrams if p.dst_ip == unicast]
    from_unicast = [p for p in datagrams if p.src_ip == unicast and not p.is_probing]
    elsewhere = sorted({p.dst_ip for p in datagrams if p.dst_ip in view.farm.addresses} - {unicast, view.farm.address})
    ok = bool(to_unicast) and bool(from_unicast) and not elsewhere
    first = (to_unicast[0].time - to_vip[0].time) * 1000 if to_unicast and to_vip else None
    observed = (f"handshake on {holder} via {view.farm.address}; {len(to_unicast)} datagram(s) from the client to "
                f"{unicast} (its unicast address)" + (f", the first {first:.0f} ms after the first to the farm"
                                                      if first is not None else "")
                + f", {len(from_unicast)} non-probing from it" + (f"; also to {', '.join(elsewhere)}" if elsewhere
                                                                 else ""))
    return CheckResult(name, ok, observed, expected, "quic", len(to_unicast) + len(from_unicast), "captures",
                       details={"holder": holder, "unicast": unicast})


@dataclass(frozen=True)
class FarmCheck:
    name: str
    judge: Callable[[FarmView], CheckResult]
    applies: Callable[[FarmView], bool]


def _breaks(view: FarmView) -> bool:
    return view.connection == "breaks"


def _rebinding(view: FarmView) -> bool:
    return view.connection == "survives" and not view.preferred


CHECKS: tuple[FarmCheck, ...] = (
    FarmCheck("farm_balancer_flows", balancer_flows, lambda v: not v.preferred),
    FarmCheck("farm_replica_captures", replica_captures, lambda v: True),
    FarmCheck("farm_other_replica_reaction", other_replica_reaction, _breaks),
    FarmCheck("farm_connection_broke", connection_broke, _breaks),
    FarmCheck("farm_holder_validated", holder_validated, lambda v: not _breaks(v)),
    FarmCheck("farm_preferred_address", preferred_on_replica, lambda v: v.preferred),
)
NAMES = tuple(c.name for c in CHECKS)


def run_all(view: FarmView) -> list[CheckResult]:
    return [check.judge(view) for check in CHECKS if check.applies(view)]


def short_header_dcids(pcapng: bytes, cid_length: int = 8) -> dict[str, list[str]]:
    """A pcapng of Ethernet frames -> for each UDP source "ip:port", the DCIDs (hex) of its short headers.

    The first ``cid_length`` bytes after a short header's first byte (the length the lab's CIDs
    have): a balancer reads no more than that either. Blocks other than packets are skipped.
    """
    found: dict[str, list[str]] = {}
    at, endian = 0, "<"
    while at + 12 <= len(pcapng):
        kind = struct.unpack_from(endian + "I", pcapng, at)[0]
        if kind == 0x0A0D0D0A:  # section header: its byte-order magic says how to read the rest
            endian = "<" if pcapng[at + 8:at + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        length = struct.unpack_from(endian + "I", pcapng, at + 4)[0]
        if length < 12:
            break
        if kind == 6:  # enhanced packet block
            captured = struct.unpack_from(endian + "I", pcapng, at + 20)[0]
            frame = pcapng[at + 28:at + 28 + captured]
            if len(frame) >= 42 and frame[12:14] == b"\x08\x00" and frame[23] == 17:
                ihl = (frame[14] & 0x0F) * 4
                sport = struct.unpack_from("!H", frame, 14 + ihl)[0]
                payload = frame[14 + ihl + 8:]
                if len(payload) > cid_length and payload[0] & 0xC0 == 0x40:
                    source = f"{'.'.join(map(str, frame[26:30]))}:{sport}"
                    found.setdefault(source, []).append(payload[1:1 + cid_length].hex())
        at += length
    return found


def replica_events(lines: Iterable[str]) -> list[ev.Event]:
    """A replica's log (its container's stdout as the runner kept it) -> its events."""
    found = []
    for line in lines:
        try:
            event = ev.parse_line(line)
        except (ev.SchemaError, TypeError, ValueError):
            continue
        if event is not None:
            found.append(event)
    return found


def summary(checks: Iterable[CheckResult]) -> dict[str, Any]:
    """The farm's figures for report.json: what each check measured (its details), by check."""
    return {c.name: dict(c.details) for c in checks if c.name in NAMES and c.details}
