"""The pure parts of the catalogue's speed-ups: the capture start script, the -T fields decode of
short-header datagrams, merging the two decodes, and when a batch is judged in the background."""

from __future__ import annotations

import pytest

from lab.control.actions import CAPTURE_DIR, CAPTURE_STOP, capture_start_script
from lab.verify import background
from lab.verify.pcap import (
    FIELDS_MARK,
    SHORT_FIELDS,
    QuicPacket,
    TsharkError,
    decode_script,
    fields_args,
    json_args,
    merge_packets,
    parse_tshark_fields,
    parse_tshark_json,
    tshark_args,
)


def test_capture_start_script_starts_in_background_and_waits_for_every_file():
    script = capture_start_script("tcpdump", [("r-lan", ["tcpdump", "-i", "eth0", "-w", f"{CAPTURE_DIR}/r-lan.pcap",
                                                         "udp port 443 or tcp port 443"]),
                                              ("r-wan", ["tcpdump", "-i", "eth1"])])
    lines = script.splitlines()
    assert lines[0].startswith("pkill -x tcpdump") and f"rm -rf {CAPTURE_DIR}; mkdir -p {CAPTURE_DIR}" in lines[1]
    # quoted filter, detached from the exec's streams so the exec returns
    assert "'udp port 443 or tcp port 443' </dev/null >/dev/null 2>&1 &" in lines[2]
    assert lines[3].endswith("</dev/null >/dev/null 2>&1 &")
    assert f"[ -e {CAPTURE_DIR}/r-lan.pcap ] && [ -e {CAPTURE_DIR}/r-wan.pcap ]" in lines[4]
    assert "exit 1" in lines[4]  # a capturer that never made its file fails the start


def test_capture_stop_waits_for_the_capturers_to_exit_not_a_fixed_time():
    assert "pkill -INT -x tcpdump" in CAPTURE_STOP and "pgrep -x 'tcpdump|dumpcap'" in CAPTURE_STOP
    assert "sleep 0.3" not in CAPTURE_STOP


def test_the_two_decodes_partition_the_one_filter():
    full = tshark_args("c.pcapng", "k.log", [4443, 443])
    json_part, fields_part = json_args("c.pcapng", "k.log", [443, 4443]), fields_args("c.pcapng", "k.log", [443])
    base = full[full.index("-Y") + 1]
    assert json_part[json_part.index("-Y") + 1] == f"{base} && !(quic.short && !(quic.header_form == 1))"
    assert fields_part[fields_part.index("-Y") + 1] == f"{base} && quic.short && !(quic.header_form == 1)"
    assert json_part[:json_part.index("-Y")] == full[:full.index("-Y")]
    script = decode_script("c.pcapng", None, [443])
    assert script.startswith("set -e;") and "wait $j" in script and FIELDS_MARK in script


def _line(**values: str) -> str:
    return "\t".join(values.get(name.replace(".", "_"), "") for name in SHORT_FIELDS)


def test_parse_tshark_fields_one_short_header_packet_per_line():
    text = _line(frame_number="7", frame_time_epoch="1700000000.123456789", ip_src="10.0.0.1", ip_dst="10.0.0.2",
                 udp_srcport="5000", udp_dstport="443", udp_length="1208", quic_dcid="ab:cd:EF",
                 quic_packet_number="12", quic_packet_length="1200", quic_frame_type="26,0,24,24",
                 quic_path_challenge_data="01:02", quic_nci_sequence="3,4", quic_nci_connection_id="aa,bb") + "\n"
    text += _line(frame_number="8", frame_time_epoch="1700000000.2", ipv6_src="fd00::1", ipv6_dst="fd00::2",
                  udp_srcport="443", udp_dstport="5000", udp_length="50", quic_dcid="", quic_packet_length="42") + "\n"
    first, second = parse_tshark_fields(text)
    assert first == QuicPacket(frame=7, index_in_datagram=0, time=1700000000.123456789, src_ip="10.0.0.1",
                               src_port=5000, dst_ip="10.0.0.2", dst_port=443, long_header=False, packet_type="1rtt",
                               version=None, dcid="abcdef", scid="", packet_number=12, decrypted=True,
                               frame_types=(0x1A, 0x00, 0x18, 0x18), path_challenge=("0102",),
                               new_connection_id_seqs=(3, 4), udp_payload_length=1200, packet_length=1200,
                               new_connection_ids=("aa", "bb"))
    assert first.is_probing
    # not decrypted: no frame; IPv6 addresses
    assert (second.src_ip, second.decrypted, second.frame_types, second.packet_number) == ("fd00::1", False, (), None)
    assert parse_tshark_fields("") == []


def test_parse_tshark_fields_refuses_a_short_line():
    with pytest.raises(TsharkError, match="fields"):
        parse_tshark_fields("7\t1700000000.1\n")


def test_merge_keeps_capture_order_and_a_datagrams_packets_in_order():
    text = ('[{"_source": {"layers": {"frame": {"frame.number": "2", "frame.time_epoch": "1.0"},'
            ' "ip": {"ip.src": "10.0.0.1", "ip.dst": "10.0.0.2"},'
            ' "udp": {"udp.srcport": "5000", "udp.dstport": "443", "udp.length": "1208"},'
            ' "quic": {"quic.header_form": "1", "quic.version": "0x00000001", "quic.long.packet_type": "0"},'
            ' "quic": {"quic.header_form": "1", "quic.version": "0x00000001", "quic.long.packet_type": "2"}}}}]')
    long_ones = parse_tshark_json(text)
    short = parse_tshark_fields(_line(frame_number="1", frame_time_epoch="0.5", ip_src="10.0.0.2", ip_dst="10.0.0.1",
                                      udp_srcport="443", udp_dstport="5000", udp_length="30") + "\n" +
                                _line(frame_number="3", frame_time_epoch="1.5", ip_src="10.0.0.2",
                                      ip_dst="10.0.0.1", udp_srcport="443", udp_dstport="5000", udp_length="30"))
    merged = merge_packets(long_ones, short)
    assert [(p.frame, p.index_in_datagram, p.packet_type) for p in merged] == [
        (1, 0, "1rtt"), (2, 0, "initial"), (2, 1, "handshake"), (3, 0, "1rtt")]


def test_a_batch_is_judged_in_the_background_only_when_asked(monkeypatch):
    monkeypatch.delenv(background.PIPELINE_ENV, raising=False)
    assert not background.pipelining(12)  # it disturbs the playing run: never by default
    assert background.pipelining(2, asked=True) and not background.pipelining(1, asked=True)
    monkeypatch.setenv(background.PIPELINE_ENV, "1")
    assert background.pipelining(12) and not background.pipelining(1)


def test_no_prefetch_for_a_directory_that_is_no_run(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from lab.verify.judge import prefetch_client_sides

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert prefetch_client_sides(tmp_path, pool) == {}
