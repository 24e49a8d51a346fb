"""IPv4/UDP headers for the adversaries, as plain functions on bytes (no sockets)."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

UDP = 17


@dataclass(frozen=True)
class Datagram:
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes


def parse_ipv4_udp(packet: bytes) -> Datagram | None:
    """An IPv4 packet (from a SOCK_DGRAM packet socket: no link header) -> its UDP datagram, or None."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != UDP:
        return None
    ihl = (packet[0] & 0x0F) * 4
    fragment = struct.unpack("!H", packet[6:8])[0]
    if fragment & 0x1FFF or fragment & 0x2000 or len(packet) < ihl + 8:
        return None  # fragments carry no whole datagram; QUIC never fragments (DF)
    sport, dport, length = struct.unpack("!HHH", packet[ihl:ihl + 6])
    total = struct.unpack("!H", packet[2:4])[0]
    end = min(len(packet), total, ihl + length)
    return Datagram(str(ipaddress.IPv4Address(packet[12:16])), str(ipaddress.IPv4Address(packet[16:20])),
                    sport, dport, packet[ihl + 8:end])


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes, ident: int = 0) -> bytes:
    """A whole IPv4 packet (for a raw IPPROTO_RAW socket) with a correct UDP checksum.

    The source is whatever the caller says: that is the point of a spoofed datagram (§9.3.1).
    """
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    length = 8 + len(payload)
    udp = struct.pack("!HHHH", sport, dport, length, 0) + payload
    checksum = _checksum(s + d + struct.pack("!BBH", 0, UDP, length) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", checksum) + udp[8:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, ident & 0xFFFF, 0x4000, 64, UDP, 0, s, d)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + udp


def gratuitous_arp(mac: str, ip: str) -> bytes:
    """A broadcast ARP request for our own address (RFC 5227 announcement), as a whole Ethernet frame."""
    own = bytes.fromhex(mac.replace(":", ""))
    address = ipaddress.IPv4Address(ip).packed
    ethernet = b"\xff" * 6 + own + struct.pack("!H", 0x0806)
    return ethernet + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + own + address + b"\0" * 6 + address
