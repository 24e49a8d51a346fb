"""QUIC-LB plaintext CIDs and the balancer's iptables rules, on real QUIC packets.

The u32 expressions are evaluated here by a small interpreter of xt_u32's language (read a
big-endian word at an offset, ``& << >>``, ``@`` to jump, ``=a:b`` ranges, ``&&``) on IPv4/UDP
packets around datagrams that aioquic itself built: a client's Initial, then the short-header
packets it sends to a server whose CIDs were minted with a server ID. The integration test
(tests/integration/test_farm.py) shows the kernel routing the same way.
"""

from __future__ import annotations

import re
import struct

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from lab.certs import make_certificates
from lab.endpoints.balancer.lb import parse_backends
from lab.endpoints.balancer.rules import Backend, Balancer, commands, u32_long_header, u32_short_header
from lab.endpoints.quic import aioquic_seam as seam
from lab.endpoints.quic.quic_lb import LbConfig, encode, mint, server_id_of


def u32_matches(expression: str, packet: bytes) -> bool:
    """xt_u32 semantics (iptables-extensions(8)); a read past the packet's end does not match."""
    for test in expression.split("&&"):
        location, ranges = test.split("=")
        tokens = re.findall(r"[&@]|<<|>>|0x[0-9A-Fa-f]+|\d+", location)
        base, value, i = 0, None, 0
        value_at = int(tokens[0], 0)
        if base + value_at + 4 > len(packet):
            return False
        value = struct.unpack_from("!I", packet, base + value_at)[0]
        i = 1
        while i < len(tokens):
            op, number = tokens[i], int(tokens[i + 1], 0)
            if op == "&":
                value &= number
            elif op == "<<":
                value = (value << number) & 0xFFFFFFFF
            elif op == ">>":
                value >>= number
            else:  # @: jump by the value, read the word at +number
                base += value
                if base + number + 4 > len(packet):
                    return False
                value = struct.unpack_from("!I", packet, base + number)[0]
            i += 2
        if not any(int(lo, 0) <= value <= int((hi or lo), 0)
                   for lo, _, hi in (r.partition(":") for r in ranges.split(","))):
            return False
    return True


def ipv4_udp(payload: bytes, ihl: int = 5, fragment: int = 0) -> bytes:
    options = bytes(4 * (ihl - 5))
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + 8 + len(payload), 1, fragment, 64, 17, 0,
                     bytes([10, 203, 100, 21]), bytes([10, 203, 100, 30])) + options
    return ip + struct.pack("!HHHH", 40000, 443, 8 + len(payload), 0) + payload


LB = LbConfig()
CERTS = make_certificates(("localhost",), ("127.0.0.1",))


def test_cid_layout_round_trip_and_refusals() -> None:
    cid = encode(LB, 2, bytes(range(6)))
    assert cid == bytes([0x07, 0x02, 0, 1, 2, 3, 4, 5])  # config 0, length 8 self-encoded, server ID 2
    assert server_id_of(LB, cid) == 2
    assert server_id_of(LbConfig(config_id=1), cid) is None  # another config rotation: unroutable
    assert server_id_of(LB, bytes([0xE7, 2, 0, 0])) is None  # 0b111: unroutable
    assert server_id_of(LB, b"\x07") is None
    minted = mint(LB, 9)
    first, second = minted(), minted()
    assert first != second and server_id_of(LB, first) == server_id_of(LB, second) == 9
    with pytest.raises(ValueError):
        mint(LB, 256)
    with pytest.raises(ValueError):
        LbConfig(config_id=7)
    with pytest.raises(ValueError):
        LbConfig(nonce_length=3)


def client_and_server(server_id: int) -> tuple[QuicConnection, QuicConnection, list[bytes]]:
    """A client's Initial datagram, then the server's (minted) CIDs as the client's next DCIDs."""
    client = QuicConnection(configuration=QuicConfiguration(is_client=True, alpn_protocols=["quic-lab"]))
    client.connect(("10.203.100.30", 443), now=0.0)
    initial = client.datagrams_to_send(now=0.0)
    configuration = QuicConfiguration(is_client=False, alpn_protocols=["quic-lab"])
    configuration.certificate, configuration.private_key = CERTS.cert, CERTS.key
    server = QuicConnection(configuration=configuration,
                            original_destination_connection_id=client.original_destination_connection_id)
    seam.mint_host_cids(server, mint(LB, server_id))
    return client, server, [d for d, _ in initial]


def short_header(dcid: bytes) -> bytes:
    return bytes([0x43]) + dcid + bytes(20)  # 0b01..: short header, fixed bit; packet number and payload


@pytest.mark.parametrize("server_id", [1, 2, 0xAB])
def test_the_short_header_rule_matches_its_server_id_only(server_id: int) -> None:
    _, server, _ = client_and_server(server_id)
    packet = ipv4_udp(short_header(server.host_cid))
    assert u32_matches(u32_short_header(LB, server_id), packet)
    assert not u32_matches(u32_short_header(LB, (server_id + 1) % 256), packet)
    assert u32_matches(u32_short_header(LB, server_id), ipv4_udp(short_header(server.host_cid), ihl=7))
    assert not u32_matches(u32_short_header(LB, server_id), ipv4_udp(short_header(server.host_cid), fragment=185))
    assert not u32_matches(u32_long_header(LB, server_id), packet)
    unroutable = bytes([0xE7]) + server.host_cid[1:]
    assert not u32_matches(u32_short_header(LB, server_id), ipv4_udp(short_header(unroutable)))


def test_the_long_header_rule_reads_the_dcid_after_the_version_and_length() -> None:
    client, server, initials = client_and_server(2)
    dcid = client.original_destination_connection_id
    packet = ipv4_udp(initials[0])
    expected = server_id_of(LB, dcid)  # a random Initial DCID: routable only by chance
    for sid in (1, 2):
        assert u32_matches(u32_long_header(LB, sid), packet) == (expected == sid)
        assert not u32_matches(u32_short_header(LB, sid), packet)
    # A long header to a minted CID (the client's Handshake packets): version 1, DCID length 8.
    handshake = bytes([0xE0]) + struct.pack("!I", 1) + bytes([8]) + server.host_cid + bytes([8]) + bytes(30)
    assert u32_matches(u32_long_header(LB, 2), ipv4_udp(handshake))
    assert not u32_matches(u32_long_header(LB, 1), ipv4_udp(handshake))
    assert not u32_matches(u32_long_header(LB, 2), ipv4_udp(handshake[:5] + bytes([1]) + handshake[6:]))


BALANCER = Balancer("10.203.100.30", 443, (Backend("replica-1", "10.203.210.11", 1),
                                           Backend("replica-2", "10.203.210.12", 2)))


def test_hash_mode_is_one_hmark_and_a_dnat_per_mark() -> None:
    rules = [r for r in commands(BALANCER, "hash") if "-A" in r]
    assert [r[r.index("-j") + 1] for r in rules] == ["HMARK", "DNAT", "DNAT"]
    hmark = rules[0]
    assert hmark[hmark.index("--hmark-tuple") + 1] == "src,dst,sport,dport"
    assert hmark[hmark.index("--hmark-mod") + 1] == "2" and hmark[hmark.index("--hmark-offset") + 1] == "1"
    assert [(r[r.index("--mark") + 1], r[-1]) for r in rules[1:]] == [("1", "10.203.210.11"), ("2", "10.203.210.12")]
    assert not any("u32" in r for r in rules)


def test_cid_mode_routes_by_server_id_before_the_hash_fallback() -> None:
    rules = [r for r in commands(BALANCER, "cid") if "-A" in r and r[1] == "nat"]
    u32 = [r for r in rules if "u32" in r]
    assert len(u32) == 4 and rules[:4] == u32  # every server-ID rule comes before the fallback
    assert [r[-1] for r in u32] == ["10.203.210.11"] * 2 + ["10.203.210.12"] * 2
    assert [r[r.index("--mark") + 1] for r in rules[4:]] == ["1", "2"]


def test_bad_balancers_and_the_backend_list_from_the_environment() -> None:
    assert parse_backends("replica-1=10.203.210.11=1 replica-2=10.203.210.12=0x2") == BALANCER.backends
    with pytest.raises(ValueError):
        Balancer("10.203.100.30", 443, (Backend("a", "10.0.0.1", 1), Backend("b", "10.0.0.2", 1)))
    with pytest.raises(ValueError):
        Balancer("10.203.100.30", 443, ())
    with pytest.raises(ValueError):
        commands(BALANCER, "round-robin")


def test_the_farm_is_read_from_compose_and_the_balancer_table_parsed() -> None:
    from lab.control.farm import Flow, parse_flows
    from lab.topology.farm import farm_from_config
    from lab.topology.model import TopologyError

    spec = {"address": "10.203.100.30", "port": 443, "balancer": {"service": "balancer", "address": "10.203.210.2"},
            "replicas": {"replica-1": {"address": "10.203.210.11", "server_id": 1},
                         "replica-2": {"address": "10.203.210.12", "server_id": 2}}}
    farm = farm_from_config({"x-lab": {"farm": spec}})
    assert farm is not None and farm.as_balancer() == BALANCER
    assert farm.services == ("balancer", "replica-1", "replica-2")
    assert farm_from_config({"x-lab": {}}) is None
    with pytest.raises(TopologyError):
        farm_from_config({"x-lab": {"farm": {**spec, "replicas": {"a": {"address": "10.0.0.1", "server_id": 1},
                                                                   "b": {"address": "10.0.0.2", "server_id": 1}}}}})
    table = ("udp      17 118 src=10.203.100.21 dst=10.203.100.30 sport=61624 dport=443 "
             "src=10.203.210.12 dst=10.203.100.21 sport=443 dport=61624 [ASSURED] mark=2 use=1\n"
             "udp      17 29 src=10.203.100.21 dst=10.203.100.30 sport=5000 dport=53 [UNREPLIED] "
             "src=10.203.100.30 dst=10.203.100.21 sport=53 dport=5000 mark=0 use=1\n"
             "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.\n")
    assert parse_flows(table, farm) == [Flow("10.203.100.21:61624", "10.203.210.12")]


def test_the_farm_address_is_validated_with_the_internet_network() -> None:
    import copy
    import json
    from pathlib import Path

    from lab.topology.model import topology_from_config, validate

    config = json.loads((Path(__file__).resolve().parents[1] / "data" / "runs" / "recorded-rebinding" /
                         "topology.json").read_text())
    spec = {"address": "10.203.100.30", "port": 443, "balancer": {"service": "balancer", "address": "10.203.210.2"},
            "replicas": {"replica-1": {"address": "10.203.210.11", "server_id": 1}}}
    good = copy.deepcopy(config)
    good["x-lab"]["farm"] = spec
    assert validate(topology_from_config(good)) == []
    clash = copy.deepcopy(good)
    clash["x-lab"]["farm"]["address"] = clash["x-lab"]["server"]["address"]
    assert any("is given to 2 hosts" in p and "x-lab.farm.address" in p for p in validate(topology_from_config(clash)))
    outside = copy.deepcopy(good)
    outside["x-lab"]["farm"]["address"] = "10.203.99.30"
    assert any(p.startswith("x-lab.farm.address: 10.203.99.30") for p in validate(topology_from_config(outside)))
