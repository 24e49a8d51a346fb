"""The strategies table of reconnect-vs-migrate (lab.report.strategies), on made-up data: round trips
counted from a server-side packet sequence, TCP handshakes from tshark fields, the ratio to
migration, and its explain topic quoting only a recorded run."""

from __future__ import annotations

import json
from pathlib import Path

from lab import events as ev
from lab.learn import evidence
from lab.observe.timeline import Timeline
from lab.report.strategies import (
    Exchange,
    first_byte_ms,
    markdown,
    packets_of,
    parse_tcp_fields,
    round_trips,
    strategy_table,
)
from lab.verify.pcap import QuicPacket

C, S = False, True
R = 0.025  # the wait threshold: half a 50 ms round trip


def seq(*items: tuple[float, bool, bool]) -> list[Exchange]:
    return [Exchange(t, side, data) for t, side, data in items]


def test_zero_rtt_is_one_round_trip_full_quic_two_tcp_three() -> None:
    zero = seq((0.0, C, False), (0.001, C, False), (0.004, S, False), (0.005, S, True))
    full = seq((0.0, C, False), (0.004, S, False), (0.005, S, False), (0.055, C, False), (0.058, S, True))
    tcp = seq((0.0, C, False), (0.001, S, False), (0.051, C, False), (0.053, S, False), (0.103, C, False),
              (0.105, S, True))
    assert round_trips(zero, R) == 1
    assert round_trips(full, R) == 2
    assert round_trips(tcp, R) == 3


def test_back_to_back_client_packets_are_no_round_trip() -> None:
    # The client's second datagram lands 2 ms after the server's first answer: not a wait.
    items = seq((0.0, C, False), (0.001, S, False), (0.003, C, False), (0.004, S, True))
    assert round_trips(items, R) == 1
    # Mutation: a threshold of zero would count it; the check can fail.
    assert round_trips(items, 0.0) == 2


def test_no_first_byte_is_not_a_count() -> None:
    assert round_trips(seq((0.0, C, False), (0.01, S, False)), R) is None
    assert round_trips(seq((0.0, S, True)), R) is None
    assert round_trips([], R) is None


def test_tcp_fields_parse_client_hello_with_psk() -> None:
    text = ("1.0\t40000\t443\t1\t0\t\t\t\n"
            "1.1\t40000\t443\t0\t517\t1\t0,10,43,45,51,41\t22\n"
            "1.2\t443\t40000\t0\t1200\t2,8,20\t43,51,41\t22,22,22\n"
            "1.3\t443\t40000\t0\t300\t\t\t23\n")
    packets = parse_tcp_fields(text)
    assert len(packets) == 4 and packets[0].syn and not packets[1].syn
    assert 41 in packets[1].extensions and packets[1].handshake_types == (1,)
    assert packets[2].handshake_types == (2, 8, 20) and packets[3].content_types == (23,)


def _event(cls: type, ts: float, transport: str, role: str = "client", conn: str | None = "c1", **fields):
    return cls(ts=ts, role=role, conn=conn, transport=transport, **fields)


def _timeline(late: str = "") -> Timeline:
    events = [ev.Action(ts=1.0, role="controller", conn=None, transport="", action="disconnect", target="home",
                        detail={"took_ms": 10})]
    for name, gap in (("quic", 300.0), ("quic-0rtt", 600.0), ("tcp", 1200.0)):
        events += [
            _event(ev.HandshakeCompleted, 0.5, name, conn=f"{name}-1", local="10.0.0.2:40000"),
            _event(ev.Progress, 0.8, name, conn=f"{name}-1", bytes=1000, total=10),
            _event(ev.DataGap, 1.6, name, conn=f"{name}-2", start_ts=1.0, end_ts=1.0 + gap / 1000, gap_ms=gap),
            _event(ev.TransferComplete, 3.0, name, conn=f"{name}-2", ok=True, bytes=10, sha256="a",
                   expected_sha256="a"),
        ]
        if name != "quic":
            events += [_event(ev.ReconnectStarted, 1.2, name, conn=f"{name}-1", reason="stall"),
                       _event(ev.SessionResumption, 1.5, name, conn=f"{name}-2", offered=True, resumed=True,
                              early_data="accepted" if name == "quic-0rtt" else "none")]
    events = [e for e in events if not (e.transport == late and isinstance(e, ev.Progress))]
    return Timeline.from_streams(events)


def test_ratio_to_migration_and_events_of_the_reconnect() -> None:
    timeline = _timeline()
    metrics = {"quic": {"disruption_ms": 300.0, "handshakes": 1}, "quic-0rtt": {"disruption_ms": 600.0,
               "handshakes": 2}, "tcp": {"disruption_ms": 1200.0, "handshakes": 2, "recovery_ms": 500.0}}
    rows = {r.name: r for r in strategy_table(timeline, metrics, None, None, 443, R, ("quic", "quic-0rtt", "tcp"))}
    assert rows["quic"].ratio == 1.0 and rows["quic-0rtt"].ratio == 2.0 and rows["tcp"].ratio == 4.0
    assert rows["tcp"].recovery_ms == 500.0 and rows["tcp"].recovery_ratio is None  # migration's not measured
    assert rows["quic-0rtt"].early_data == "accepted" and rows["quic-0rtt"].resumed
    assert rows["quic-0rtt"].ok and rows["tcp"].connections == 2
    # Without a capture nothing is counted from it: not verified, never zero.
    assert rows["quic-0rtt"].round_trips is None and rows["quic-0rtt"].capture_handshake is None
    table = "\n".join(markdown([r.to_dict() for r in rows.values()]))
    assert "| quic-0rtt | ok | 600.0 | 2.00 | - | - |" in table and "not verified" in table


def test_explain_without_a_run_says_so(tmp_path: Path) -> None:
    assert evidence.evidence_for("reconnect-vs-migrate", tmp_path) == [
        "No recorded `reconnect-vs-migrate` run yet: run `make scenario NAME=reconnect-vs-migrate` to measure it."]


def test_explain_quotes_the_recorded_table(tmp_path: Path) -> None:
    run = tmp_path / "artifacts" / "reconnect-vs-migrate" / "20260101-000000-abcd"
    run.mkdir(parents=True)
    (run.parent / "latest").symlink_to(run.name)
    rows = [{"name": "quic", "ok": True, "disruption_ms": 310.0, "ratio": 1.0, "round_trips": None,
             "resumed": None, "early_data": None},
            {"name": "quic-0rtt", "ok": True, "disruption_ms": 620.0, "ratio": 2.0, "round_trips": 1,
             "resumed": True, "early_data": "accepted"},
            {"name": "tcp", "ok": False, "disruption_ms": None, "ratio": None, "round_trips": None,
             "resumed": False, "early_data": "none"}]
    (run / "report.json").write_text(json.dumps({"run_id": run.name, "passed": True, "strategies": rows}))
    failed = run.parent / "20260101-000001-dcba"  # a failed run counts in no summary
    failed.mkdir()
    (failed / "report.json").write_text(json.dumps({"run_id": failed.name, "passed": False, "strategies": [
        {**rows[1], "ratio": 9.0}, rows[0]]}))
    text = "\n".join(evidence.evidence_for("reconnect-vs-migrate", tmp_path))
    assert "**310 ms**" in text and "**620 ms**, 2.00x migration's" in text and "1 round trip(s)" in text
    assert "Over 1 recorded passed run(s), quic-0rtt / migration: disruption 2.00x [2.00-2.00]" in text
    assert "9.00" not in text
    assert "tcp: not measured" in text
    assert "artifacts/reconnect-vs-migrate/20260101-000000-abcd/report.json" in text


def test_a_strategy_without_data_before_the_change_gets_no_ratio() -> None:
    metrics = {"quic": {"disruption_ms": 300.0}, "quic-0rtt": {"disruption_ms": 600.0}, "tcp": {"disruption_ms": 5.0}}
    rows = {r.name: r for r in strategy_table(_timeline(late="tcp"), metrics, None, None, 443, R,
                                              ("quic", "quic-0rtt", "tcp"))}
    assert rows["tcp"].ratio is None and "no data before the change" in rows["tcp"].evidence
    assert rows["quic-0rtt"].ratio == 2.0


def _packet(time: float, to_server: bool, kind: str, dcid: str, scid: str = "", frames: tuple[int, ...] = (),
            new_cids: tuple[str, ...] = ()) -> QuicPacket:
    ends = (("10.0.0.2", 5000, "10.0.0.1", 443) if to_server else ("10.0.0.1", 443, "10.0.0.2", 5000))
    return QuicPacket(frame=int(time * 1000), index_in_datagram=0, time=time, src_ip=ends[0], src_port=ends[1],
                      dst_ip=ends[2], dst_port=ends[3], long_header=kind != "1rtt", packet_type=kind,
                      version=1 if kind != "1rtt" else None, dcid=dcid, scid=scid, packet_number=0, decrypted=True,
                      frame_types=frames, new_connection_ids=new_cids)


def test_packets_of_one_connection_and_its_round_trips() -> None:
    packets = [
        _packet(0.000, True, "initial", "aa", "c1"), _packet(0.001, True, "0rtt", "aa", "c1", (0x08,)),
        _packet(0.003, False, "initial", "c1", "s1"), _packet(0.004, False, "1rtt", "c1", frames=(0x18,),
                                                                 new_cids=("s2",)),
        _packet(0.005, False, "1rtt", "c1", frames=(0x08,)), _packet(0.060, True, "1rtt", "s2"),
        _packet(0.100, True, "initial", "bb", "c9"), _packet(0.103, False, "initial", "c9", "s9"),
        _packet(0.155, True, "handshake", "s9", "c9"), _packet(0.158, False, "1rtt", "c9", frames=(0x08,)),
    ]
    first, second = packets_of(packets, {"aa"}, 443), packets_of(packets, {"bb"}, 443)
    assert len(first) == 6 and len(second) == 4  # the client's packet to the CID it was issued is the first's
    assert not set(map(id, first)) & set(map(id, second))
    def trips(group):
        return round_trips([Exchange(p.time, p.src_port == 443, p.src_port == 443 and 0x08 in p.frame_types)
                            for p in group], R)
    assert trips(first) == 1 and trips(second) == 2
    assert first_byte_ms([Exchange(p.time, p.src_port == 443, p.src_port == 443 and 0x08 in p.frame_types)
                          for p in second], 0.05) == 108.0


def test_tcp_resume_row_from_the_capture_through_the_nat() -> None:
    from lab.report.strategies import TcpPacket

    events = [ev.Action(ts=1.0, role="controller", conn=None, transport="", action="disconnect", target="home"),
              _event(ev.HandshakeCompleted, 0.5, "tcp-resume", conn="t1", local="10.0.1.2:40000"),
              _event(ev.Progress, 0.8, "tcp-resume", conn="t1", bytes=100, total=10),
              _event(ev.ReconnectStarted, 1.2, "tcp-resume", conn="t1", reason="stall"),
              ev.NatMapping(ts=1.9, role="router", transport="", router="carrier-nat", inside="10.0.2.2:40001",
                            outside="10.0.100.22:5001"),
              _event(ev.HandshakeCompleted, 2.0, "tcp-resume", conn="t2", local="10.0.2.2:40001"),
              _event(ev.SessionResumption, 2.0, "tcp-resume", conn="t2", offered=True, resumed=True)]
    c, s = (5001, 443), (443, 5001)
    segments = [TcpPacket(1.90, *c, True, 0), TcpPacket(1.901, *s, True, 0),
                TcpPacket(1.95, *c, False, 0), TcpPacket(1.951, *c, False, 300, (1,), (0, 43, 41)),
                TcpPacket(1.953, *s, False, 400, (2,), (43, 41), (22, 22, 22)),
                TcpPacket(1.954, *s, False, 200, (), (), (23,)),  # its session ticket: not the first byte
                TcpPacket(2.004, *c, False, 100, (), (), (22, 23)), TcpPacket(2.006, *s, False, 1200, (), (), (23,))]
    rows = strategy_table(Timeline.from_streams(events), {"tcp-resume": {"disruption_ms": 900.0}}, None, segments,
                          443, R, ("tcp-resume",))
    row = rows[0]
    assert row.capture_handshake == {"syn": 2, "client_hello": 1, "server_hello": 1, "client_hello_psk": 1,
                                     "server_hello_psk": 1}
    assert row.round_trips == 3 and row.resumed and row.capture_connections == 1
    assert row.first_byte_ms == 156.0  # 2.006 - 1.900 at the server, plus r = 50 ms
    # Mutation: without the NAT's mapping the client's own port names no stream in the server's capture.
    bare = [e for e in events if not isinstance(e, ev.NatMapping)]
    assert strategy_table(Timeline.from_streams(bare), {}, None, segments, 443, R,
                          ("tcp-resume",))[0].capture_handshake is None
