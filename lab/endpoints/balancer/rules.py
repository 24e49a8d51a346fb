"""The balancer's iptables rules, as data (pure): 4-tuple hash, or QUIC-LB CID routing with the hash as fallback.

The nat table sees only the first packet of a conntrack flow; its DNAT then sticks to the flow.
So every new 4-tuple (a client's first Initial, a NAT rebinding, a handoff) is a fresh decision:

- ``hash``: ``HMARK`` (mangle) marks the packet with a hash of (src, dst, sport, dport, proto)
  mod N, and a DNAT per mark sends it to backend K. A rebound client is a new tuple, so it lands
  wherever the hash says, often on a replica that has never seen the connection.
- ``cid``: ``-m u32`` reads the plaintext server ID from the packet's DCID (QUIC-LB) and DNATs
  to that replica; a DCID no server issued (the client's first Initial, another config) falls
  through to the hash, as the draft's mandatory fallback does.

u32 offsets (IPv4; ``0>>22&0x3C@`` jumps over the IP header to the UDP header, +8 is the payload):

- short header: payload byte 0 ``0b01xxxxxx`` (header form 0, fixed bit 1), the DCID starts at
  payload byte 1, so its first octet is byte 1 and a one-octet server ID is byte 2: one masked
  word ``@8 & 0xC0E0FF00 = 0x40 | config<<5 | SID``.
- long header: payload byte 0 ``0b1xxxxxxx``, bytes 1-4 the version, byte 5 the DCID length
  (2-20 here: it must hold the ID), the DCID from byte 6: first octet byte 6, server ID byte 7.
Only non-fragments (``4&0x3FFF=0``): a later fragment has no UDP header to read.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.endpoints.quic.quic_lb import LbConfig

MODES = ("hash", "cid")
CHAIN = "LAB-LB"  # the balancer's own chain in nat and mangle: flushed and rebuilt on every mode change
_UDP_PAYLOAD = "0>>22&0x3C@"  # u32: from the IPv4 header's length to the UDP header
_NOT_FRAGMENT = "4&0x3FFF=0"


@dataclass(frozen=True)
class Backend:
    name: str
    address: str
    server_id: int
    unicast: str = ""  # its own address outside the balancer (its preferred address), if it has one


@dataclass(frozen=True)
class Balancer:
    vip: str
    port: int
    backends: tuple[Backend, ...]
    seed: int = 0x51C0FFEE  # HMARK's --hmark-rnd: fixed, so one tuple always hashes alike
    lb: LbConfig = LbConfig()
    preferred_port: int | None = None  # balanced like ``port``; the replicas advertise their own address on it

    def __post_init__(self) -> None:
        if not self.backends:
            raise ValueError("a balancer needs at least one backend")
        if self.lb.server_id_length != 1:
            raise ValueError("the u32 rules read a one-octet server ID")
        ids = [b.server_id for b in self.backends]
        if len(set(ids)) != len(ids):
            raise ValueError(f"server IDs {ids} are not distinct")


def u32_short_header(lb: LbConfig, server_id: int) -> str:
    value = 0x40000000 | (lb.config_id << 21) | (server_id << 8)
    return f"{_NOT_FRAGMENT}&&{_UDP_PAYLOAD}8&0xC0E0FF00=0x{value:08X}"


def u32_long_header(lb: LbConfig, server_id: int) -> str:
    # @12 is payload bytes 4-7: version's last octet, DCID length, DCID octets 0 and 1.
    value = (lb.config_id << 13) | server_id
    return (f"{_NOT_FRAGMENT}&&{_UDP_PAYLOAD}8>>24&0x80=0x80&&{_UDP_PAYLOAD}12>>16&0xFF=0x2:0x14"
            f"&&{_UDP_PAYLOAD}12&0xE0FF=0x{value:04X}")


def commands(balancer: Balancer, mode: str) -> list[list[str]]:
    """iptables argument lists (after ``iptables -w``) that replace the balancer's rules with ``mode``'s."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
    match = ["-d", balancer.vip, "-p", "udp", "--dport", str(balancer.port)]
    if balancer.preferred_port:
        match = ["-d", balancer.vip, "-p", "udp", "-m", "multiport", "--dports",
                 f"{balancer.port},{balancer.preferred_port}"]
    out: list[list[str]] = []
    for table in ("mangle", "nat"):
        out += [["-t", table, "-N", CHAIN], ["-t", table, "-F", CHAIN]]
    n = len(balancer.backends)
    out.append(["-t", "mangle", "-A", CHAIN, *match, "-j", "HMARK", "--hmark-tuple", "src,dst,sport,dport",
                "--hmark-mod", str(n), "--hmark-offset", "1", "--hmark-rnd", f"0x{balancer.seed:08x}"])
    if mode == "cid":
        for backend in balancer.backends:
            for expression in (u32_short_header(balancer.lb, backend.server_id),
                               u32_long_header(balancer.lb, backend.server_id)):
                out.append(["-t", "nat", "-A", CHAIN, *match, "-m", "u32", "--u32", expression,
                            "-j", "DNAT", "--to-destination", backend.address])
    for mark, backend in enumerate(balancer.backends, start=1):
        out.append(["-t", "nat", "-A", CHAIN, *match, "-m", "mark", "--mark", str(mark),
                    "-j", "DNAT", "--to-destination", backend.address])
    return out


def hooks(balancer: Balancer) -> list[list[str]]:
    """The jumps from the built-in chains into the balancer's (added once; ``-C`` tests for them)."""
    return [["-t", "mangle", "PREROUTING", "-j", CHAIN], ["-t", "nat", "PREROUTING", "-j", CHAIN]]


def backend_for(balancer: Balancer, address: str) -> Backend | None:
    return next((b for b in balancer.backends if b.address == address), None)
