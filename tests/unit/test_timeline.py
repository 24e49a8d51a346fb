"""Timeline merging, queries, JSONL round trips and the chunk-to-line assembler."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.addresses import host_of, same_ip
from lab.events import Action, DataGap, EchoRtt, HandshakeCompleted, PathValidated, Progress, SchemaError
from lab.observe.timeline import LineAssembler, Timeline, merge, read_events, read_jsonl, write_jsonl

TIMELINES = Path(__file__).resolve().parents[1] / "data" / "timelines"


def hs(ts: float, role: str, peer: str = "10.0.0.2:443", transport: str = "quic") -> HandshakeCompleted:
    return HandshakeCompleted(ts=ts, role=role, peer=peer, transport=transport, conn="aa")


def act(ts: float, action: str, target: str = "home") -> Action:
    return Action(ts=ts, role="controller", action=action, target=target)


def test_merge_orders_by_ts_and_keeps_ties_in_source_order() -> None:
    server = [hs(1.0, "server"), PathValidated(ts=2.0, role="server", peer="x"), act(3.0, "a")]
    client = [hs(1.0, "client"), Progress(ts=1.5, role="client", bytes=1), Progress(ts=2.0, role="client", bytes=2)]
    merged = merge(server, client)
    assert [(e.ts, e.role) for e in merged] == [
        (1.0, "server"), (1.0, "client"), (1.5, "client"), (2.0, "server"), (2.0, "client"), (3.0, "controller")]
    # Same ts within one source keeps its written order.
    same = [Progress(ts=5.0, role="client", bytes=i) for i in range(5)]
    assert [e.bytes for e in merge(same)] == [0, 1, 2, 3, 4]
    assert merge() == []


def test_timeline_queries() -> None:
    timeline = Timeline.from_streams(
        [act(0.0, "start_workload", "client"), act(2.0, "disconnect"), act(2.3, "connect", "cellular"),
         act(2.4, "impair", "cellular")],
        [hs(0.1, "server"), hs(0.1, "client"), hs(5.0, "client", transport="tcp")],
    )
    assert len(timeline) == 7 and timeline.start == 0.0 and timeline.end == 5.0
    assert timeline.count("handshake_completed") == 3
    assert timeline.count(HandshakeCompleted, role="client") == 2
    assert timeline.first("handshake_completed", role="client").ts == 0.1
    assert timeline.first("handshake_completed", since=1.0).ts == 5.0
    assert timeline.last(HandshakeCompleted).transport == "tcp"
    assert timeline.first("data_gap") is None
    assert len(timeline.since(2.3)) == 3 and len(timeline.until(0.1)) == 3
    assert [a.action for a in timeline.actions(network_only=True)] == ["disconnect", "connect"]
    assert timeline.first_network_action().ts == 2.0
    assert timeline.transports() == ["quic", "tcp"]
    quic = timeline.for_transport("quic")
    assert quic.count(HandshakeCompleted) == 2
    # Actions between the QUIC run's last event and the TCP run belong to the later (TCP) run.
    assert [a.action for a in quic.actions()] == ["start_workload"]
    assert [a.action for a in timeline.for_transport("tcp").actions()] == ["disconnect", "connect", "impair"]
    assert len(Timeline.from_streams([act(1.0, "rebind"), hs(0.5, "client")]).for_transport("quic").actions()) == 1
    assert timeline.by_role("server").count(HandshakeCompleted) == 1
    assert timeline.relative(2.5) == 2.5 and timeline.relative(2.5, t0=2.0) == 0.5
    assert Timeline().start is None and Timeline().first_network_action() is None


def test_gaps_from_data_gap_echo_and_trailing_stall() -> None:
    timeline = Timeline.from_streams([
        DataGap(ts=1.2, role="client", start_ts=1.0, end_ts=1.2, gap_ms=200.0),
        EchoRtt(ts=3.0, role="client", seq=1, rtt_ms=10), EchoRtt(ts=3.02, role="client", seq=2, rtt_ms=10),
        EchoRtt(ts=3.9, role="client", seq=3, rtt_ms=500),
        Progress(ts=4.0, role="client", bytes=10), act(6.0, "timeout", "scenario"),
    ])
    gaps = timeline.gaps()
    assert [g.source for g in gaps] == ["data_gap", "echo", "echo", "stall"]
    largest = timeline.largest_gap()
    assert largest.source == "stall" and largest.ongoing and largest.gap_ms == pytest.approx(2000.0)
    assert [g.source for g in timeline.gaps(since=3.5)] == ["echo", "stall"]
    assert timeline.gaps(since=3.5)[0].gap_ms == pytest.approx(880.0)


def test_addresses() -> None:
    assert host_of("10.0.0.5:443") == "10.0.0.5"
    assert host_of("[fd00::1]:443") == "fd00::1"
    assert host_of("10.0.0.5") == "10.0.0.5"
    assert same_ip("10.0.0.5:1", "10.0.0.5:2") and not same_ip("10.0.0.5:1", "10.0.0.6:1")


def test_jsonl_round_trip(tmp_path: Path) -> None:
    original = read_jsonl(TIMELINES / "wifi-to-cellular-pass.jsonl")
    path = tmp_path / "copy.jsonl"
    write_jsonl(path, original)
    again = read_jsonl(path)
    assert again.events == original.events
    assert isinstance(again.first("data_gap"), DataGap)


def test_every_recorded_timeline_loads() -> None:
    for path in sorted(TIMELINES.glob("*.jsonl")):
        timeline = read_jsonl(path)
        assert len(timeline) > 0
        assert [e.ts for e in timeline] == sorted(e.ts for e in timeline)


def test_read_events_skips_log_text_and_reports_bad_lines() -> None:
    lines = ["plain log text", "", '{"type":"error","ts":1.0,"role":"client","message":"x"}', "[1] not json"]
    assert [e.TYPE for e in read_events(lines)] == ["error"]
    bad = ['{"type":"error","ts":1.0}', '{"type":"teleported","ts":2.0}']
    with pytest.raises(SchemaError, match=r"<lines>:2: unknown event type 'teleported'"):
        read_events(bad)
    assert len(read_events(bad, strict=False)) == 1
    with pytest.raises(SchemaError, match=":1:"):
        read_events(['{"type":"error","ts":1.0,"colour":"red"}'])


def test_line_assembler_byte_by_byte_with_multibyte_utf8_and_crlf() -> None:
    text = 'é→ {"a":"😀"}\r\nsecond line\nthird'.encode()
    assembler = LineAssembler()
    lines: list[str] = []
    for i in range(len(text)):
        lines.extend(assembler.feed(text[i:i + 1]))
    assert lines == ['é→ {"a":"😀"}', "second line"]
    assert assembler.flush() == ["third"]
    assert assembler.flush() == []


def test_line_assembler_chunks_with_several_lines_and_invalid_bytes() -> None:
    assembler = LineAssembler()
    assert assembler.feed(b"a\nb\nc") == ["a", "b"]
    assert assembler.feed(b"d\n\n") == ["cd", ""]
    assert assembler.feed(b"\xff\xfeok\n") == ["\ufffd\ufffdok"]
    assert assembler.feed(b"\xe2\x86") == []  # a partial sequence waits for its last byte...
    assert assembler.flush() == ["\ufffd"]  # ...and becomes U+FFFD if the stream ends first
