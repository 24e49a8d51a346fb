"""Packets tshark could not decrypt, filled from the receiver's qlog (pure), never guessed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lab.verify.capture_checks import undecrypted
from lab.verify.pcap import packets_from_json
from lab.verify.qlog_fill import fill_from_qlog, received_frames

DATA = Path(__file__).resolve().parents[1] / "data" / "conformance"


def a_response():
    packets = packets_from_json((DATA / "run-nat-rebinding.jsonl").read_text())
    index = next(i for i, p in enumerate(packets) if p.path_response)
    return packets, index


def qlog_event(packet, frames):
    return {"name": "transport:packet_received", "data": {
        "header": {"packet_type": "1RTT", "packet_number": packet.packet_number, "dcid": packet.dcid},
        "frames": frames}}


def test_an_undecrypted_packet_is_read_from_the_receivers_qlog():
    packets, i = a_response()
    real = packets[i]
    blind = packets[:i] + [replace(real, decrypted=False, frame_types=(), path_response=())] + packets[i + 1:]
    assert not undecrypted(blind).passed
    frames = [{"frame_type": "path_response", "data": real.path_response[0]}, {"frame_type": "padding"}]
    filled = fill_from_qlog(blind, received_frames([qlog_event(real, frames)]))
    assert filled[i].decrypted and filled[i].decoded_from == "qlog"
    assert filled[i].path_response == real.path_response and filled[i].frame_types == (0x1b, 0x00)
    check = undecrypted(filled)
    assert check.passed and "receiver's qlog" in check.observed


def test_nothing_is_guessed():
    packets, i = a_response()
    real = packets[i]
    blind = packets[:i] + [replace(real, decrypted=False, frame_types=())] + packets[i + 1:]
    other = replace(real, packet_number=(real.packet_number or 0) + 100000)
    assert not fill_from_qlog(blind, received_frames([qlog_event(other, [])]))[i].decrypted  # another packet
    unknown = [{"frame_type": "mystery"}]
    assert not fill_from_qlog(blind, received_frames([qlog_event(real, unknown)]))[i].decrypted


def test_a_packet_its_receiver_dropped_for_want_of_keys_is_reported_not_counted():
    from lab.verify.qlog_fill import DROPPED, dropped_undecrypted, mark_dropped

    packets, i = a_response()
    real = packets[i]
    blind = packets[:i] + [replace(real, decrypted=False, frame_types=(), path_response=())] + packets[i + 1:]
    drop = {"name": "transport:packet_dropped", "time": real.time * 1000 + 5,
            "data": {"trigger": "key_unavailable", "raw": {"length": real.packet_length}}}
    marked = mark_dropped(blind, dropped_undecrypted([drop]))
    assert marked[i].decoded_from == DROPPED and not marked[i].decrypted
    check = undecrypted(marked)
    assert check.passed and "dropped undecrypted" in check.observed
    for wrong in ({**drop, "time": real.time * 1000 + 500},  # too far in time
                  {**drop, "data": {"trigger": "key_unavailable", "raw": {"length": real.packet_length + 1}}},
                  {**drop, "data": {"trigger": "unknown_connection_id", "raw": {"length": real.packet_length}}}):
        assert not undecrypted(mark_dropped(blind, dropped_undecrypted([wrong]))).passed
