"""The lab's long-lived QUIC server: several listening sockets, one QuicServer, per-path replies.

aioquic's ``QuicServer`` owns one datagram transport and replies to every peer through it,
which is fine until a client moves to the server's preferred address: the replies must then
come from the preferred address (RFC 9000 §9.6), or the client sees the old address answer.
``LabQuicServer`` therefore feeds datagrams from several sockets (the main port, the
``--preferred-port`` and the preferred address) into one CID routing table, and each
connection sends through a ``PathSender`` that picks, per peer address, the socket on which
the newest non-probing packet from that peer arrived -- and for replies made while handling
a datagram (PATH_RESPONSE, ACK), the socket that datagram arrived on.

Connections that arrive on ``preferred_port`` get the preferred_address transport parameter
(``lab.endpoints.quic.preferred``); those on the main port do not, so one server serves both kinds
of scenario. Each connection has a ``ConnectionTelemetry`` (events, §9.4 congestion reset).

ALPN ``quic-lab`` serves the lab's workloads (``lab.endpoints.shared.workload``): the first line of a
bidirectional stream is a Request; a download is answered with ``stream_bytes`` (paced at
``rate`` bytes/s when rate > 0) then FIN; an echo sends back every byte that follows the
request line. ``h3`` and ``hq-interop`` are delegated to ``lab.endpoints.quic.http_files``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import NetworkAddress, QuicConnection

from lab.addresses import v4_mapped
from lab.endpoints.quic import aioquic_seam as seam
from lab.endpoints.quic import quic_lb
from lab.endpoints.quic.migrate import bind_udp
from lab.endpoints.quic.preferred import advertise_preferred_address
from lab.endpoints.quic.reconnect import TicketStore, early_data_outcome
from lab.endpoints.quic.telemetry import ConnectionTelemetry, IncrementalQlog
from lab.endpoints.quic.video import VideoFileHandler
from lab.endpoints.shared.call import CALL_FRAME
from lab.endpoints.shared.workload import ALPN_LAB, PACING_TICK_S, Request, stream_bytes
from lab.events import ActivePathChanged, Emitter, Error, SessionResumption, normalise_address

HIGH_WATER = 1 << 20  # unacknowledged bytes per stream before a download waits
# A paced download is handed to QUIC in pieces of PACING_TICK_S worth of data (workload.py): at
# 2 MB/s a 16 KB piece was an 8 ms burst, a gap the client measured as the lab's own noise floor.
MAX_PACED_PIECE = 16 * 1024


def paced_piece(rate: int) -> int:
    """Bytes per paced send: PACING_TICK_S of the rate, at least one packet, at most 16 KB."""
    return max(1200, min(MAX_PACED_PIECE, int(rate * PACING_TICK_S)))
MAX_REQUEST_LINE = 4096


class ServerSocket(asyncio.DatagramProtocol):
    """One listening UDP socket; everything it receives goes to the LabQuicServer."""

    def __init__(self, server: LabQuicServer, kind: str) -> None:
        self.server = server
        self.kind = kind  # main | preferred-port | preferred
        self.transport: asyncio.DatagramTransport | None = None
        self.local = ""
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sockname = transport.get_extra_info("sockname")
        self.local = normalise_address(sockname)
        self.port = sockname[1]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # aioquic keys paths by the exact address tuple: every socket reports the v4-mapped 4-tuple.
        self.server.datagram_received_on(self, data, v4_mapped(addr))  # type: ignore[arg-type]

    def send(self, data: bytes, addr: NetworkAddress) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)


class PathSender:
    """Stands in for the connection's transport: sends each datagram from the right socket."""

    def __init__(self, protocol: LabServerProtocol) -> None:
        self.protocol = protocol

    def sendto(self, data: bytes, addr: NetworkAddress) -> None:
        self.protocol.socket_for(addr).send(data, addr)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname" and self.protocol.default_socket.transport is not None:
            return self.protocol.default_socket.transport.get_extra_info("sockname")
        return default

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


class LabServerProtocol(QuicConnectionProtocol):
    """One server connection: workload streams, HTTP delegation, telemetry, socket choice."""

    def __init__(self, quic: QuicConnection, *, server: LabQuicServer, sock: ServerSocket) -> None:
        super().__init__(quic)
        self.quic = quic
        self.loop = asyncio.get_running_loop()
        self.server = server
        self.default_socket = sock
        self.sockets_by_peer: dict[NetworkAddress, ServerSocket] = {}
        self.reply_socket: ServerSocket | None = None
        self.reply_addr: NetworkAddress | None = None
        self.telemetry = ConnectionTelemetry(quic, server.emitter, cc_reset=server.options.cc_reset)
        self.telemetry.local = sock.local
        self.http_handler: Any = None
        self._requests: dict[int, bytearray] = {}
        self._echo_streams: set[int] = set()
        self._call_streams: dict[int, bytearray] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- sockets ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        seam.set_protocol_transport(self, PathSender(self))

    def socket_for(self, addr: NetworkAddress) -> ServerSocket:
        if self.reply_socket is not None and addr == self.reply_addr:
            return self.reply_socket
        return self.sockets_by_peer.get(addr, self.default_socket)

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        """Called by QuicServer's dispatch, while ``server.rx_socket`` is the receiving socket."""
        self.datagram_received_on(self.server.rx_socket or self.default_socket, data, addr)  # type: ignore[arg-type]

    def datagram_received_on(self, sock: ServerSocket, data: bytes, addr: NetworkAddress) -> None:
        self.reply_socket, self.reply_addr = sock, addr
        self.telemetry.local = sock.local
        try:
            self.quic.receive_datagram(data, addr, now=self.loop.time())
            if self.telemetry.rx_nonprobing:
                self.sockets_by_peer[addr] = sock
                if addr == self.quic.get_peer_address() and sock is not self.default_socket:
                    # The client moved to another server address (preferred address): same peer,
                    # new local address -- reported as an active path change seen from here.
                    self.default_socket = sock
                    if self.telemetry.handshake_done:
                        self.server.emitter.emit(ActivePathChanged, conn=self.telemetry.conn,
                                                 old_peer=normalise_address(addr), new_peer=normalise_address(addr),
                                                 local=sock.local, address_changed=False)
            seam.process_events(self)
            self.transmit()
        finally:
            self.reply_socket = self.reply_addr = None
            self.telemetry.local = self.socket_for(self.quic.get_peer_address() or addr).local

    # --- events -------------------------------------------------------------------------------

    def quic_event_received(self, event: quic_events.QuicEvent) -> None:
        self.telemetry.quic_event(event, local=self.default_socket.local)
        if isinstance(event, quic_events.HandshakeCompleted):  # what the handshake did with a ticket
            self.server.emitter.emit(SessionResumption, conn=self.telemetry.conn, offered=event.session_resumed,
                                     resumed=event.session_resumed, early_data=early_data_outcome(event))
        if isinstance(event, quic_events.ProtocolNegotiated) and event.alpn_protocol in ("h3", "hq-interop"):
            factory = self.server.http_handler_factory
            if factory is not None:
                self.http_handler = factory(self, event.alpn_protocol, self.server.options.www)
        if self.http_handler is not None:
            self.http_handler.quic_event_received(event)
            return
        if isinstance(event, quic_events.StreamDataReceived):
            self._stream_data(event)
        elif isinstance(event, quic_events.DatagramFrameReceived):
            self._call_datagram(event.data)
        elif isinstance(event, quic_events.ConnectionTerminated):
            for task in list(self._tasks):
                task.cancel()

    def _call_datagram(self, data: bytes) -> None:
        """A call message (RFC 9221 DATAGRAM): stamped with our receive time and sent straight back."""
        if len(data) != CALL_FRAME.size:
            return
        seq, sent_ns, _ = CALL_FRAME.unpack(data)
        self.quic.send_datagram_frame(CALL_FRAME.pack(seq, sent_ns, time.time_ns()))

    def _stream_data(self, event: quic_events.StreamDataReceived) -> None:
        stream_id = event.stream_id
        if stream_id in self._call_streams:
            self._call_stream_data(stream_id, event.data, event.end_stream)
            return
        if stream_id in self._echo_streams:
            self.quic.send_stream_data(stream_id, event.data, end_stream=event.end_stream)
            return
        buffer = self._requests.setdefault(stream_id, bytearray())
        buffer += event.data
        if b"\n" not in buffer:
            if len(buffer) > MAX_REQUEST_LINE or event.end_stream:
                self._requests.pop(stream_id, None)
                self.quic.reset_stream(stream_id, 1)
            return
        line, _, rest = bytes(buffer).partition(b"\n")
        del self._requests[stream_id]
        try:
            request = Request.decode(line)
        except (ValueError, TypeError) as exc:
            self.server.emitter.emit(Error, conn=self.telemetry.conn, message=f"bad request: {exc}")
            self.quic.reset_stream(stream_id, 1)
            return
        if request.op == "call":  # a call over a stream: frames stamped and echoed
            self._call_streams[stream_id] = bytearray(rest)
            self._call_stream_data(stream_id, b"", event.end_stream)
        elif request.op == "echo":
            self._echo_streams.add(stream_id)
            if rest or event.end_stream:
                self.quic.send_stream_data(stream_id, rest, end_stream=event.end_stream)
        else:
            task = self.loop.create_task(self._download(stream_id, request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _call_stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        pending = self._call_streams[stream_id]
        pending += data
        now = time.time_ns()
        replies = bytearray()
        while len(pending) >= CALL_FRAME.size:
            seq, sent_ns, _ = CALL_FRAME.unpack_from(pending)
            del pending[:CALL_FRAME.size]
            replies += CALL_FRAME.pack(seq, sent_ns, now)
        if replies or end_stream:
            self.quic.send_stream_data(stream_id, bytes(replies), end_stream=end_stream)

    async def _download(self, stream_id: int, request: Request) -> None:
        """Send the deterministic stream; pace it when asked, never buffer more than HIGH_WATER."""
        start = self.loop.time()
        sent = 0
        try:
            for chunk in stream_bytes(request.size, request.offset, request.seed):
                piece_size = paced_piece(request.rate) if request.rate > 0 else len(chunk)
                pieces = [chunk[i:i + piece_size] for i in range(0, len(chunk), piece_size)]
                for piece in pieces:
                    delay = start + sent / request.rate - self.loop.time() if request.rate > 0 else 0.0
                    # Yield even when behind (or unpaced): a catch-up burst that never did held the
                    # loop 26-82 ms (LAB_LOOP_STALLS, baseline, 5 runs) with no ACK read, so the full
                    # window let nothing out: the client's data gaps of 9-17 ms.
                    await asyncio.sleep(max(delay, 0.0))
                    while seam.stream_unacked_bytes(self.quic, stream_id) > HIGH_WATER:
                        await asyncio.sleep(0.002)
                    if seam.is_terminated(self.quic):
                        return
                    self.quic.send_stream_data(stream_id, piece)
                    self.transmit()
                    sent += len(piece)
            self.quic.send_stream_data(stream_id, b"", end_stream=True)
            self.transmit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a stream error must not take the server down
            self.server.emitter.emit(Error, conn=self.telemetry.conn, message=f"download: {exc!r}")


@dataclass
class ServerOptions:
    listen: str = "::"
    port: int = 443
    preferred_address: tuple[str, int] | None = None
    preferred_port: int = 4443
    cert: str = "/certs/server.crt"
    key: str = "/certs/server.key"
    qlog_dir: str | None = None
    keylog: str | None = None
    www: Path = Path("/www")
    cc_reset: bool = True
    quic_lb_server_id: int | None = None  # a farm replica: every CID it issues names it (QUIC-LB plaintext)


class LabQuicServer(QuicServer):
    """A QuicServer fed by several sockets; see the module docstring."""

    def __init__(self, *, configuration: QuicConfiguration, options: ServerOptions, emitter: Emitter,
                 http_handler_factory: Any = None) -> None:
        # Session tickets for resumption and 0-RTT (reconnect-vs-migrate): single-use, so that a
        # replayed 0-RTT ClientHello finds its ticket gone and gets a full handshake (RFC 8446 §8.1).
        self.tickets = TicketStore()
        super().__init__(configuration=configuration, create_protocol=self._new_protocol,
                         session_ticket_fetcher=self.tickets.pop, session_ticket_handler=self.tickets.add)
        self.options = options
        self.emitter = emitter
        self.http_handler_factory = http_handler_factory
        self.configuration = configuration
        self.sockets: list[ServerSocket] = []
        self.rx_socket: ServerSocket | None = None  # the socket whose datagram is being dispatched
        self.mint_cid = (None if options.quic_lb_server_id is None
                         else quic_lb.mint(quic_lb.LbConfig(), options.quic_lb_server_id))

    def datagram_received_on(self, sock: ServerSocket, data: bytes, addr: NetworkAddress) -> None:
        self.rx_socket = sock
        seam.set_server_transport(self, sock.transport)
        try:
            QuicServer.datagram_received(self, data, addr)
        finally:
            self.rx_socket = None

    def _new_protocol(self, connection: QuicConnection, stream_handler: Any = None) -> LabServerProtocol:
        sock = self.rx_socket
        assert sock is not None
        if self.mint_cid is not None:  # before QuicServer registers connection.host_cid
            seam.mint_host_cids(connection, self.mint_cid)
        protocol = LabServerProtocol(connection, server=self, sock=sock)
        if sock.kind == "preferred-port" and self.options.preferred_address is not None:
            host, port = self.options.preferred_address
            advertise_preferred_address(connection, host, port,
                                        register_cid=lambda cid: seam.register_server_cid(self, cid, protocol))
        return protocol

    def close_connections(self) -> int:
        """Close every connection (CONNECTION_CLOSE to its last peer) and keep listening.

        A connection whose client vanished (a killed run) would otherwise keep sending PTO probes
        to its last address until its idle timeout, into the next run's captures.
        """
        routes = seam.server_protocols(self)
        protocols = set(routes.values())
        for protocol in protocols:
            protocol.close()
        routes.clear()
        return len(protocols)

    def yield_main_port(self) -> bool:
        """Close the main port's socket so that a foreign server in this network namespace can bind it.

        The other sockets (preferred address, preferred port) stay open. Returns whether a socket was closed.
        """
        closed = False
        for sock in [s for s in self.sockets if s.kind == "main"]:
            self.close_connections()
            if sock.transport is not None:
                sock.transport.close()
            self.sockets.remove(sock)
            closed = True
        return closed

    async def reclaim_main_port(self) -> bool:
        """Bind the main port again after :meth:`yield_main_port`; False when it was never yielded."""
        if any(s.kind == "main" for s in self.sockets):
            return False
        await self._bind(self.options.listen, self.options.port, "main")
        return True

    async def _bind(self, host: str, port: int, kind: str) -> None:
        loop = asyncio.get_running_loop()
        sock = bind_udp(host, port, reuse_address=True)
        _, protocol = await loop.create_datagram_endpoint(lambda: ServerSocket(self, kind), sock=sock)
        self.sockets.append(protocol)  # type: ignore[arg-type]

    def close(self) -> None:
        self.close_connections()
        for sock in self.sockets:
            if sock.transport is not None:
                sock.transport.close()


def server_configuration(options: ServerOptions, alpns: list[str], quic_logger: IncrementalQlog | None,
                         keylog: Any) -> QuicConfiguration:
    configuration = QuicConfiguration(is_client=False, alpn_protocols=alpns, quic_logger=quic_logger,
                                      secrets_log_file=keylog, max_datagram_frame_size=65536)
    configuration.load_cert_chain(options.cert, options.key)
    return configuration


async def serve_quic(options: ServerOptions, emitter: Emitter) -> LabQuicServer:
    """Open the sockets and start serving; returns the server (close() it to stop)."""
    alpns = [ALPN_LAB, "h3", "hq-interop"]
    quic_logger = IncrementalQlog(options.qlog_dir, "server") if options.qlog_dir else None
    keylog = open(options.keylog, "a", buffering=1) if options.keylog else None  # noqa: SIM115
    configuration = server_configuration(options, alpns, quic_logger, keylog)
    server = LabQuicServer(configuration=configuration, options=options, emitter=emitter,
                           http_handler_factory=VideoFileHandler)
    binds = [(options.listen, options.port, "main")]
    if options.preferred_address is not None:
        if options.preferred_port and options.preferred_port != options.port:
            binds.append((options.listen, options.preferred_port, "preferred-port"))
        binds.append((options.preferred_address[0], options.preferred_address[1], "preferred"))
    for host, port, kind in binds:
        await server._bind(host, port, kind)
    if quic_logger is not None:
        quic_logger.start()
    return server
