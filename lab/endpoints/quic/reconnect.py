"""Surviving a network change without migration: a new QUIC connection, with 0-RTT or without.

The ``reconnect-vs-migrate`` scenario compares QUIC migration with what a client can do instead
(docs/reconnect-vs-migrate.md). The strategies here are the two QUIC ones:

- ``quic-0rtt``: the first connection keeps the session ticket the server sent (RFC 8446 §4.6.1);
  after the break the client opens a new connection that offers it and sends its request as early
  data (0-RTT, RFC 9001 §4.6), in the first flight beside the Initial;
- ``quic-full``: the new connection offers no ticket: a full handshake, then the request.

Both notice the break as the migrating client does (``probe_after`` without data: the same
detection delay), then try a new connection every ``probe_after`` until one completes its handshake
(``ATTEMPT_TIMEOUT`` each), and ask for the rest of the download from the offset they reached. The
bytes of every connection go through one hash, checked at the end against the expected sha256.

The server's half is ``TicketStore``: aioquic issues tickets and accepts 0-RTT when the server has a
ticket fetcher and handler (``QuicServer(session_ticket_fetcher=..., session_ticket_handler=...)``).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from typing import Any

from aioquic.quic import events as quic_events
from aioquic.quic.connection import QuicConnection
from aioquic.tls import SessionTicket

from lab.endpoints.quic.migrate import bind_client_socket
from lab.endpoints.shared.gaps import DOWNLOAD_THRESHOLD_S, GapMeter
from lab.endpoints.shared.workload import Request, expected_sha256
from lab.events import (
    ConnectionClosed,
    DataGap,
    Emitter,
    Error,
    GapHistogram,
    Progress,
    Reconnected,
    ReconnectStarted,
    SessionResumption,
    TransferComplete,
)

ATTEMPT_TIMEOUT = 0.5  # seconds one new connection may take to complete its handshake
PROGRESS_INTERVAL = 0.1
STRATEGIES = {"quic-0rtt": True, "quic-full": False}  # strategy -> offers the ticket with early data


class TicketStore:
    """The server's session tickets, each usable once (RFC 8446 §8.1's single-use tickets).

    A ticket is taken out of the store when a ClientHello presents it, so that a second ClientHello
    with the same ticket (a replayed 0-RTT flight) finds nothing: no resumption, no early data.
    """

    def __init__(self) -> None:
        self.tickets: dict[bytes, SessionTicket] = {}
        self.issued = 0
        self.used = 0
        self.unknown = 0

    def add(self, ticket: SessionTicket) -> None:
        self.tickets[ticket.ticket] = ticket
        self.issued += 1

    def pop(self, label: bytes) -> SessionTicket | None:
        ticket = self.tickets.pop(label, None)
        if ticket is None:
            self.unknown += 1
        else:
            self.used += 1
        return ticket


def early_data_outcome(event: quic_events.HandshakeCompleted, offered: bool = False) -> str:
    """``accepted``, ``rejected`` (the client sent 0-RTT, the server refused it) or ``none``."""
    if event.early_data_accepted:
        return "accepted"
    return "rejected" if offered else "none"


def route_exists(host: str, port: int) -> bool:
    """Whether the kernel has a route to the server now (a UDP connect() is a route lookup, nothing
    is sent): between the loss of one network and the next, an attempt would go nowhere."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        probe.close()


class _Download:
    """The download across connections: one offset, one hash, one gap meter."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.received = 0
        self.digest = hashlib.sha256()
        self.gaps = GapMeter(DOWNLOAD_THRESHOLD_S)
        self.last_mono = time.monotonic()


async def run_quic_reconnect(options: Any, emitter: Emitter, strategy: str, seed: int = 1) -> int:
    """Download ``options.size`` bytes, reconnecting after every break; 0 when the sha256 matched."""
    # Imported here: the client module imports this one's siblings, and this one reuses its protocol.
    from lab.endpoints.quic.client import LabClientProtocol, client_configuration, server_address
    from lab.endpoints.quic.telemetry import IncrementalQlog

    if options.workload != "download":
        emitter.emit(Error, message=f"{strategy} reconnects a download only, not {options.workload}")
        return 1
    zero_rtt = STRATEGIES[strategy]
    loop = asyncio.get_running_loop()
    quic_logger = IncrementalQlog(options.qlog_dir, "client") if options.qlog_dir else None
    keylog = open(options.keylog, "a", buffering=1) if options.keylog else None  # noqa: SIM115
    if quic_logger is not None:
        quic_logger.start()
    tickets: list[SessionTicket] = []
    state = _Download(options.size, seed)
    started = time.monotonic()
    current: dict[str, Any] = {}

    class Protocol(LabClientProtocol):
        handshake: quic_events.HandshakeCompleted | None = None

        def quic_event_received(self, event: quic_events.QuicEvent) -> None:
            if isinstance(event, quic_events.HandshakeCompleted):
                self.handshake = event
            super().quic_event_received(event)

    async def open_connection(ticket: SessionTicket | None) -> tuple[Any, Any, asyncio.Future[bool]]:
        configuration = client_configuration(options, quic_logger, keylog)
        configuration.session_ticket = ticket
        quic = QuicConnection(configuration=configuration, session_ticket_handler=tickets.append)
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: Protocol(quic, emitter, options), sock=bind_client_socket(options.local))
        done: asyncio.Future[bool] = loop.create_future()

        def on_data(data: bytes, end_stream: bool | None) -> None:
            if data:
                now = time.monotonic()
                gap = state.gaps.arrival(now, time.time())
                if gap is not None:
                    protocol.emit(DataGap, start_ts=gap[0], end_ts=gap[1], gap_ms=gap[2], bytes=state.received)
                data = data[: state.size - state.received]
                state.digest.update(data)
                state.received += len(data)
                state.last_mono = now
            if end_stream is None and not done.done():
                done.set_result(False)
            elif end_stream and not done.done():
                done.set_result(True)

        protocol.connect(server_address(*options.server), transmit=False)
        stream_id = quic.get_next_available_stream_id()
        protocol.stream_handlers[stream_id] = on_data
        request = Request(op="download", size=state.size, offset=state.received, seed=seed, rate=options.rate)
        early = ticket is not None and zero_rtt
        if early:  # the request rides in the first flight, in 0-RTT packets
            quic.send_stream_data(stream_id, request.encode(), end_stream=True)
        protocol.transmit()
        protocol.offered_early = early
        protocol.request = (stream_id, request)
        return transport, protocol, done

    def close(transport: Any, protocol: Any, reason: str) -> None:
        protocol.close(reason_phrase=reason)
        transport.close()
        if not protocol.telemetry.closed:
            protocol.telemetry.quic_event(quic_events.ConnectionTerminated(
                error_code=0, frame_type=None, reason_phrase=reason))

    async def connect(ticket: SessionTicket | None, timeout: float) -> tuple[Any, Any, asyncio.Future[bool]] | None:
        transport, protocol, done = await open_connection(ticket)
        try:
            await asyncio.wait_for(protocol.wait_connected(), timeout)
        except (TimeoutError, ConnectionError):
            close(transport, protocol, "handshake timed out")
            return None
        event = protocol.handshake
        if event is not None:
            protocol.emit(SessionResumption, offered=ticket is not None, resumed=event.session_resumed,
                          early_data=early_data_outcome(event, protocol.offered_early))
        stream_id, request = protocol.request
        if not protocol.offered_early:
            protocol.quic.send_stream_data(stream_id, request.encode(), end_stream=True)
            protocol.transmit()
        # Refused early data needs nothing here: 0-RTT and 1-RTT packets share the application
        # packet number space, so aioquic's loss recovery sends the request again in 1-RTT.
        current.update(transport=transport, protocol=protocol)
        state.last_mono = time.monotonic()  # silence is counted from the new connection, not the old data
        return transport, protocol, done

    async def report() -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            protocol = current.get("protocol")
            emitter.emit(Progress, conn=protocol.telemetry.conn if protocol else None, bytes=state.received,
                         total=state.size, local=protocol.local if protocol else None,
                         peer=protocol.observed_peer if protocol else None)

    reporter = loop.create_task(report())
    ok = False
    try:
        first = await connect(None, options.connect_timeout)
        if first is None:
            emitter.emit(Error, message="handshake failed")
            return 1
        transport, protocol, done = first
        while True:
            # Wait for the end of the stream, or for probe_after without data: the break.
            while not done.done():
                await asyncio.wait([done], timeout=options.probe_after / 10)
                if time.monotonic() - state.last_mono >= options.probe_after:
                    break
            if done.done() and done.result() and state.received >= state.size:
                break
            old = protocol.telemetry.conn
            emitter.emit(ReconnectStarted, conn=old, reason="stall", offset=state.received)
            close(transport, protocol, "stalled: reconnecting")
            emitter.emit(ConnectionClosed, conn=old, reason="stall")
            current.clear()
            outage = time.monotonic()
            attempt = None
            while attempt is None:
                if time.monotonic() - outage > options.connect_timeout * 3:
                    emitter.emit(Error, conn=old, message="reconnect gave up")
                    return 1
                if not route_exists(*options.server):
                    await asyncio.sleep(options.probe_after)
                    continue
                ticket = tickets[-1] if zero_rtt and tickets else None
                attempt = await connect(ticket, ATTEMPT_TIMEOUT)
            transport, protocol, done = attempt
            emitter.emit(Reconnected, conn=protocol.telemetry.conn, offset=state.received, local=protocol.local,
                         duration_ms=round((time.monotonic() - outage) * 1000, 3))
        ok = state.received == state.size and state.digest.hexdigest() == expected_sha256(state.size, seed)
        close(transport, protocol, "workload done" if ok else "workload failed")
        emitter.emit(ConnectionClosed, conn=protocol.telemetry.conn, reason="complete" if ok else "failed")
    finally:
        reporter.cancel()
        sha, expected = state.digest.hexdigest(), expected_sha256(state.size, seed)
        emitter.emit(Progress, bytes=state.received, total=state.size)
        emitter.emit(GapHistogram, **state.gaps.histogram())
        emitter.emit(TransferComplete, bytes=state.received, sha256=sha, expected_sha256=expected,
                     ok=state.received == state.size and sha == expected,
                     duration_ms=round((time.monotonic() - started) * 1000, 3))
        await asyncio.sleep(0.05)  # the CONNECTION_CLOSE leaves
        if quic_logger is not None:
            quic_logger.stop()
        if keylog is not None:
            keylog.close()
    return 0 if ok else 1

