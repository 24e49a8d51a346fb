"""``lab.endpoints.quic.aioquic_seam`` on two in-memory QuicConnections, in aioquic's own test style.

A client and a server ``QuicConnection`` pass datagrams to each other (``Pair.transfer`` and
``Pair.roundtrip``, as ``transfer``/``roundtrip`` in aioquic's ``tests/test_connection.py``): no
socket, a fake clock, an event loop only where an asyncio protocol needs one. Each test exercises
seam functions against the installed aioquic, so an aioquic upgrade that moves an internal fails
on the test of the function that uses it; the last test keeps every other module of ``lab/`` off
aioquic's private attributes.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import os
from collections import deque
from pathlib import Path
from typing import Any

import aioquic
import pytest
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.buffer import Buffer
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.congestion.base import create_congestion_control
from aioquic.quic.connection import NetworkAddress, QuicConnection, QuicConnectionId
from aioquic.quic.logger import QuicLogger
from aioquic.quic.packet import QuicPreferredAddress, pull_quic_transport_parameters, push_quic_transport_parameters

from lab.certs import Certificates, make_certificates
from lab.endpoints.quic import aioquic_seam as seam
from lab.endpoints.quic.preferred import advertise_preferred_address

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ADDR = ("1.2.3.4", 1234)
CLIENT_ADDR_REBOUND = ("1.2.3.4", 2345)  # the same client after a NAT rebinding: a new port
SERVER_ADDR = ("2.3.4.5", 4433)
PREFERRED_ADDR = ("2.3.4.6", 4434)
ALPN = "quic-lab"


@pytest.fixture(scope="module")
def certificates() -> Certificates:
    return make_certificates(("localhost",), ("127.0.0.1",))


def client_configuration(certificates: Certificates, **kwargs: Any) -> QuicConfiguration:
    configuration = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], server_name="localhost", **kwargs)
    configuration.load_verify_locations(cadata=certificates.ca_pem)
    return configuration


def server_configuration(certificates: Certificates, **kwargs: Any) -> QuicConfiguration:
    configuration = QuicConfiguration(is_client=False, alpn_protocols=[ALPN], **kwargs)
    configuration.certificate = certificates.cert
    configuration.certificate_chain = [certificates.ca]
    configuration.private_key = certificates.key
    return configuration


class Pair:
    """A client and a server connection joined by a lossless in-memory network.

    The client sends from ``client_addr``; the server's datagrams reach the client only when
    addressed to ``client_addr`` (a datagram to an old NAT binding is lost), and come from the
    address the client currently sends to.
    """

    def __init__(self, certificates: Certificates, *, server_logger: QuicLogger | None = None,
                 client_logger: QuicLogger | None = None) -> None:
        self.client = QuicConnection(configuration=client_configuration(certificates, quic_logger=client_logger))
        self.server = QuicConnection(
            configuration=server_configuration(certificates, quic_logger=server_logger),
            original_destination_connection_id=self.client.original_destination_connection_id)
        self.client_addr: NetworkAddress = CLIENT_ADDR
        self.now = 1.0

    def tick(self) -> float:
        self.now += 0.005
        return self.now

    def transfer(self, sender: QuicConnection, receiver: QuicConnection) -> int:
        """Deliver what ``sender`` has to send; returns how many datagrams it sent."""
        sent = 0
        for data, addr in sender.datagrams_to_send(now=self.tick()):
            sent += 1
            if sender is self.client:
                receiver.receive_datagram(data, self.client_addr, now=self.tick())
            elif addr == self.client_addr:
                receiver.receive_datagram(data, self.client.get_peer_address() or SERVER_ADDR, now=self.tick())
        return sent

    def roundtrip(self) -> tuple[int, int]:
        return self.transfer(self.client, self.server), self.transfer(self.server, self.client)

    def settle(self, rounds: int = 12) -> None:
        """Exchange datagrams until neither side has anything to send."""
        for _ in range(rounds):
            if self.roundtrip() == (0, 0):
                return
        raise AssertionError(f"still sending after {rounds} round trips")

    def handshake(self) -> None:
        self.client.connect(SERVER_ADDR, now=self.tick())
        self.settle()
        assert any(isinstance(e, events.HandshakeCompleted) for e in drain(self.client))


def drain(quic: QuicConnection) -> list[events.QuicEvent]:
    found = []
    while (event := quic.next_event()) is not None:
        found.append(event)
    return found


def with_preferred_address(encoded: bytes, preferred: QuicPreferredAddress) -> bytes:
    params = pull_quic_transport_parameters(Buffer(data=encoded))
    params.preferred_address = preferred
    buf = Buffer(capacity=4096)
    push_quic_transport_parameters(buf, params)
    return buf.data


# --- version --------------------------------------------------------------------------------


def test_the_pinned_version_is_the_installed_one() -> None:
    assert aioquic.__version__ == seam.AIOQUIC_VERSION
    seam.check_version(seam.AIOQUIC_VERSION)


def test_another_aioquic_version_fails_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioquic, "__version__", "1.8.0")
    try:
        with pytest.raises(RuntimeError) as raised:
            importlib.reload(seam)
        assert type(raised.value).__name__ == "AioquicVersionError"
        assert "aioquic 1.7.2 exactly" in str(raised.value) and "found aioquic 1.8.0" in str(raised.value)
    finally:
        monkeypatch.undo()
        importlib.reload(seam)


# --- connection IDs -------------------------------------------------------------------------


def test_peer_and_host_cids_after_the_handshake(certificates: Certificates) -> None:
    pair = Pair(certificates)
    pair.handshake()
    assert seam.peer_cid(pair.client) == pair.server.host_cid
    assert seam.peer_cid(pair.server) == pair.client.host_cid
    assert pair.server.host_cid in seam.host_cids(pair.server)
    assert len(seam.host_cids(pair.server)) == 8  # aioquic keeps min(8, peer limit) CIDs issued
    assert seam.spare_peer_cid_count(pair.client) == 7

    old = seam.peer_cid(pair.client)
    pair.client.change_connection_id()
    assert seam.peer_cid(pair.client) != old
    assert seam.spare_peer_cid_count(pair.client) == 6
    pair.settle()
    assert seam.peer_cid(pair.client) in seam.host_cids(pair.server)


def test_add_host_cid_continues_the_sequence(certificates: Certificates) -> None:
    logger = QuicLogger()
    pair = Pair(certificates, server_logger=logger)
    assert seam.next_host_cid_sequence(pair.server) == 1
    cid = QuicConnectionId(cid=os.urandom(8), sequence_number=1, stateless_reset_token=os.urandom(16), was_sent=True)
    seam.add_host_cid(pair.server, cid)
    assert seam.next_host_cid_sequence(pair.server) == 2
    assert cid.cid in seam.host_cids(pair.server)

    pair.handshake()
    issued = [frame["sequence_number"] for event in logger.to_dict()["traces"][0]["events"]
              if event["name"] == "transport:packet_sent"
              for frame in event["data"].get("frames", []) if frame["frame_type"] == "new_connection_id"]
    assert issued == list(range(2, 8))  # 0 is the handshake's, 1 the one added by hand
    assert cid.cid in seam.host_cids(pair.server)


def test_minted_host_cids_carry_the_server_id_through_handshake_rotation_and_rebinding(
        certificates: Certificates) -> None:
    from lab.endpoints.quic.quic_lb import LbConfig, mint, server_id_of

    lb = LbConfig()
    pair = Pair(certificates)
    seam.mint_host_cids(pair.server, mint(lb, 7))
    pair.handshake()
    cids = seam.host_cids(pair.server)
    assert len(cids) == 8 and {server_id_of(lb, cid) for cid in cids} == {7}
    issued = [e.connection_id for e in drain(pair.server) if isinstance(e, events.ConnectionIdIssued)]
    assert len(issued) == 7 and set(issued) <= cids  # the frames carried the minted CIDs, not os.urandom's
    assert server_id_of(lb, seam.peer_cid(pair.client)) == 7

    # The client rotates and rebinds: the server still recognises the packets (same connection).
    pair.client.change_connection_id()
    pair.client_addr = CLIENT_ADDR_REBOUND
    pair.client.send_ping(1)
    pair.settle()
    assert server_id_of(lb, seam.peer_cid(pair.client)) == 7
    assert pair.server.get_peer_address() == CLIENT_ADDR_REBOUND
    assert {server_id_of(lb, cid) for cid in seam.host_cids(pair.server)} == {7}  # replenished after retire


def test_minting_refuses_a_connection_that_issued_cids_and_a_length_aioquic_cannot_parse(
        certificates: Certificates) -> None:
    pair = Pair(certificates)
    with pytest.raises(ValueError, match="aioquic expects 8"):
        seam.mint_host_cids(pair.server, lambda: b"short")
    pair.handshake()
    with pytest.raises(RuntimeError, match="already issued"):
        seam.mint_host_cids(pair.server, lambda: os.urandom(8))


# --- transport parameters -------------------------------------------------------------------


def test_rewritten_transport_parameters_reach_the_client(certificates: Certificates) -> None:
    pair = Pair(certificates)
    cid = QuicConnectionId(cid=os.urandom(8), sequence_number=1, stateless_reset_token=os.urandom(16), was_sent=True)
    seam.add_host_cid(pair.server, cid)
    preferred = QuicPreferredAddress(ipv4_address=PREFERRED_ADDR, ipv6_address=None, connection_id=cid.cid,
                                     stateless_reset_token=cid.stateless_reset_token)
    seen: list[bytes] = []

    def rewrite(encoded: bytes) -> bytes:
        seen.append(encoded)
        return with_preferred_address(encoded, preferred)

    seam.rewrite_transport_parameters(pair.server, rewrite)
    pair.handshake()
    assert len(seen) == 1 and pull_quic_transport_parameters(Buffer(data=seen[0])).preferred_address is None
    # The client saw the parameter: aioquic's client validates the preferred address and moves there.
    assert pair.client.get_peer_address() == PREFERRED_ADDR
    assert seam.peer_cid(pair.client) == cid.cid


def test_advertise_preferred_address_through_the_seam(certificates: Certificates) -> None:
    logger = QuicLogger()
    pair = Pair(certificates, server_logger=logger)
    registered: list[bytes] = []
    cid = advertise_preferred_address(pair.server, *PREFERRED_ADDR, register_cid=registered.append)
    assert registered == [cid] and cid in seam.host_cids(pair.server)
    probing: list[bool] = []
    challenges: list[int] = []
    responses: list[tuple[NetworkAddress, bytes]] = []
    seam.on_packet_payload(pair.server, probing.append)
    seam.on_path_challenge(pair.server, lambda: challenges.append(1))
    seam.on_path_response(pair.client, lambda peer, data: responses.append((peer, data)))

    pair.handshake()
    assert pair.client.get_peer_address() == PREFERRED_ADDR
    assert seam.peer_cid(pair.client) == cid
    assert True in probing and False in probing  # the PATH_CHALLENGE alone is a probing packet
    assert challenges  # the client challenged the preferred address
    assert responses and all(len(data) == 8 for _, data in responses)
    parameters = [e["data"] for e in logger.to_dict()["traces"][0]["events"] if e["name"] == "transport:parameters_set"
                  and "preferred_address" in e["data"]]
    assert parameters[0]["preferred_address"]["port_v4"] == PREFERRED_ADDR[1]


# --- paths and hooks ------------------------------------------------------------------------


def test_a_rebinding_through_the_hooks(certificates: Certificates) -> None:
    pair = Pair(certificates)
    pair.handshake()
    received_from: list[NetworkAddress] = []
    after_receive: list[int] = []
    after_send: list[int] = []
    server_responses: list[tuple[NetworkAddress, bytes]] = []
    client_challenges: list[int] = []
    seam.on_receive_datagram(pair.server, received_from.append, lambda: after_receive.append(1))
    seam.on_datagrams_to_send(pair.server, lambda: after_send.append(len(seam.network_paths(pair.server))))
    seam.on_path_response(pair.server, lambda peer, data: server_responses.append((peer, data)))
    seam.on_path_challenge(pair.client, lambda: client_challenges.append(1))
    assert [p.addr for p in seam.network_paths(pair.server)] == [CLIENT_ADDR]

    pair.client_addr = CLIENT_ADDR_REBOUND
    pair.client.send_ping(1)
    assert pair.transfer(pair.client, pair.server) == 1
    assert received_from == [CLIENT_ADDR_REBOUND] and after_receive == [1]
    paths = seam.network_paths(pair.server)
    assert [p.addr for p in paths] == [CLIENT_ADDR_REBOUND, CLIENT_ADDR]  # promoted: a non-probing packet
    assert not paths[0].is_validated

    pair.transfer(pair.server, pair.client)
    assert after_send and paths[0].local_challenges
    challenge = paths[0].local_challenges[-1]
    assert client_challenges
    pair.settle()
    assert server_responses == [(CLIENT_ADDR_REBOUND, challenge)]
    assert seam.network_paths(pair.server)[0].is_validated
    assert seam.network_paths(pair.server) is seam.network_paths(pair.server)  # the live list, not a copy


# --- recovery and streams -------------------------------------------------------------------


def test_reset_recovery_and_release_packets_in_flight(certificates: Certificates) -> None:
    pair = Pair(certificates)
    pair.handshake()
    stream_id = pair.client.get_next_available_stream_id()
    pair.client.send_stream_data(stream_id, b"request", end_stream=False)
    pair.settle()
    for _ in range(20):
        pair.server.send_stream_data(stream_id, os.urandom(4000))
        pair.settle()
    initial = create_congestion_control(pair.server.configuration.congestion_control_algorithm,
                                        max_datagram_size=seam.max_datagram_size(pair.server)).congestion_window
    assert seam.smoothed_rtt(pair.server) is not None
    assert seam.congestion_window(pair.server) > initial  # slow start grew it

    pair.server.send_stream_data(stream_id, os.urandom(3000))
    assert pair.server.datagrams_to_send(now=pair.tick())  # sent, lost: in flight
    assert seam.bytes_in_flight(pair.server) > 0
    seam.release_packets_in_flight(pair.server)
    assert seam.bytes_in_flight(pair.server) == 0

    seam.reset_recovery(pair.server)
    assert seam.congestion_window(pair.server) == initial
    assert seam.smoothed_rtt(pair.server) is None
    assert seam.bytes_in_flight(pair.server) == 0
    pair.server.send_stream_data(stream_id, b"after", end_stream=True)
    pair.settle()  # the lost data is still detected and retransmitted; the connection carries on
    assert seam.smoothed_rtt(pair.server) is not None
    assert seam.stream_unacked_bytes(pair.server, stream_id) == 0
    received = b"".join(e.data for e in drain(pair.client) if isinstance(e, events.StreamDataReceived))
    assert received.endswith(b"after")


def test_stream_unacked_bytes(certificates: Certificates) -> None:
    pair = Pair(certificates)
    pair.handshake()
    stream_id = pair.client.get_next_available_stream_id()
    assert seam.stream_unacked_bytes(pair.client, stream_id) == 0  # no such stream yet
    pair.client.send_stream_data(stream_id, b"x" * 1000)
    assert seam.stream_unacked_bytes(pair.client, stream_id) == 1000
    pair.transfer(pair.client, pair.server)
    assert seam.stream_unacked_bytes(pair.client, stream_id) == 1000  # sent, not acknowledged
    pair.settle()
    assert seam.stream_unacked_bytes(pair.client, stream_id) == 0


def test_limits_and_state(certificates: Certificates) -> None:
    pair = Pair(certificates)
    assert seam.max_datagram_size(pair.client) == pair.client.configuration.max_datagram_size
    pair.handshake()
    assert not seam.is_terminated(pair.client)
    pair.client.close(reason_phrase="done")
    assert not seam.is_terminated(pair.client)  # closing starts when CONNECTION_CLOSE is sent
    pair.transfer(pair.client, pair.server)
    assert seam.is_terminated(pair.client) and seam.is_terminated(pair.server)


# --- qlog -----------------------------------------------------------------------------------


def test_qlog_trace_accessors(certificates: Certificates) -> None:
    assert seam.qlog_trace(Pair(certificates).client) is None
    logger = QuicLogger()
    pair = Pair(certificates, client_logger=logger)
    trace = seam.qlog_trace(pair.client)
    assert trace is not None and list(seam.logger_traces(logger)) == [trace]
    assert seam.trace_odcid(trace) == pair.client.original_destination_connection_id
    pair.handshake()
    before = len(seam.trace_events(trace))
    trace.log_event(category="connectivity", event="path_updated", data={"lab_event": "test"})
    assert len(seam.trace_events(trace)) == before + 1
    assert seam.trace_events(trace)[-1]["name"] == "connectivity:path_updated"
    seam.forget_trace(logger, trace)
    assert list(seam.logger_traces(logger)) == []


def test_drain_takes_the_events_out_of_the_trace(certificates: Certificates) -> None:
    logger = QuicLogger()
    pair = Pair(certificates, client_logger=logger)
    trace = seam.qlog_trace(pair.client)
    pair.handshake()
    logged = len(seam.trace_events(trace))
    drained = seam.drain_trace_events(trace)
    assert len(drained) == logged > 0 and len(seam.trace_events(trace)) == 0


def test_incremental_qlog_streams_a_valid_file_and_keeps_no_events(certificates: Certificates, tmp_path) -> None:
    import json

    from lab.endpoints.quic.telemetry import IncrementalQlog

    logger = IncrementalQlog(tmp_path, "client")
    pair = Pair(certificates, client_logger=logger)
    trace = seam.qlog_trace(pair.client)
    path = logger.path_for(seam.trace_odcid(trace))
    counts = []
    for step in range(3):  # a file after each flush, growing in place, valid JSON every time
        if step:
            trace.log_event(category="connectivity", event="path_updated", data={"step": step})
        else:
            pair.handshake()
        logger.flush()
        assert len(seam.trace_events(trace)) == 0  # nothing kept in the trace: handed over for encoding
        logger.drain()
        counts.append(len(json.loads(path.read_text())["traces"][0]["events"]))
    assert counts[0] > 0 and counts[1:] == [counts[0] + 1, counts[0] + 2]
    logger.end_trace(trace)
    events = json.loads(path.read_text())["traces"][0]["events"]
    assert events[-1]["data"] == {"step": 2} and list(seam.logger_traces(logger)) == []


def test_a_closed_connections_qlog_is_complete_before_its_close_is_reported(certificates: Certificates,
                                                                            tmp_path) -> None:
    """What lets a run stop waiting once the server reports each close (lab.scenario.runner.server_settled):
    aioquic queues ConnectionTerminated and ends the trace in one call, and end_trace writes the file."""
    import json

    from lab.endpoints.quic.telemetry import IncrementalQlog

    logger = IncrementalQlog(tmp_path, "server")
    pair = Pair(certificates, server_logger=logger)
    pair.handshake()
    trace = seam.qlog_trace(pair.server)
    path = logger.path_for(seam.trace_odcid(trace))
    drain(pair.server)
    pair.server.close(error_code=0, reason_phrase="workload done")
    pair.transfer(pair.server, pair.client)
    assert not any(isinstance(e, events.ConnectionTerminated) for e in drain(pair.server))  # still closing
    assert list(seam.logger_traces(logger)) == [trace]
    pair.server.handle_timer(now=pair.server.get_timer())  # the closing period is over
    first = pair.server.next_event()
    assert isinstance(first, events.ConnectionTerminated) and first.reason_phrase == "workload done"
    assert list(seam.logger_traces(logger)) == []  # the trace had ended when the close could be seen
    written = json.loads(path.read_text())["traces"][0]["events"]
    closes = [e for e in written if e["name"] == "transport:packet_sent"
              and any(f["frame_type"] == "connection_close" for f in e["data"]["frames"])]
    assert closes and written.index(closes[-1]) < len(written) - 1  # the close, and what followed it


# --- asyncio protocol and server ------------------------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, NetworkAddress]] = []

    def sendto(self, data: bytes, addr: NetworkAddress) -> None:
        self.sent.append((data, addr))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        pass


class RecordingProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[events.QuicEvent] = []
        self.datagrams: list[tuple[bytes, NetworkAddress]] = []

    def quic_event_received(self, event: events.QuicEvent) -> None:
        self.events.append(event)

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        self.datagrams.append((bytes(data), addr))  # type: ignore[arg-type]


def test_protocol_accessors(certificates: Certificates) -> None:
    async def main() -> None:
        pair = Pair(certificates)
        pair.now = asyncio.get_running_loop().time()  # the protocol reads the loop's clock
        protocol = RecordingProtocol(pair.client)
        assert seam.protocol_connection(protocol) is pair.client
        assert seam.protocol_transport(protocol) is None
        transport = FakeTransport()
        seam.set_protocol_transport(protocol, transport)
        assert seam.protocol_transport(protocol) is transport
        protocol.connect(SERVER_ADDR)  # transmits through the transport set above
        assert transport.sent and transport.sent[0][1] == SERVER_ADDR
        for data, _ in transport.sent:
            pair.server.receive_datagram(data, CLIENT_ADDR, now=pair.tick())
        for data, _ in pair.server.datagrams_to_send(now=pair.tick()):
            pair.client.receive_datagram(data, SERVER_ADDR, now=pair.tick())
        assert protocol.events == []
        seam.process_events(protocol)
        assert any(isinstance(e, events.HandshakeCompleted) for e in protocol.events)

    asyncio.run(main())


def test_server_routing_and_transport(certificates: Certificates) -> None:
    async def main() -> None:
        server = QuicServer(configuration=server_configuration(certificates), create_protocol=RecordingProtocol)
        assert seam.server_protocols(server) == {}
        protocol = RecordingProtocol(QuicConnection(configuration=client_configuration(certificates)))
        cid = os.urandom(8)
        seam.register_server_cid(server, cid, protocol)
        assert seam.server_protocols(server) == {cid: protocol}
        short_header = bytes([0x40]) + cid + os.urandom(30)
        server.datagram_received(short_header, CLIENT_ADDR)
        assert protocol.datagrams == [(short_header, CLIENT_ADDR)]  # routed by its DCID

        transport = FakeTransport()
        seam.set_server_transport(server, transport)
        unknown_version = bytes([0xC0]) + bytes.fromhex("1a2a3a4a") + bytes([8]) + os.urandom(8) \
            + bytes([8]) + os.urandom(8) + bytes(1200)
        server.datagram_received(unknown_version, CLIENT_ADDR)
        assert len(transport.sent) == 1 and transport.sent[0][1] == CLIENT_ADDR  # version negotiation

    asyncio.run(main())


# --- the fence ------------------------------------------------------------------------------


def aioquic_private_names(certificates: Certificates) -> set[str]:
    """Private attribute and method names of the aioquic objects the lab meets, read from live ones."""
    async def objects() -> list[Any]:
        pair = Pair(certificates, server_logger=QuicLogger(), client_logger=QuicLogger())
        pair.handshake()
        stream_id = pair.client.get_next_available_stream_id()
        pair.client.send_stream_data(stream_id, b"x")
        pair.settle()
        server = QuicServer(configuration=server_configuration(certificates), create_protocol=QuicConnectionProtocol)
        return [pair.client, pair.server, QuicConnectionProtocol(pair.client), server,
                pair.server.configuration.quic_logger]

    names: set[str] = set()
    seen: set[int] = set()
    queue = deque(asyncio.run(objects()))
    while queue:
        obj = queue.popleft()
        if id(obj) in seen or not type(obj).__module__.startswith("aioquic"):
            continue
        seen.add(id(obj))
        names.update(n for n in dir(type(obj)) if n.startswith("_") and not n.endswith("__"))
        for name, value in getattr(obj, "__dict__", {}).items():
            if name.startswith("_") and not name.endswith("__"):
                names.add(name)
            if isinstance(value, dict):
                queue.extend(value.values())
            elif isinstance(value, list | deque):
                queue.extend(value)
            else:
                queue.append(value)
    return names


def private_uses(path: Path, names: set[str]) -> list[str]:
    """``obj._name`` uses of aioquic names in one module, outside classes of its own (``self._x`` there is ours)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    from_aioquic = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and (node.module or "").startswith("aioquic") for alias in node.names}
    found: list[str] = []

    def visit(node: ast.AST, own_class: bool) -> None:
        if isinstance(node, ast.ClassDef):
            own_class = not any(isinstance(b, ast.Name) and b.id in from_aioquic for b in node.bases)
        if isinstance(node, ast.Attribute) and node.attr in names:
            is_self = isinstance(node.value, ast.Name) and node.value.id == "self"
            if not (is_self and own_class):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
        for child in ast.iter_child_nodes(node):
            visit(child, own_class)

    visit(tree, False)
    return found


def test_only_the_seam_touches_aioquic_private_attributes(certificates: Certificates) -> None:
    names = aioquic_private_names(certificates)
    assert {"_quic", "_transport", "_protocols", "_network_paths", "_loss", "_QuicConnection__frame_handlers"} <= names
    seam_path = ROOT / "lab" / "endpoints" / "quic" / "aioquic_seam.py"
    assert len(private_uses(seam_path, names)) > 20  # the scan sees them where they are
    outside = [use for path in sorted((ROOT / "lab").rglob("*.py")) if path != seam_path
               for use in private_uses(path, names)]
    assert outside == [], "aioquic private attributes outside the seam:\n" + "\n".join(outside)


def test_incremental_qlog_encodes_in_slices_between_which_the_loop_runs(certificates: Certificates,
                                                                       tmp_path) -> None:
    import asyncio
    import json

    from lab.endpoints.quic import telemetry
    from lab.endpoints.quic.telemetry import IncrementalQlog

    logger = IncrementalQlog(tmp_path, "client")
    pair = Pair(certificates, client_logger=logger)
    trace = seam.qlog_trace(pair.client)
    path = logger.path_for(seam.trace_odcid(trace))
    pair.handshake()
    logger.flush()  # the head and the handshake's events: the file begins
    logger.drain()
    before = len(json.loads(path.read_text())["traces"][0]["events"])
    many = 5 * telemetry.QLOG_SLICE_EVENTS
    for n in range(many):
        trace.log_event(category="connectivity", event="path_updated", data={"n": n})
    ticks: list[int] = []  # the loop's other work, counted while the batch is encoded

    async def main() -> None:
        async def other() -> None:
            while True:
                ticks.append(len(logger._batches[0].parts) if logger._batches else -1)
                await asyncio.sleep(0)

        side = asyncio.get_running_loop().create_task(other())
        logger.start()
        await asyncio.sleep(telemetry.QLOG_FLUSH_INTERVAL * 3)
        side.cancel()
        logger.stop()

    asyncio.run(main())
    partly = {t for t in ticks if 0 < t < 5}
    assert len(partly) >= 3  # the loop ran between the slices, not once the batch was done
    events = json.loads(path.read_text())["traces"][0]["events"]
    assert [e["data"]["n"] for e in events[before:]] == list(range(many))


def test_incremental_qlog_drain_finishes_a_half_encoded_batch_in_order(certificates: Certificates,
                                                                       tmp_path) -> None:
    import json

    from lab.endpoints.quic import telemetry
    from lab.endpoints.quic.telemetry import IncrementalQlog

    logger = IncrementalQlog(tmp_path, "client")
    pair = Pair(certificates, client_logger=logger)
    trace = seam.qlog_trace(pair.client)
    pair.handshake()
    first = 2 * telemetry.QLOG_SLICE_EVENTS + 5
    for n in range(first):
        trace.log_event(category="connectivity", event="path_updated", data={"n": n})
    logger.flush()
    logger._batches[0].encode_slice()  # the periodic task had done one slice when the trace ended
    trace.log_event(category="connectivity", event="path_updated", data={"n": first})
    logger.end_trace(trace)
    events = json.loads(logger.path_for(seam.trace_odcid(trace)).read_text())["traces"][0]["events"]
    numbered = [e["data"]["n"] for e in events if "n" in e.get("data", {})]
    assert numbered == list(range(first + 1)) and not logger._batches
