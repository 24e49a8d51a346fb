"""The farm checks (lab.verify.farm_checks) on hand-built runs: the balancer's flows as the controller's
farm_rebind events recorded them, each replica's capture and events, the server's view. Each check
is shown passing, failing on a mutation, and not verified when there is nothing to judge."""

from __future__ import annotations

from dataclasses import replace

from lab import events as ev
from lab.endpoints.balancer.rules import Backend
from lab.endpoints.quic.quic_lb import LbConfig, encode
from lab.topology.farm import Farm
from lab.verify import farm_checks as fc
from lab.verify.pcap import QuicPacket
from lab.verify.result import NOT_VERIFIED

FARM = Farm("10.203.100.30", 443, "balancer", "10.203.210.2",
            (Backend("replica-1", "10.203.210.11", 1, "10.203.100.31"),
             Backend("replica-2", "10.203.210.12", 2, "10.203.100.32")), preferred_port=4443)
R1, R2 = "10.203.210.11", "10.203.210.12"
NAT = "10.203.100.21"
FIRST, MOVED = f"{NAT}:40000", f"{NAT}:40002"


def cid(server_id: int, n: int = 0) -> str:
    return encode(LbConfig(), server_id, bytes([n] * 6)).hex()


class Capture:
    """Packets in frame order, one QUIC packet per datagram."""

    def __init__(self) -> None:
        self.packets: list[QuicPacket] = []

    def add(self, t: float, src: str, dst: str, long_header: bool = False, dcid: str = "",
            probing: bool = False) -> Capture:
        (sip, sport), (dip, dport) = (a.rsplit(":", 1) for a in (src, dst))
        self.packets.append(QuicPacket(
            frame=len(self.packets) + 1, index_in_datagram=0, time=t, src_ip=sip, src_port=int(sport),
            dst_ip=dip, dst_port=int(dport), long_header=long_header,
            packet_type="handshake" if long_header else "1rtt", version=1 if long_header else None, dcid=dcid,
            scid="", packet_number=len(self.packets), decrypted=True,
            frame_types=(0x1a,) if probing else (0x08,), udp_payload_length=1200))
        return self


def rebind_event(rebindings: list[tuple[str, str]], moved: bool, ts: float = 10.0) -> ev.Action:
    return ev.Action(ts=ts, role="controller", action="farm_rebind", target="home-router", detail={
        "mode": "hash" if moved else "cid", "holder": "replica-1", "took_ms": 500.0,
        "rebindings": [{"outside": o, "replica": r} for o, r in rebindings],
        "moved_to": rebindings[-1][1] if moved else None, "moved_flow": rebindings[-1][0] if moved else None})


def progress(*points: tuple[float, int]) -> list[ev.Event]:
    return [ev.Progress(ts=t, role="client", bytes=b) for t, b in points]


def holder_capture() -> Capture:
    """replica-1 ran the handshake with the client's first tuple."""
    c = Capture().add(1.0, f"{FIRST}", f"{R1}:443", True, "aa" * 8)
    c.add(1.01, f"{R1}:443", FIRST, True, "bb" * 8)
    for i in range(3):
        c.add(2 + i, FIRST, f"{R1}:443", dcid=cid(1, i))
    return c


def breaks_view(other_sends: list[tuple[bool, str]] = (), late_bytes: int = 0, dcid_sid: int = 1,
                arrived: int = 5) -> fc.FarmView:
    other = Capture()
    for i in range(arrived):
        other.add(10.6 + 0.2 * i, MOVED, f"{R2}:443", dcid=cid(dcid_sid, i))
    for long_header, _ in other_sends:
        other.add(11.5, f"{R2}:443", MOVED, long_header)
    server_side = Capture().add(10.2, MOVED, f"{FARM.address}:443", dcid=cid(1))
    timeline: list[ev.Event] = [*progress((5.0, 1_000_000), (10.4, 2_000_000), (13.0, 2_000_000 + late_bytes)),
                                rebind_event([(f"{NAT}:40001", "replica-1"), (MOVED, "replica-2")], True),
                                ev.Action(ts=14.0, role="controller", action="run_end", target="lb-four-tuple")]
    return fc.FarmView(FARM, "breaks", False, timeline, {"replica-1": holder_capture().packets,
                                                          "replica-2": other.packets}, server_side.packets)


def by_name(view: fc.FarmView) -> dict[str, object]:
    return {c.name: c for c in fc.run_all(view)}


def test_a_moved_flow_that_meets_silence_is_a_broken_connection_every_check_sees() -> None:
    checks = by_name(breaks_view())
    assert set(checks) == {"farm_balancer_flows", "farm_replica_captures", "farm_other_replica_reaction",
                           "farm_connection_broke"}
    assert all(c.passed for c in checks.values()), [c.observed for c in checks.values()]
    assert "rebinding 2 sent 10.203.100.21:40002 to replica-2" in checks["farm_balancer_flows"].observed
    assert "carry server ID 1 (replica-1's is 1)" in checks["farm_replica_captures"].observed
    reaction = checks["farm_other_replica_reaction"]
    assert reaction.details["reaction"] == "silence" and reaction.details["received"] == 5
    assert checks["farm_connection_broke"].details["stalled_at_bytes"] == 2_000_000


def test_mutations_make_each_breaks_check_fail() -> None:
    # The other replica answering with a handshake of its own is no reaction a farm should have.
    assert not by_name(breaks_view(other_sends=[(True, "")]))["farm_other_replica_reaction"].passed
    reset = by_name(breaks_view(other_sends=[(False, "")]))["farm_other_replica_reaction"]
    assert reset.passed and reset.details["reaction"] == "stateless reset"
    # Bytes after the move: the connection did not break.
    broke = by_name(breaks_view(late_bytes=300_000))["farm_connection_broke"]
    assert not broke.passed and "300000 bytes arrived later" in broke.observed
    # DCIDs naming the other replica's own server ID: not the holder's connection.
    assert not by_name(breaks_view(dcid_sid=2))["farm_replica_captures"].passed
    # Nothing of the moved flow reached the other replica's capture.
    assert not by_name(breaks_view(arrived=0))["farm_replica_captures"].passed


def test_a_flow_that_never_moved_leaves_the_break_not_verified() -> None:
    view = breaks_view()
    view.timeline = [e for e in view.timeline if not (isinstance(e, ev.Action) and e.action == "farm_rebind")] + [
        rebind_event([(f"{NAT}:4000{i}", "replica-1") for i in range(1, 17)], False)]
    checks = by_name(view)
    assert {c.status for c in checks.values()} == {NOT_VERIFIED}
    assert "16 rebinding(s), every new flow hashed to replica-1" in checks["farm_balancer_flows"].observed
    missing = breaks_view()
    missing.replica_packets["replica-2"] = None
    assert by_name(missing)["farm_other_replica_reaction"].status == NOT_VERIFIED


def survives_view(away: bool = False, other_datagrams: int = 0, validated: tuple[str, ...] = ()) -> fc.FarmView:
    flows = [(f"{NAT}:4000{i}", "replica-2" if away and i == 2 else "replica-1") for i in (1, 2, 3)]
    other = Capture()
    for i in range(other_datagrams):
        other.add(11 + i, flows[1][0], f"{R2}:443", dcid=cid(1))
    events = {"replica-1": [ev.PathValidated(ts=11.0, role="server", peer=p) for p in
                            (validated or tuple(f for f, _ in flows))], "replica-2": []}
    timeline = [rebind_event(flows, False), *progress((12.0, 6_000_000))]
    return fc.FarmView(FARM, "survives", False, timeline, {"replica-1": holder_capture().packets,
                                                            "replica-2": other.packets}, None, events)


def test_cid_routing_keeps_every_flow_on_the_holder_and_mutations_fail() -> None:
    checks = by_name(survives_view())
    assert set(checks) == {"farm_balancer_flows", "farm_replica_captures", "farm_holder_validated"}
    assert all(c.passed for c in checks.values()), [c.observed for c in checks.values()]
    assert checks["farm_balancer_flows"].observed == "3 rebound flow(s), all to replica-1"
    assert checks["farm_replica_captures"].details["holder"] == "replica-1"
    assert not by_name(survives_view(away=True))["farm_balancer_flows"].passed
    assert not by_name(survives_view(other_datagrams=2))["farm_replica_captures"].passed
    partial = by_name(survives_view(validated=(f"{NAT}:40001",)))["farm_holder_validated"]
    assert not partial.passed and "not 10.203.100.21:40002" in partial.observed
    none = survives_view()
    none.replica_events = {"replica-1": [], "replica-2": []}
    assert by_name(none)["farm_holder_validated"].status == NOT_VERIFIED
    uncaptured = survives_view()
    uncaptured.replica_packets["replica-1"] = None
    assert by_name(uncaptured)["farm_replica_captures"].status == NOT_VERIFIED


def preferred_view(unicast: str = "10.203.100.31") -> fc.FarmView:
    server_side = Capture().add(1.0, FIRST, f"{FARM.address}:4443", True)
    server_side.add(1.01, f"{FARM.address}:4443", FIRST, True)
    server_side.add(1.2, FIRST, f"{unicast}:4443", probing=True)
    server_side.add(1.21, f"{unicast}:4443", FIRST, probing=True)
    server_side.add(1.3, f"{unicast}:4443", FIRST)
    events = {"replica-1": [ev.PathValidated(ts=1.22, role="server", peer=FIRST)], "replica-2": []}
    return fc.FarmView(FARM, "survives", True, [], {"replica-1": holder_capture().packets, "replica-2": []},
                       server_side.packets, events)


def test_the_preferred_address_is_the_holders_unicast_one_and_a_move_elsewhere_fails() -> None:
    checks = by_name(preferred_view())
    assert set(checks) == {"farm_replica_captures", "farm_holder_validated", "farm_preferred_address"}
    assert all(c.passed for c in checks.values()), [c.observed for c in checks.values()]
    assert "to 10.203.100.31 (its unicast address), the first 200 ms after" in checks["farm_preferred_address"].observed
    assert not by_name(preferred_view("10.203.100.32"))["farm_preferred_address"].passed
    blind = replace(preferred_view(), server_side=None)
    assert by_name(blind)["farm_preferred_address"].status == NOT_VERIFIED


def test_replica_logs_give_their_events_and_skip_plain_lines() -> None:
    lines = ['quic server on :443', '{"type": "path_validated", "ts": 1.0, "role": "server", "peer": "1.2.3.4:5"}',
             '{"type": "no_such_event", "ts": 1.0, "role": "server"}']
    found = fc.replica_events(lines)
    assert len(found) == 1 and isinstance(found[0], ev.PathValidated) and found[0].peer == "1.2.3.4:5"


def pcapng(*datagrams: tuple[str, int, bytes]) -> bytes:
    """A little-endian pcapng: a section header, an interface, one Ethernet/IPv4/UDP frame per datagram."""
    import struct

    def block(kind: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 0))
    out += block(0x544C5344, b"secrets")  # a decryption secrets block, skipped
    for src, sport, payload in datagrams:
        ip = bytes([0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0]) + bytes(map(int, src.split("."))) + bytes([10, 0, 0, 2])
        frame = bytes(12) + b"\x08\x00" + ip + struct.pack("!HHHH", sport, 443, 8 + len(payload), 0) + payload
        out += block(6, struct.pack("<IIIII", 0, 0, 0, len(frame), len(frame)) + frame)
    return out


def test_short_header_dcids_are_read_from_the_capture_bytes() -> None:
    short = bytes([0x41]) + bytes.fromhex(cid(1, 7)) + bytes(20)
    long_header = bytes([0xC3, 0, 0, 0, 1, 8]) + bytes.fromhex(cid(2)) + bytes(20)
    found = fc.short_header_dcids(pcapng(("10.203.100.21", 40002, short), ("10.203.100.21", 40002, long_header),
                                         ("10.203.100.21", 40003, short)))
    assert found == {f"{NAT}:40002": [cid(1, 7)], f"{NAT}:40003": [cid(1, 7)]}
    assert fc.short_header_dcids(b"") == {}
    # The bytes override what tshark could not decode: a server ID the holder's is right, another is not.
    view = breaks_view()
    view.replica_dcids = {"replica-2": {MOVED: [cid(1, 1), cid(1, 2)]}}
    assert by_name(view)["farm_replica_captures"].passed
    view.replica_dcids = {"replica-2": {MOVED: [cid(2, 1)]}}
    assert not by_name(view)["farm_replica_captures"].passed
    view.replica_dcids = {"replica-2": {}}
    assert not by_name(view)["farm_replica_captures"].passed  # no short header: no server ID to show


def test_the_move_is_timed_when_the_balancer_showed_it_not_when_the_step_ended() -> None:
    event = rebind_event([(MOVED, "replica-2")], True)
    event = ev.Action(ts=event.ts, role="controller", action="farm_rebind", target="home-router",
                      detail={**event.detail, "moved_after_s": 0.2, "took_ms": 3300.0})
    view = fc.FarmView(FARM, "breaks", False, [event], {}, None)
    assert view.moved is not None and view.moved.ts == 10.2


def test_a_client_the_scenario_gave_up_on_is_no_failed_run_but_one_killed_otherwise_is() -> None:
    from lab.observe.timeline import Timeline
    from lab.verify.judge import run_completed

    end = ev.Action(ts=20.0, role="controller", action="run_end", target="lb-four-tuple",
                    detail={"error": None, "exit_codes": {"quic": 143}, "steps_played": 1})
    rebind = rebind_event([(MOVED, "replica-2")], True)
    gave_up = ev.Action(ts=rebind.ts, role="controller", action="farm_rebind", target="home-router",
                        detail={**rebind.detail, "gave_up": {"signal": "SIGTERM", "ended": True}})
    check = run_completed(Timeline.from_streams([gave_up, end]), 1)
    assert check.passed and "quic 143 (ended by the scenario's give_up)" in check.observed
    killed = run_completed(Timeline.from_streams([rebind, end]), 1)
    assert not killed.passed and "quic client exited 143" in killed.observed
