"""The one place where the lab touches aioquic's private attributes (aioquic 1.7.2, pinned exactly).

aioquic has no public API for what the lab needs: the server cannot advertise a preferred
address, the connection reports migration only in debug log text, its qlog is written when the
connection ends, its congestion state survives an address change, and a client cannot move to
another socket. The recipes for all of these use aioquic internals (see docs/references.md). They
live here, one small named function each, so that:

- the rest of ``lab/`` uses only aioquic's public API plus these functions;
- ``tests/unit/test_aioquic_seam.py`` exercises each function on two in-memory
  ``QuicConnection`` objects, so an aioquic change that breaks one fails on that function's test;
- importing this module with any other aioquic version raises ``AioquicVersionError`` at once,
  naming the expected and the found version, instead of a wrong behaviour deep in a run.

Line numbers refer to aioquic 1.7.2 (``aioquic/quic/connection.py`` unless another file is named).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import aioquic
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.quic.congestion.base import create_congestion_control
from aioquic.quic.connection import END_STATES, NetworkAddress, QuicConnection, QuicConnectionId, QuicNetworkPath
from aioquic.quic.logger import QuicLogger, QuicLoggerTrace
from aioquic.quic.packet import QuicFrameType
from aioquic.quic.recovery import QuicPacketPacer

AIOQUIC_VERSION = "1.7.2"  # the same pin as pyproject.toml


class AioquicVersionError(RuntimeError):
    """The installed aioquic is not the version whose internals this module was written for."""


def check_version(found: str) -> None:
    """Raise AioquicVersionError unless ``found`` is exactly AIOQUIC_VERSION."""
    if found != AIOQUIC_VERSION:
        raise AioquicVersionError(
            f"lab.endpoints.quic.aioquic_seam needs aioquic {AIOQUIC_VERSION} exactly (it uses private attributes),"
            f" found aioquic {found}: pin aioquic=={AIOQUIC_VERSION} or port this module and its tests"
            " (tests/unit/test_aioquic_seam.py)")


check_version(aioquic.__version__)


# --- QuicConnectionProtocol (asyncio/protocol.py) ---------------------------------------------


def protocol_connection(protocol: QuicConnectionProtocol) -> QuicConnection:
    """The QuicConnection a protocol drives (``_quic``)."""
    return protocol._quic


def protocol_transport(protocol: QuicConnectionProtocol) -> Any:
    """The datagram transport a protocol sends through (``_transport``; None before connection_made)."""
    return protocol._transport


def set_protocol_transport(protocol: QuicConnectionProtocol, transport: Any) -> None:
    """Make ``protocol.transmit()`` send through ``transport`` (anything with ``sendto(data, addr)``)."""
    protocol._transport = transport


def process_events(protocol: QuicConnectionProtocol) -> None:
    """Hand the connection's pending events to ``quic_event_received`` (``_process_events``)."""
    protocol._process_events()


# --- QuicServer (asyncio/server.py) -----------------------------------------------------------


def server_protocols(server: QuicServer) -> dict[bytes, QuicConnectionProtocol]:
    """The server's routing table, host CID -> protocol (``_protocols``, l.132: dispatch on the DCID)."""
    return server._protocols


def register_server_cid(server: QuicServer, cid: bytes, protocol: QuicConnectionProtocol) -> None:
    """Route datagrams for ``cid`` to ``protocol``; needed for a CID not issued by NEW_CONNECTION_ID."""
    server._protocols[cid] = protocol


def set_server_transport(server: QuicServer, transport: Any) -> None:
    """The transport through which the server answers datagrams it handles itself (version negotiation, retry)."""
    server._transport = transport


# --- QuicConnection: connection IDs -----------------------------------------------------------


def peer_cid(quic: QuicConnection) -> bytes:
    """The connection ID the connection currently sends to (``_peer_cid.cid``)."""
    return quic._peer_cid.cid


def spare_peer_cid_count(quic: QuicConnection) -> int:
    """How many unused peer CIDs ``change_connection_id()`` could switch to (``_peer_cid_available``)."""
    return len(quic._peer_cid_available)


def host_cids(quic: QuicConnection) -> set[bytes]:
    """The connection IDs the connection accepts (``_host_cids``, l.855: others are dropped)."""
    return {c.cid for c in quic._host_cids}


def next_host_cid_sequence(quic: QuicConnection) -> int:
    """The sequence number the next host CID gets (``_host_cid_seq``; 1 until a CID is issued)."""
    return quic._host_cid_seq


def add_host_cid(quic: QuicConnection, cid: QuicConnectionId) -> None:
    """Accept ``cid`` as a host CID; CIDs issued later continue after its sequence number.

    ``_replenish_connection_ids`` (l.3114) numbers new CIDs from ``_host_cid_seq``.
    """
    quic._host_cids.append(cid)
    quic._host_cid_seq = cid.sequence_number + 1


def mint_host_cids(quic: QuicConnection, make_cid: Callable[[], bytes]) -> None:
    """Make every CID this connection issues come from ``make_cid`` (QUIC-LB: the server ID inside).

    aioquic draws its CIDs with ``os.urandom`` in ``__init__`` (sequence 0, l.306-319) and in
    ``_replenish_connection_ids`` (l.3114); there is no hook. Sequence 0 is replaced here, so this
    must run before the connection sends anything (a server: in ``create_protocol``, before
    ``QuicServer`` registers ``host_cid``); later CIDs are replaced as they are made, before a
    NEW_CONNECTION_ID frame carries them.
    """
    if quic._host_cid_seq != 1 or len(quic._host_cids) != 1:
        raise RuntimeError("mint_host_cids: the connection has already issued connection IDs")
    first = make_cid()
    expected = quic.configuration.connection_id_length
    if len(first) != expected:
        # aioquic parses short headers with its configured length (l.822): other lengths are unreadable
        raise ValueError(f"minted CID of {len(first)} octets, aioquic expects {expected}")
    quic._host_cids[0].cid = first
    quic.host_cid = first
    quic._local_initial_source_connection_id = first  # the transport parameter must name it (l.319, l.3447)
    replenish = quic._replenish_connection_ids

    def replenish_minted() -> None:
        known = len(quic._host_cids)
        replenish()
        for connection_id in quic._host_cids[known:]:
            connection_id.cid = make_cid()

    quic._replenish_connection_ids = replenish_minted  # type: ignore[method-assign]


# --- QuicConnection: transport parameters, limits, state --------------------------------------


def rewrite_transport_parameters(quic: QuicConnection, rewrite: Callable[[bytes], bytes]) -> None:
    """Pass the connection's encoded transport parameters through ``rewrite`` before they are sent.

    Replaces ``_serialize_transport_parameters`` (l.3436) on this connection; must be called before
    the connection builds its first TLS message (for a server: before its first datagram).
    """
    serialize = quic._serialize_transport_parameters

    def serialize_rewritten() -> bytes:
        return rewrite(serialize())

    quic._serialize_transport_parameters = serialize_rewritten  # type: ignore[method-assign]


def max_datagram_size(quic: QuicConnection) -> int:
    """The connection's current maximum datagram size (``_max_datagram_size``)."""
    return quic._max_datagram_size


def qlog_trace(quic: QuicConnection) -> QuicLoggerTrace | None:
    """The connection's qlog trace, None without a quic_logger (``_quic_logger``)."""
    return quic._quic_logger


def is_terminated(quic: QuicConnection) -> bool:
    """The connection is closing, draining or terminated (``_state in END_STATES``)."""
    return quic._state in END_STATES


def stream_unacked_bytes(quic: QuicConnection, stream_id: int) -> int:
    """Bytes of a stream queued or sent and not yet acknowledged; 0 for an unknown stream.

    ``QuicStreamSender._buffer_stop - _buffer_start`` (``quic/stream.py``).
    """
    stream = quic._streams.get(stream_id)
    if stream is None:
        return 0
    return stream.sender._buffer_stop - stream.sender._buffer_start


# --- QuicConnection: network paths ------------------------------------------------------------


def network_paths(quic: QuicConnection) -> list[QuicNetworkPath]:
    """The connection's paths, the active one first (``_network_paths``, l.199-212 and l.3587).

    The list itself, not a copy: its items keep their identity while they exist.
    """
    return quic._network_paths


# --- QuicConnection: hooks into datagram and frame handling -----------------------------------


def on_receive_datagram(quic: QuicConnection, before: Callable[[NetworkAddress], None],
                        after: Callable[[], None]) -> None:
    """Call ``before(addr)`` and ``after()`` around every ``receive_datagram`` of this connection."""
    receive_datagram = quic.receive_datagram

    def wrapped(data: bytes, addr: NetworkAddress, now: float) -> None:
        before(addr)
        receive_datagram(data, addr, now)
        after()

    quic.receive_datagram = wrapped  # type: ignore[method-assign]


def on_datagrams_to_send(quic: QuicConnection, after: Callable[[], None]) -> None:
    """Call ``after()`` once ``datagrams_to_send`` has built its datagrams, before they are returned."""
    datagrams_to_send = quic.datagrams_to_send

    def wrapped(now: float) -> list[tuple[bytes, NetworkAddress]]:
        datagrams = datagrams_to_send(now)
        after()
        return datagrams

    quic.datagrams_to_send = wrapped  # type: ignore[method-assign]


def on_packet_payload(quic: QuicConnection, callback: Callable[[bool], None]) -> None:
    """Call ``callback(is_probing)`` after each decrypted packet's frames were handled (``_payload_received``).

    A probing packet holds only PATH_CHALLENGE, PATH_RESPONSE, PADDING and NEW_CONNECTION_ID
    frames (RFC 9000 §9.1; ``packet.py`` l.582).
    """
    payload_received = quic._payload_received

    def wrapped(context: Any, plain: bytes, crypto_frame_required: bool = False) -> tuple[bool, bool]:
        is_ack_eliciting, is_probing = payload_received(context, plain, crypto_frame_required)
        callback(is_probing)
        return is_ack_eliciting, is_probing

    quic._payload_received = wrapped  # type: ignore[method-assign]


def _frame_handlers(quic: QuicConnection) -> dict[int, tuple[Callable[..., None], Any]]:
    """The connection's frame-type -> (handler, epochs) table (name-mangled ``__frame_handlers``, l.422)."""
    return quic._QuicConnection__frame_handlers  # type: ignore[attr-defined]


def on_path_challenge(quic: QuicConnection, callback: Callable[[], None]) -> None:
    """Call ``callback()`` before the connection handles each PATH_CHALLENGE frame it receives."""
    handlers = _frame_handlers(quic)
    handler, epochs = handlers[QuicFrameType.PATH_CHALLENGE]

    def wrapped(context: Any, frame_type: int, buf: Any) -> None:
        callback()
        handler(context, frame_type, buf)

    handlers[QuicFrameType.PATH_CHALLENGE] = (wrapped, epochs)


def on_path_response(quic: QuicConnection, callback: Callable[[NetworkAddress, bytes], None]) -> None:
    """Call ``callback(peer, data)`` after the connection handled each PATH_RESPONSE frame it receives.

    ``peer`` is the address of the path the frame arrived on; ``data`` its 8 bytes.
    """
    handlers = _frame_handlers(quic)
    handler, epochs = handlers[QuicFrameType.PATH_RESPONSE]

    def wrapped(context: Any, frame_type: int, buf: Any) -> None:
        data = buf.data_slice(buf.tell(), buf.tell() + 8)
        handler(context, frame_type, buf)
        callback(context.network_path.addr, data)

    handlers[QuicFrameType.PATH_RESPONSE] = (wrapped, epochs)


# --- QuicConnection: loss recovery and congestion control (quic/recovery.py) ------------------


def congestion_window(quic: QuicConnection) -> int:
    """The congestion controller's window in bytes (``_loss._cc.congestion_window``)."""
    return quic._loss._cc.congestion_window


def bytes_in_flight(quic: QuicConnection) -> int:
    """Bytes the congestion controller counts as in flight (``_loss._cc.bytes_in_flight``)."""
    return quic._loss._cc.bytes_in_flight


def smoothed_rtt(quic: QuicConnection) -> float | None:
    """The smoothed RTT in seconds, None before the first RTT sample (``_loss._rtt_smoothed``)."""
    loss = quic._loss
    return loss._rtt_smoothed if loss._rtt_initialized else None


def reset_recovery(quic: QuicConnection) -> None:
    """Reset the congestion controller, pacer and RTT estimator to their initial values (RFC 9000 §9.4).

    aioquic keeps one QuicPacketRecovery (``_loss``) per connection and never resets it. The
    packets in flight stop counting (``in_flight`` cleared): neither their acknowledgement nor their
    loss touches the new controller. Their loss detection and retransmission are unchanged.
    """
    loss = quic._loss
    cc = create_congestion_control(quic.configuration.congestion_control_algorithm,
                                   max_datagram_size=quic._max_datagram_size)
    for space in loss.spaces:
        for packet in space.sent_packets.values():
            packet.in_flight = False
    loss._cc = cc
    loss._pacer = QuicPacketPacer(max_datagram_size=quic._max_datagram_size)
    loss._rtt_initialized = False
    loss._rtt_latest = 0.0
    loss._rtt_min = float("inf")
    loss._rtt_smoothed = 0.0
    loss._rtt_variance = 0.0
    loss._rtt_first_sample_time = 0.0
    loss._pto_count = 0


def release_packets_in_flight(quic: QuicConnection) -> None:
    """Stop counting every packet in flight against the congestion window; keep their loss detection."""
    loss = quic._loss
    for space in loss.spaces:
        for packet in space.sent_packets.values():
            if packet.in_flight:
                packet.in_flight = False
                loss._cc.bytes_in_flight = max(0, loss._cc.bytes_in_flight - packet.sent_bytes)


# --- qlog (quic/logger.py) --------------------------------------------------------------------


def logger_traces(logger: QuicLogger) -> Iterable[QuicLoggerTrace]:
    """The logger's open traces (``_traces``), as a list of its own."""
    return list(logger._traces)


def forget_trace(logger: QuicLogger, trace: QuicLoggerTrace) -> None:
    """Drop an ended trace from the logger, as QuicFileLogger does once it wrote the file."""
    logger._traces.remove(trace)


def trace_events(trace: QuicLoggerTrace) -> Any:
    """The trace's events so far, oldest first (``_events``, a deque: index or islice it)."""
    return trace._events


def drain_trace_events(trace: QuicLoggerTrace) -> list[dict[str, Any]]:
    """Take the trace's events logged so far out of it (``_events``), oldest first.

    A trace otherwise keeps every event of its connection in memory: for a 12 MB download that is
    over a million objects, and the garbage collector's full passes over them stalled the event loop
    for 50-160 ms (measured with gc.callbacks on loopback), larger than the gaps the lab measures.
    """
    events = trace._events
    drained = list(events)
    events.clear()
    return drained


def trace_odcid(trace: QuicLoggerTrace) -> bytes:
    """The original destination connection ID the trace is named after (``_odcid``)."""
    return trace._odcid

