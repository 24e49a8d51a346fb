"""Packets tshark could not decrypt, read from the receiver's own qlog instead (pure).

Wireshark 4.0.17 fails on a few packets that their receiver decrypted (measured: a qh3 2.1.0
client's PATH_RESPONSE on a rebound path, which the aioquic server's qlog shows as received with
its frames). Such a packet is matched to the receiver's ``packet_received`` event by destination
CID and packet number, and its frames are taken from that event; the packet is then marked
``decoded_from="qlog"`` so the undecrypted check can say how many were filled and from where. A
packet nobody's qlog shows stays undecrypted: no frame is ever guessed.

A packet its receiver dropped undecrypted (``packet_dropped``, ``key_unavailable``: it came
before the keys it needs, e.g. after a lost ServerHello) is matched by length within
``DROP_MATCH_S`` of its capture time and marked ``decoded_from="dropped by receiver"``: it carried
nothing the receiver acted on, so it does not make the frame-based checks unreliable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from lab.verify.pcap import QuicPacket

# qlog frame_type names (draft-ietf-quic-qlog-quic-events) -> RFC 9000 frame types; a STREAM frame
# is 0x08 whatever its flags (the checks only ask whether data was carried).
FRAME_TYPES: dict[str, int] = {
    "padding": 0x00, "ping": 0x01, "ack": 0x02, "reset_stream": 0x04, "stop_sending": 0x05, "crypto": 0x06,
    "new_token": 0x07, "stream": 0x08, "max_data": 0x10, "max_stream_data": 0x11, "max_streams": 0x12,
    "data_blocked": 0x14, "stream_data_blocked": 0x15, "streams_blocked": 0x16, "new_connection_id": 0x18,
    "retire_connection_id": 0x19, "path_challenge": 0x1a, "path_response": 0x1b, "connection_close": 0x1c,
    "handshake_done": 0x1e, "datagram": 0x30,
}
QLOG_TYPES = {"1RTT": "1rtt", "initial": "initial", "handshake": "handshake", "0RTT": "0rtt"}

Key = tuple[str, str, int]  # (packet type, dcid, packet number)
DROPPED = "dropped by receiver"
DROP_MATCH_S = 0.05


def received_frames(events: Iterable[Mapping[str, Any]]) -> dict[Key, list[Mapping[str, Any]]]:
    """Every ``packet_received`` of a qlog, by (type, dcid, packet number), with its frames."""
    found: dict[Key, list[Mapping[str, Any]]] = {}
    for event in events:
        if not str(event.get("name", "")).endswith("packet_received"):
            continue
        data = event.get("data") or {}
        header = data.get("header") or {}
        kind = QLOG_TYPES.get(str(header.get("packet_type")))
        number = header.get("packet_number")
        if kind is None or number is None:
            continue
        found[(kind, str(header.get("dcid") or "").lower(), int(number))] = list(data.get("frames") or [])
    return found


def _filled(packet: QuicPacket, frames: list[Mapping[str, Any]]) -> QuicPacket | None:
    types = []
    for frame in frames:
        number = FRAME_TYPES.get(str(frame.get("frame_type")))
        if number is None:
            return None  # a frame this table cannot name: leave the packet undecrypted rather than guess
        types.append(number)
    def data(kind: str) -> tuple[str, ...]:
        return tuple(str(f.get("data", "")).lower() for f in frames if f.get("frame_type") == kind)
    return replace(packet, decrypted=True, frame_types=tuple(types), path_challenge=data("path_challenge"),
                   path_response=data("path_response"),
                   new_connection_id_seqs=tuple(int(f.get("sequence_number", 0)) for f in frames
                                                if f.get("frame_type") == "new_connection_id"),
                   retire_connection_id_seqs=tuple(int(f.get("sequence_number", 0)) for f in frames
                                                   if f.get("frame_type") == "retire_connection_id"),
                   decoded_from="qlog")


def fill_from_qlog(packets: list[QuicPacket], received: Mapping[Key, list[Mapping[str, Any]]]) -> list[QuicPacket]:
    """``packets`` with every undecrypted one that ``received`` (both receivers' qlogs) shows filled in."""
    out = []
    for packet in packets:
        frames = None
        if not packet.decrypted and packet.packet_number is not None:
            frames = received.get((packet.packet_type, packet.dcid, packet.packet_number))
        filled = _filled(packet, frames) if frames is not None else None
        out.append(filled or packet)
    return out


def dropped_undecrypted(events: Iterable[Mapping[str, Any]]) -> list[tuple[float, int]]:
    """(time in s, length) of every packet a qlog says its endpoint dropped for want of keys."""
    found = []
    for event in events:
        if not str(event.get("name", "")).endswith("packet_dropped"):
            continue
        data = event.get("data") or {}
        length = (data.get("raw") or {}).get("length")
        if data.get("trigger") == "key_unavailable" and length is not None and event.get("time") is not None:
            found.append((float(event["time"]) / 1000, int(length)))
    return found


def mark_dropped(packets: list[QuicPacket], dropped: list[tuple[float, int]]) -> list[QuicPacket]:
    """Undecrypted packets matching a receiver's drop (same length, within DROP_MATCH_S), marked."""
    left = list(dropped)
    out = []
    for packet in packets:
        if not packet.decrypted and packet.decoded_from == "capture":
            match = next((d for d in left if d[1] == packet.packet_length and abs(d[0] - packet.time) <= DROP_MATCH_S),
                         None)
            if match is not None:
                left.remove(match)
                packet = replace(packet, decoded_from=DROPPED)
        out.append(packet)
    return out
