"""report.html's pure parts: the sequence diagram on hand-built packets, the qlog series, the evidence
links and the page itself on the recorded run's files (tests/data/runs/recorded-rebinding), with a
stand-in capture decoder (the real one, the lab image's tshark, is in tests/integration)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from lab.cli.open import can_show_a_page, latest_run
from lab.report import sequence as sq
from lab.report.charts import build_charts, goodput_csv, time_zero
from lab.report.evidence import check_evidence, event_lines
from lab.report.html import QVIS, HtmlInputs, report_html
from lab.report.qlog import bin_bytes, metric_series, qlog_traces, received_stream_bytes
from lab.report.render import GOODPUT_CSV, HTML, SEQUENCE_SVG, write_reports
from lab.verify.judge import read_events_file
from lab.verify.pcap import QuicPacket

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "data" / "runs" / "recorded-rebinding"
SERVER, ROUTER_WAN, CLIENT = "10.203.100.10", "10.203.100.21", "10.203.1.10"  # as in the recorded topology
ROUTERS = {"home-router": ROUTER_WAN}
ACK, STREAM, PADDING, PING, CHAL, RESP, NCID = 0x02, 0x08, 0x00, 0x01, 0x1A, 0x1B, 0x18


class Capture:
    """Builds one capture file's QuicPacket list, one datagram per call (frame numbers count up)."""

    def __init__(self) -> None:
        self.packets: list[QuicPacket] = []

    def add(self, t, src, dst, frames, size=1200, pn=None, dcid="c1", challenge=(), response=(), decrypted=True,
            ptype="1rtt", ncid=()):
        frame = len({p.frame for p in self.packets}) + 1
        self.packets.append(QuicPacket(
            frame=frame, index_in_datagram=0, time=t, src_ip=src[0], src_port=src[1], dst_ip=dst[0],
            dst_port=dst[1], long_header=ptype != "1rtt", packet_type=ptype, version=None if ptype == "1rtt" else 1,
            dcid=dcid, scid="", packet_number=pn if decrypted else None, decrypted=decrypted,
            frame_types=tuple(frames) if decrypted else (), path_challenge=tuple(challenge),
            path_response=tuple(response), new_connection_id_seqs=tuple(ncid), udp_payload_length=size,
            packet_length=size))
        return self


def rebinding(transit=0.00001, lan_decrypted=True, drop_at_nat=True):
    """A NAT rebinding as the server side and the NAT's client side saw it: port 5000 outside, then 6000;
    the client keeps 40000 inside. ``transit``: time through the NAT; one server datagram to the old port
    is dropped by the NAT (it never reaches the client side)."""
    wan, lan = Capture(), Capture()
    inside, old, new, server = (CLIENT, 40000), (ROUTER_WAN, 5000), (ROUTER_WAN, 6000), (SERVER, 443)

    def c2s(t, outside, frames, size, pn, **kw):
        lan.add(t, inside, server, frames, size, pn, decrypted=lan_decrypted, **kw)
        wan.add(t + transit, outside, server, frames, size, pn, **kw)

    def s2c(t, outside, frames, size, pn, dropped=False, **kw):
        wan.add(t, server, outside, frames, size, pn, dcid="s1", **kw)
        if not dropped:
            lan.add(t + transit, server, inside, frames, size, pn, dcid="s1", decrypted=lan_decrypted, **kw)

    c2s(1.0, old, [0x06], 1200, 0, ptype="initial")
    s2c(1.01, old, [ACK, NCID], 1200, 0, ncid=(1, 2, 3))
    for i in range(5):
        s2c(1.1 + i * 0.01, old, [STREAM], 1200, 1 + i)
    s2c(1.2, old, [STREAM], 1200, 6, dropped=drop_at_nat)  # after the rebind: the old mapping is gone
    c2s(1.3, new, [ACK], 50, 1)
    s2c(1.31, new, [CHAL, STREAM, PADDING], 1200, 7, challenge=("aabbccdd00112233",))
    c2s(1.32, new, [RESP, PADDING], 1200, 2, response=("aabbccdd00112233",))
    for i in range(5):
        s2c(1.4 + i * 0.01, new, [STREAM], 1200, 8 + i)
    return wan.packets, lan.packets


EVENTS = [(3, {"type": "nat_mapping", "ts": 1.005, "role": "router", "router": "home-router",
               "inside": f"{CLIENT}:40000", "outside": f"{ROUTER_WAN}:5000", "change": "new"}),
          (7, {"type": "action", "ts": 1.19, "role": "controller", "action": "rebind", "target": "home-router"})]


def diagram(**kw) -> sq.SequenceDiagram:
    wan, lan = rebinding(**kw)
    return sq.build_sequence(wan, {"home-router": lan}, servers={SERVER}, routers=ROUTERS, events=EVENTS, t0=0.8)


# --- the sequence diagram ---------------------------------------------------------------------------------------

def test_lanes_are_the_client_the_nat_it_crossed_and_the_server():
    d = diagram()
    assert [(lane.name, lane.kind) for lane in d.lanes] == [("client", "client"), ("home-router", "nat"),
                                                            ("server", "server")]
    assert d.lanes[0].addresses == (CLIENT,) and d.lanes[1].addresses == (ROUTER_WAN,)


def test_the_challenge_is_drawn_with_its_4_tuples_before_and_after_the_nat():
    d = diagram()
    [challenge] = [m for m in d.messages if m.challenges]
    assert challenge.challenges == ("aabbccdd00112233",) and challenge.direction == "s2c"
    assert (challenge.wan.src, challenge.wan.dst) == (f"{SERVER}:443", f"{ROUTER_WAN}:6000")
    assert (challenge.lan.src, challenge.lan.dst) == (f"{SERVER}:443", f"{CLIENT}:40000")
    [response] = [m for m in d.messages if m.responses]
    assert (response.lan.src, response.wan.src) == (f"{CLIENT}:40000", f"{ROUTER_WAN}:6000")
    svg = sq.sequence_svg(d)
    assert "PATH_CHALLENGE aabbccdd00112233" in svg and 'data-challenge="aabbccdd00112233"' in svg
    assert f"{ROUTER_WAN}:6000 &gt; {SERVER}:443" in svg or f"{ROUTER_WAN}:6000 > {SERVER}:443" in svg


def test_first_packets_on_each_path_new_connection_ids_and_the_datagram_the_nat_dropped():
    d = diagram()
    reasons = {m.wan.frame if m.wan else -1: m.reasons for m in d.messages}
    assert any("first client datagram on server-side path" in r for r in reasons[1])
    assert "NEW_CONNECTION_ID" in reasons[2]
    first_new = next(m for m in d.messages if m.wan and m.wan.src == f"{ROUTER_WAN}:6000")
    assert any("first client datagram on server-side path 10.203.100.21:6000" in r for r in first_new.reasons)
    # the rebinding keeps the client's side: the new server-side path is not a new client-side path
    assert not any("client-side path" in r for r in first_new.reasons)
    dropped = [m for m in d.messages if m.wan and m.lan is None]
    assert len(dropped) == 1 and "first of 1 server datagram(s) not in home-router-lan.pcapng" in dropped[0].reasons
    assert "not in home-router-lan.pcapng" in sq.sequence_svg(d)


def test_skipped_datagrams_are_counted_and_events_placed_in_time():
    d = diagram()
    skipped = sum(r.c2s + r.s2c for r in d.rows if isinstance(r, sq.Skip))
    assert skipped + len(d.messages) == d.datagrams
    notes = [r for r in d.rows if isinstance(r, sq.Note)]
    markers = [r for r in d.rows if isinstance(r, sq.Marker)]
    assert [(n.line, n.lane) for n in notes] == [(3, "home-router")] and [m.line for m in markers] == [7]
    order = [type(r).__name__ for r in d.rows]
    assert order.index("Marker") < next(i for i, r in enumerate(d.rows) if isinstance(r, sq.Message) and r.challenges)
    svg = sq.sequence_svg(d)
    assert 'href="#ev-7"' in svg and 'href="#f-1"' in svg
    assert "xmlns" not in svg and "xmlns=" in sq.sequence_svg(d, standalone=True)


@pytest.mark.parametrize("transit", [0.00001, 0.040])
def test_the_nat_sides_pair_up_undecrypted_and_behind_a_delay_line(transit):
    """Without packet numbers (a NAT side without the handshake is not decrypted) and with every datagram
    held 40 ms in the router, each forwarded datagram still finds its twin, the dropped one none."""
    d = diagram(transit=transit, lan_decrypted=False)
    unmatched = [m for m in d.messages if m.wan is None or m.lan is None]
    assert len(unmatched) == 1 and unmatched[0].wan is not None  # only the datagram the NAT dropped
    [challenge] = [m for m in d.messages if m.challenges]
    assert challenge.lan is not None  # content from the decrypted server side


def test_a_run_without_the_nats_client_side_says_so():
    wan, _ = rebinding()
    d = sq.build_sequence(wan, {}, servers={SERVER}, routers=ROUTERS, events=EVENTS, t0=0.8)
    assert all(m.lan is None and not m.lan_captured for m in d.messages)
    assert any("no home-router-lan.pcapng" in n for n in d.notes)
    assert "client side not captured" in sq.sequence_svg(d)


def test_describe_packet_collapses_repeats_and_names_the_data():
    wan, _ = rebinding()
    ncid = next(p for p in wan if p.new_connection_id_seqs)
    assert sq.describe_packet(ncid) == "1-RTT dcid s1 pn 0: ACK, NEW_CONNECTION_ID (seq 1-3)"
    challenge = next(p for p in wan if p.path_challenge)
    assert sq.describe_packet(challenge).endswith("PATH_CHALLENGE aabbccdd00112233, STREAM, PADDING")


# --- qlog series --------------------------------------------------------------------------------------------------

def _received(t_ms, *frames):
    return {"name": "transport:packet_received", "time": t_ms, "data": {"frames": list(frames)}}


def test_stream_bytes_are_counted_once_however_often_they_arrive():
    events = [_received(1000.0, {"frame_type": "stream", "stream_id": 0, "offset": 0, "length": 1000}),
              _received(1050.0, {"frame_type": "stream", "stream_id": 0, "offset": 500, "length": 1000}),
              _received(1060.0, {"frame_type": "ack"}),
              _received(1100.0, {"frame_type": "stream", "stream_id": 0, "offset": 0, "length": 1500}),
              _received(1210.0, {"frame_type": "stream", "stream_id": 4, "offset": 0, "length": 100})]
    assert received_stream_bytes(events) == [(1.0, 1000), (1.05, 500), (1.21, 100)]
    assert bin_bytes(received_stream_bytes(events), t0=1.0, bin_ms=100) == [(0.0, 0.12), (0.1, 0.0), (0.2, 0.008)]


def test_metric_series_reads_the_fields_metrics_updated_carries():
    events = [{"name": "recovery:metrics_updated", "time": 2000.0, "data": {"cwnd": 12000}},
              {"name": "recovery:metrics_updated", "time": 2010.0, "data": {"smoothed_rtt": 6.2, "cwnd": 14000}},
              {"name": "transport:packet_sent", "time": 2020.0, "data": {"cwnd": 1}}]
    assert metric_series(events, "cwnd", t0=2.0, scale=1 / 1000) == [(0.0, 12.0), (pytest.approx(0.01), 14.0)]
    assert metric_series(events, "smoothed_rtt", t0=2.0) == [(pytest.approx(0.01), 6.2)]


# --- the page on the recorded run's files -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def recorded():
    timeline, _ = read_events_file(RECORDED / "events.jsonl")
    events = event_lines((RECORDED / "events.jsonl").read_text())
    traces = [t for side in ("client", "server") for f in sorted((RECORDED / side / "qlog").glob("*.qlog"))
              for t in qlog_traces(json.loads(f.read_text()), f"{side}/qlog/{f.name}")]
    return timeline, events, traces


REPORT = {"scenario": "recorded-rebinding", "run_id": "r1", "passed": True, "duration_s": 6.7, "tally": {"passed": 3},
          "optional_evidence": [], "error": None, "figures": [],
          "checks": [{"name": "paths_validated", "status": "passed", "observed": "1", "expected": ">= 1",
                      "transport": "quic", "evidence": 8, "source": "events"},
                     {"name": "capture_path_challenge_on_new_path[pr426]", "status": "passed", "source": "captures",
                      "observed": "x: frame 248: PATH_CHALLENGE before/with the first non-probing frame",
                      "expected": "...", "transport": "quic", "evidence": 1},
                     {"name": "qlog_server", "status": "passed", "observed": "1 file(s)", "expected": "...",
                      "transport": "quic", "evidence": 1, "source": "qlog"}],
          "metrics": {"by_transport": {"quic": {"disruption_ms": 249.0, "handshakes": 1}}}}


def test_evidence_links_frames_event_lines_and_files(recorded):
    _, events, _ = recorded
    wan, _ = rebinding()
    check = {"name": "capture_challenges_answered", "source": "captures", "observed": "1 challenge(s)"}
    evidence = check_evidence(check, wan, events, {SERVER})
    assert evidence.frames == tuple(p.frame for p in wan if p.path_challenge or p.path_response)
    named = check_evidence(REPORT["checks"][1], None, events, {SERVER})
    assert named.frames == (248,)
    validated = check_evidence(REPORT["checks"][0], None, events, {SERVER})
    lines = (RECORDED / "events.jsonl").read_text().splitlines()
    assert validated.events and all('"path_validated"' in lines[n - 1] for n in validated.events)
    files = check_evidence(REPORT["checks"][2], None, events, {SERVER}, {"server": ["server/qlog/x.qlog"]})
    assert files.files == ("server/qlog/x.qlog",)


def test_the_page_anchors_every_event_and_loads_nothing(recorded):
    timeline, events, traces = recorded
    t0 = time_zero(timeline)
    charts = build_charts(timeline, ["quic"], traces, t0)
    html = report_html(HtmlInputs(report=REPORT, events=events, t0=t0, packets=None, packets_note="not decoded here",
                                  sequence_note="not decoded here", charts=charts.svgs, servers=frozenset({SERVER})))
    assert all(f'id="ev-{e.number}"' in html for e in events)
    assert 'href="#ev-' in html and "frame 248" in html and "not decoded here" in html
    assert len(charts.svgs) == 3 and 'data-series="server cwnd"' in html
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {QVIS}
    assert not re.search(r'\bsrc="', html)


def test_goodput_from_the_client_qlog_as_csv(recorded):
    timeline, _, traces = recorded
    charts = build_charts(timeline, ["quic"], traces, time_zero(timeline))
    csv = goodput_csv(charts.goodput).splitlines()
    assert csv[0] == "t_s,transport,source,goodput_mbps"
    assert all(row.split(",")[1:3] == ["quic", "client qlog"] for row in csv[1:])
    received = sum(float(row.split(",")[3]) for row in csv[1:]) * 1e6 / 8 * 0.1
    assert received == pytest.approx(400_000, rel=0.01)  # the recorded download: 400000 bytes


def _report_dir(tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(RECORDED, target)
    return target


def test_write_reports_with_a_decoder_draws_the_sequence(tmp_path, recorded):
    timeline, _, _ = recorded
    run_dir = _report_dir(tmp_path)
    wan, _ = rebinding()
    asked = []

    def decoder(pcap, keylog, ports):
        asked.append((pcap.name, keylog is not None, tuple(ports)))
        return wan

    write_reports(run_dir, REPORT, timeline, "a description", read_packets=decoder)
    assert asked == [("server-side.pcapng", True, (443, 4443))]  # no -lan capture in this run
    html = (run_dir / HTML).read_text()
    assert "PATH_CHALLENGE aabbccdd00112233" in html and (run_dir / SEQUENCE_SVG).is_file()
    assert (run_dir / GOODPUT_CSV).read_text().startswith("t_s,transport,source,goodput_mbps\n")


def test_write_reports_without_a_decoder_or_when_it_fails_still_writes_the_page(tmp_path, recorded):
    timeline, _, _ = recorded
    run_dir = _report_dir(tmp_path)
    write_reports(run_dir, REPORT, timeline)
    assert "written without a capture decoder" in (run_dir / HTML).read_text()

    def broken(pcap, keylog, ports):
        raise RuntimeError("the lab image quic-migration-lab:latest is missing")

    write_reports(run_dir, REPORT, timeline, read_packets=broken)
    page = (run_dir / HTML).read_text()
    assert "decoding captures/server-side.pcapng failed: the lab image quic-migration-lab:latest is missing" in page
    assert not (run_dir / SEQUENCE_SVG).exists()


# --- lab open -----------------------------------------------------------------------------------------------------

def test_open_picks_the_run_that_started_last(tmp_path):
    for name, started in (("a", 200.0), ("b", 100.0)):
        run = tmp_path / name / "r1"
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"started": started}))
        (tmp_path / name / "latest").symlink_to("r1")
    assert latest_run(tmp_path) == tmp_path / "a" / "latest"


def test_a_browser_is_started_only_where_it_can_show_a_page():
    assert not can_show_a_page({}, "linux")
    assert can_show_a_page({"DISPLAY": ":0"}, "linux") and can_show_a_page({"WAYLAND_DISPLAY": "w"}, "linux")
    assert can_show_a_page({}, "darwin") and can_show_a_page({}, "win32")
