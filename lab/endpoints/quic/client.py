"""The lab's QUIC client: one connection, one workload, migrations on command or on its own.

The connection is made as aioquic's ``connect()`` makes it, but with our own socket (so that it
can be bound to a chosen local address and swapped later, see ``lab.endpoints.quic.migrate``).

Migration modes (``--migration``):

- ``none``/``passive``: the socket stays as it is; in passive mode it is bound to the wildcard
  address and the kernel picks a new source after a route change -- the client does not know,
  and only reports what it can see (PATH_CHALLENGEs from the server, path events);
- ``active``: the client moves itself (RFC 9000 §9.2) when told through the control socket or,
  with ``--watch-interfaces``, when its address disappears or a new one appears;
- ``preferred``: aioquic's client follows the server's preferred_address by itself once the
  handshake is confirmed (RFC 9000 §9.6.1); the client observes it and reports it.

Control-socket commands (``rebind``, ``migrate``) work in every mode: they are how the lab
makes a NAT rebinding or a move happen at a chosen moment.

Workload events: ``progress`` every 100 ms while data flows, with ``peer`` = the source address
of the newest datagram received (observed, not what the connection believes); ``data_gap`` when
data resumes after >= 5 ms without any (50 ms for echo), measured at every read, and at the end a
``gap_histogram`` of every gap to 1 ms (lab.endpoints.shared.gaps); ``echo_rtt`` per echo reply;
``transfer_complete`` with the sha256 checked against ``workload.expected_sha256``.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import NetworkAddress, QuicConnection

from lab.addresses import host_of, same_ip, v4_mapped
from lab.endpoints.quic import aioquic_seam as seam
from lab.endpoints.quic.migrate import (
    bind_client_socket,
    candidate_addresses,
    local_addresses,
    send_non_probing,
    socket_local,
    swap_socket,
)
from lab.endpoints.quic.telemetry import ConnectionTelemetry, IncrementalQlog
from lab.endpoints.shared.call import CALL_FRAME, CallMeter, Freeze
from lab.endpoints.shared.control import ControlServer
from lab.endpoints.shared.gaps import DOWNLOAD_THRESHOLD_S, ECHO_THRESHOLD_S, GapMeter, ReceiveClock
from lab.endpoints.shared.video import VideoPlan, run_player
from lab.endpoints.shared.workload import ALPN_LAB, ECHO_FRAME, Request, expected_sha256
from lab.events import (
    CallFreeze,
    CallStats,
    DataGap,
    EchoRtt,
    Emitter,
    Error,
    GapHistogram,
    IdleEnded,
    MigrationCompleted,
    MigrationStarted,
    ProbeSent,
    Progress,
    TransferComplete,
    normalise_address,
)

PROGRESS_INTERVAL = 0.1
PROBE_AFTER = 0.2  # default detection delay: seconds without data before the client sends a PING
PROBE_CHECKS = 10  # the silence is looked at PROBE_CHECKS times per detection delay
WATCH_INTERVAL = 0.1


@dataclass
class ClientOptions:
    server: tuple[str, int]
    server_name: str = "server"
    workload: str = "download"
    size: int = 1_000_000
    rate: int = 0
    interval_ms: float = 20.0
    duration_s: float = 10.0
    migration: str = "none"  # none | passive | active | preferred
    rotate_cid: bool = True
    probe_after: float = PROBE_AFTER  # the detection delay (see keepalive)
    control_socket: str | None = None
    watch_interfaces: bool = False
    ca: str = "/certs/ca.crt"
    keylog: str | None = None
    qlog_dir: str | None = None
    local: str | None = None
    cc_reset: bool = True
    connect_timeout: float = 10.0
    video: VideoPlan | None = None  # the video workload's player (HTTP/3)
    call_datagrams: bool = True  # the call workload: DATAGRAM frames (RFC 9221), else one stream


@dataclass
class Quiet:
    """An idle step's pause of the echo: how long, the keep-alive PING interval, what happened."""

    duration: float
    keepalive: float | None = None
    pings: int = 0
    resumed_at: float = 0.0  # monotonic time the first frame after it went out


class DataMeter:
    """Counts received application bytes, emits data_gap and progress, hashes what it sees."""

    def __init__(self, client: LabClientProtocol, total: int | None, threshold_s: float = DOWNLOAD_THRESHOLD_S) -> None:
        self.client = client
        self.total = total
        self.bytes = 0
        self.digest = hashlib.sha256()
        self.gaps = GapMeter(threshold_s)  # arrivals, by the kernel's receive time (ReceiveClock)
        self.delivery = GapMeter(threshold_s)  # the same data as the application read it
        self.kernel_timed = 0  # arrivals timed by the kernel; the rest by the application's clock
        self.reported = -1
        self.idle = False  # a player between requests: silence is not a stall, and nothing is probed

    def request_started(self) -> None:
        """A request went out: from now on, silence is waiting (measured from the request, not from
        the previous response, so that the player's idle time between requests is no gap)."""
        self.idle = False
        now = time.monotonic(), time.time()
        self.gaps.last_mono, self.gaps.last_wall = now
        self.delivery.last_mono, self.delivery.last_wall = now

    @property
    def last_mono(self) -> float | None:
        return self.gaps.last_mono

    def feed(self, data: bytes) -> None:
        if not data:
            return
        read_mono, read_wall = time.monotonic(), time.time()
        arrived = self.client.rx_arrival
        self.kernel_timed += arrived is not None
        gap = self.gaps.arrival(*(arrived or (read_mono, read_wall)))
        self.delivery.arrival(read_mono, read_wall)
        if gap is not None:
            start, end, gap_ms = gap
            self.client.emit(DataGap, start_ts=start, end_ts=end, gap_ms=gap_ms, bytes=self.bytes)
        self.bytes += len(data)
        self.digest.update(data)

    def histogram(self) -> None:
        self.client.emit(GapHistogram, **self.gaps.histogram(), kernel_timed=self.kernel_timed,
                         delivery_max_ms=round(self.delivery.max_ms, 3))

    def progress(self) -> None:
        if self.bytes != self.reported:
            self.reported = self.bytes
            self.client.emit(Progress, bytes=self.bytes, total=self.total, local=self.client.local,
                             peer=self.client.observed_peer)


class LabClientProtocol(QuicConnectionProtocol):
    def __init__(self, quic: QuicConnection, emitter: Emitter, options: ClientOptions) -> None:
        super().__init__(quic)
        self.quic = quic
        self.loop = asyncio.get_running_loop()
        self.emitter = emitter
        self.options = options
        self.telemetry = ConnectionTelemetry(quic, emitter, cc_reset=options.cc_reset)
        self.telemetry.listeners.append(self._telemetry_event)
        self.local = ""
        self.observed_peer: str | None = None
        self.stream_handlers: dict[int, Any] = {}
        self.http = H3Connection(quic) if options.workload == "video" else None
        self.h3_handlers: dict[int, Any] = {}  # stream -> handler(h3 event, or None when the connection ended)
        self.datagram_handler: Any = None
        self.pending_migration: dict[str, Any] | None = None
        self.migrating = asyncio.Lock()
        # While a new socket is being set up, nothing may be sent: a packet leaving on the new path
        # before the connection-ID switch would carry the old CID and link the two paths.
        self.hold_transmit = False
        self.last_keepalive = 0.0
        self.rx_clock = ReceiveClock()
        self.rx_arrival: tuple[float, float] | None = None  # (mono, wall) the datagram being read arrived
        self.stalls = getattr(quic.configuration.quic_logger, "stalls", None)  # diagnosis (LAB_LOOP_STALLS)
        self.quiet: Quiet | None = None  # an idle step asked the echo to pause (handle_command "idle")

    def transmit(self) -> None:
        if not self.hold_transmit:
            super().transmit()

    def emit(self, cls: type, **fields: Any) -> Any:
        return self.emitter.emit(cls, conn=self.telemetry.conn, **fields)

    # --- asyncio ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.local = socket_local(transport)
        self.telemetry.local = self.local
        self.rx_clock.attach(transport.get_extra_info("socket").fileno())

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        self.observed_peer = normalise_address(addr)
        self.telemetry.rx_stream_data = False
        self.rx_arrival = self.rx_clock.stamp()
        if self.stalls is not None and self.rx_arrival is not None:
            self.stalls.received(self.rx_arrival[0], time.monotonic())
        super().datagram_received(data, addr)
        self.rx_arrival = None
        migration = self.pending_migration
        seen_on_new_path = self.telemetry.rx_path_challenge or self.telemetry.rx_stream_data
        if migration is not None and migration["mode"] != "preferred" and seen_on_new_path:
            self.pending_migration = None
            self.emit(MigrationCompleted, mode=migration["mode"], local=self.local, peer=self.observed_peer,
                      duration_ms=round((time.monotonic() - migration["start"]) * 1000, 3))

    def quic_event_received(self, event: quic_events.QuicEvent) -> None:
        self.telemetry.quic_event(event, local=self.local)
        if self.http is not None:
            for h3_event in self.http.handle_event(event):
                h3_handler = self.h3_handlers.get(getattr(h3_event, "stream_id", -1))
                if h3_handler is not None:
                    h3_handler(h3_event)
        if isinstance(event, quic_events.DatagramFrameReceived):
            if self.datagram_handler is not None:
                self.datagram_handler(event.data)
        elif isinstance(event, quic_events.StreamDataReceived):
            handler = self.stream_handlers.get(event.stream_id)
            if handler is not None:
                handler(event.data, event.end_stream)
        elif isinstance(event, quic_events.ConnectionTerminated):
            for handler in list(self.stream_handlers.values()):
                handler(b"", None)
            for h3_handler in list(self.h3_handlers.values()):
                h3_handler(None)

    # --- migrations ---------------------------------------------------------------------------

    def _telemetry_event(self, event: Any) -> None:
        """Preferred-address migration is done by aioquic; report its start and its end."""
        if self.options.migration != "preferred":
            return
        if event.TYPE == "path_discovered" and self.pending_migration is None:
            self.pending_migration = {"mode": "preferred", "start": time.monotonic()}
            self.emit(MigrationStarted, mode="preferred", old_local=self.local, new_local=self.local,
                      rotate_cid=True)
        elif event.TYPE == "active_path_changed":
            start = self.pending_migration["start"] if self.pending_migration else time.monotonic()
            self.pending_migration = None
            self.emit(MigrationCompleted, mode="preferred", local=self.local, peer=event.new_peer,
                      duration_ms=round((time.monotonic() - start) * 1000, 3))

    async def migrate(self, local: str | None, *, rotate_cid: bool, mode: str, port: int = 0) -> dict[str, Any]:
        """Move to a new socket (RFC 9000 §9.2); a new IP also resets congestion control (§9.4)."""
        async with self.migrating:
            old_local = self.local
            if local is None:  # rebinding: same address, new port
                local = host_of(old_local) if old_local else None
                if local in ("::", "0.0.0.0"):
                    local = None
            available = seam.spare_peer_cid_count(self.quic)
            if rotate_cid and not available:
                self.emit(Error, message="no spare peer connection ID: migrating without rotating it")
                rotate_cid = False
            self.emit(MigrationStarted, mode=mode, old_local=old_local, new_local=local, rotate_cid=rotate_cid)
            start = time.monotonic()
            self.hold_transmit = True
            try:
                old, new = await swap_socket(self, local, port)
                self.local = self.telemetry.local = new
                self.pending_migration = {"mode": mode, "start": start}
                if rotate_cid:
                    self.quic.change_connection_id()
                peer = self.quic.get_peer_address()
                if old and self.options.cc_reset and not same_ip(old, new) and peer is not None:
                    self.telemetry.reset_congestion(peer)
            finally:
                self.hold_transmit = False
            send_non_probing(self)
            return {"ok": True, "old_local": old, "new_local": new, "rotate_cid": rotate_cid}

    async def handle_command(self, command: dict[str, Any]) -> dict[str, Any]:
        cmd = command.get("cmd")
        if cmd == "migrate":
            rotate = bool(command.get("rotate_cid", self.options.rotate_cid))
            return await self.migrate(command.get("local"), rotate_cid=rotate, mode="active")
        if cmd == "rebind":
            return await self.migrate(None, rotate_cid=bool(command.get("rotate_cid", False)), mode="rebind")
        if cmd == "idle":
            if self.options.workload != "echo":
                return {"ok": False, "error": f"idle pauses the echo workload, not {self.options.workload}"}
            keepalive = command.get("keepalive")
            self.quiet = Quiet(float(command.get("duration", 0)), float(keepalive) if keepalive else None)
            return {"ok": True, "duration_s": self.quiet.duration, "keepalive_s": self.quiet.keepalive}
        if cmd == "status":
            peer = self.quic.get_peer_address()
            return {"ok": True, "local": self.local, "peer": normalise_address(peer) if peer else None,
                    "observed_peer": self.observed_peer, "paths": self.telemetry.path_counters()}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    async def watch_interfaces(self) -> None:
        """Migrate when the current socket's address disappears or a new address appears."""
        family = socket.AF_INET if "." in self.options.server[0] and ":" not in self.options.server[0] \
            else socket.AF_INET6
        known = set(candidate_addresses(local_addresses(), family))
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = set(candidate_addresses(local_addresses(), family))
            current = host_of(self.local) if self.local else ""
            appeared = sorted(now - known)
            known = now
            target = None
            if appeared and current not in appeared:
                target = appeared[0]
            elif current not in ("::", "0.0.0.0", "") and current not in now and now:
                target = sorted(now)[0]
            if target is not None:
                try:
                    await self.migrate(target, rotate_cid=self.options.rotate_cid, mode="active")
                except OSError as exc:
                    self.emit(Error, message=f"migration to {target} failed: {exc}")

    # --- workloads ----------------------------------------------------------------------------

    async def download(self, size: int, rate: int, seed: int = 1) -> bool:
        meter = DataMeter(self, size)
        done: asyncio.Future[bool] = self.loop.create_future()

        def on_data(data: bytes, end_stream: bool | None) -> None:
            meter.feed(data)
            _settle(done, end_stream)

        stream_id = self.quic.get_next_available_stream_id()
        self.stream_handlers[stream_id] = on_data
        start = time.monotonic()
        self.quic.send_stream_data(stream_id, Request(op="download", size=size, seed=seed, rate=rate).encode(),
                                   end_stream=True)
        self.transmit()
        finished = await self._with_progress(meter, done)
        digest = meter.digest.hexdigest()
        expected = expected_sha256(size, seed)
        ok = finished and meter.bytes == size and digest == expected
        meter.histogram()
        self.emit(TransferComplete, bytes=meter.bytes, sha256=digest, expected_sha256=expected, ok=ok,
                  duration_ms=round((time.monotonic() - start) * 1000, 3))
        return ok

    async def echo(self, interval_ms: float, duration_s: float) -> bool:
        meter = DataMeter(self, None, ECHO_THRESHOLD_S)
        sent = hashlib.sha256()
        sent_bytes = 0
        pending = bytearray()
        done: asyncio.Future[bool] = self.loop.create_future()

        resumed: list[Quiet] = []  # a quiet time over, waiting for its first reply

        def on_data(data: bytes, end_stream: bool | None) -> None:
            meter.feed(data)
            pending.extend(data)
            now = time.monotonic_ns()
            if resumed and data:
                quiet = resumed.pop()
                self.emit(IdleEnded, idle_ms=round(quiet.duration * 1000, 3), pings=quiet.pings,
                          keepalive_ms=None if quiet.keepalive is None else round(quiet.keepalive * 1000, 3),
                          dead_ms=round((now / 1e9 - quiet.resumed_at) * 1000, 3))
            while len(pending) >= ECHO_FRAME.size:
                seq, sent_ns = ECHO_FRAME.unpack_from(pending)
                del pending[:ECHO_FRAME.size]
                self.emit(EchoRtt, seq=seq, rtt_ms=round((now - sent_ns) / 1e6, 3))
            _settle(done, end_stream)

        stream_id = self.quic.get_next_available_stream_id()
        self.stream_handlers[stream_id] = on_data
        start = time.monotonic()
        self.quic.send_stream_data(stream_id, Request(op="echo").encode())
        self.transmit()

        async def sender() -> None:
            nonlocal sent_bytes
            seq = 0
            deadline = start + duration_s
            while time.monotonic() < deadline and not done.done():
                if self.quiet is not None:
                    quiet, self.quiet = self.quiet, None
                    await self.stay_quiet(quiet, meter)
                    resumed.append(quiet)
                frame = ECHO_FRAME.pack(seq, time.monotonic_ns())
                sent.update(frame)
                sent_bytes += len(frame)
                self.quic.send_stream_data(stream_id, frame)
                self.transmit()
                seq += 1
                await asyncio.sleep(interval_ms / 1000)
            if not done.done():
                self.quic.send_stream_data(stream_id, b"", end_stream=True)
                self.transmit()

        task = self.loop.create_task(sender())
        finished = await self._with_progress(meter, done)
        task.cancel()
        digest, expected = meter.digest.hexdigest(), sent.hexdigest()
        ok = finished and meter.bytes == sent_bytes and digest == expected
        meter.histogram()
        self.emit(TransferComplete, bytes=meter.bytes, sha256=digest, expected_sha256=expected, ok=ok,
                  duration_ms=round((time.monotonic() - start) * 1000, 3))
        return ok

    async def video(self, plan: VideoPlan) -> bool:
        """Play a video as a DASH/HLS player does: one HTTP/3 GET per segment (lab.endpoints.shared.video)."""
        assert self.http is not None
        http = self.http
        meter = DataMeter(self, plan.count * plan.segment_bytes)
        meter.idle = True

        async def fetch(index: int, path: str) -> bytes | None:
            stream_id = self.quic.get_next_available_stream_id()
            body = bytearray()
            status = [0]
            done: asyncio.Future[bool] = self.loop.create_future()

            def on_h3(event: H3Event | None) -> None:
                if event is None:
                    _settle(done, None)
                elif isinstance(event, HeadersReceived):
                    status[0] = int(dict(event.headers).get(b":status", b"0"))
                    _settle(done, event.stream_ended)
                elif isinstance(event, DataReceived):
                    meter.feed(event.data)
                    body.extend(event.data)
                    _settle(done, event.stream_ended)

            self.h3_handlers[stream_id] = on_h3
            meter.request_started()
            http.send_headers(stream_id, [(b":method", b"GET"), (b":scheme", b"https"),
                                          (b":authority", self.options.server_name.encode()),
                                          (b":path", path.encode()), (b"user-agent", b"quic-migration-lab")],
                              end_stream=True)
            self.transmit()
            ok = await done
            meter.idle = True
            del self.h3_handlers[stream_id]
            if not ok or status[0] != 200:
                self.emit(Error, message=f"segment {index}: " + (f"HTTP status {status[0]}" if ok else
                                                                   "the connection ended"))
                return None
            return bytes(body)

        start = time.monotonic()
        player = self.loop.create_task(run_player(plan, fetch, self.emit))
        result = await self._with_progress(meter, player)  # type: ignore[arg-type]
        meter.histogram()
        self.emit(TransferComplete, bytes=result.bytes, sha256=result.sha256, expected_sha256=result.expected_sha256,
                  ok=result.ok, duration_ms=round((time.monotonic() - start) * 1000, 3))
        return bool(result.ok)

    async def call(self, interval_ms: float, duration_s: float) -> bool:
        """Small messages every interval both ways (lab.endpoints.shared.call), over DATAGRAM frames
        (RFC 9221) or, with ``call_datagrams`` off, over one stream."""
        interval = max(interval_ms, 1.0) / 1000
        meter = DataMeter(self, None, ECHO_THRESHOLD_S)
        call = CallMeter(interval_s=interval, start_ts=time.time())
        sent: dict[int, int] = {}
        got, want = hashlib.sha256(), hashlib.sha256()
        done: asyncio.Future[bool] = self.loop.create_future()
        pending = bytearray()
        datagrams = self.options.call_datagrams

        def on_frame(frame: bytes) -> None:
            received = time.time()
            seq, sent_ns, server_ns = CALL_FRAME.unpack(frame)
            got.update(frame[:16])
            want.update(CALL_FRAME.pack(seq, sent.get(seq, -1), 0)[:16])
            meter.feed(frame)
            self.emit(EchoRtt, seq=seq, rtt_ms=round((received - sent_ns / 1e9) * 1000, 3))
            for freeze in call.reply(sent_ns / 1e9, server_ns / 1e9, received):
                self._freeze(freeze)

        def on_stream(data: bytes, end_stream: bool | None) -> None:
            pending.extend(data)
            while len(pending) >= CALL_FRAME.size:
                on_frame(bytes(pending[:CALL_FRAME.size]))
                del pending[:CALL_FRAME.size]
            _settle(done, end_stream)

        stream_id = None
        if datagrams:
            self.datagram_handler = lambda data: on_frame(data) if len(data) == CALL_FRAME.size else None
        else:
            stream_id = self.quic.get_next_available_stream_id()
            self.stream_handlers[stream_id] = on_stream
            self.quic.send_stream_data(stream_id, Request(op="call").encode())
        start = time.monotonic()
        last_send = time.time()

        async def sender() -> None:
            nonlocal last_send
            seq, next_send = 0, time.monotonic()
            while time.monotonic() < start + duration_s and not done.done():
                sent_ns = time.time_ns()
                frame = CALL_FRAME.pack(seq, sent_ns, 0)
                sent[seq] = sent_ns
                call.sent += 1
                last_send = sent_ns / 1e9
                if stream_id is None:
                    self.quic.send_datagram_frame(frame)
                else:
                    self.quic.send_stream_data(stream_id, frame)
                self.transmit()
                seq += 1
                next_send += interval
                await asyncio.sleep(max(0.0, next_send - time.monotonic()))
            await asyncio.sleep(max(0.2, 4 * interval))  # the last replies in flight
            if stream_id is not None and not done.done():
                self.quic.send_stream_data(stream_id, b"", end_stream=True)
                self.transmit()
                await asyncio.sleep(0.5)
            _settle(done, True)

        task = self.loop.create_task(sender())
        finished = await self._with_progress(meter, done)
        task.cancel()
        self.datagram_handler = None
        for freeze in call.finish(last_send + interval):
            self._freeze(freeze)
        self.emit(CallStats, datagrams=datagrams, **call.stats())
        meter.histogram()
        digest, expected = got.hexdigest(), want.hexdigest()
        ok = finished and call.received > 0 and digest == expected
        self.emit(TransferComplete, bytes=meter.bytes, sha256=digest, expected_sha256=expected, ok=ok,
                  duration_ms=round((time.monotonic() - start) * 1000, 3))
        return ok

    async def stay_quiet(self, quiet: Quiet, meter: DataMeter) -> None:
        """Send nothing for ``quiet.duration`` (no detection probe either: silence is the plan) but a
        PING every ``quiet.keepalive``: what keeps a NAT binding alive (RFC 9308 §3.2)."""
        meter.idle = True
        end = time.monotonic() + quiet.duration
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, quiet.keepalive or left))
            if quiet.keepalive is not None and end - time.monotonic() > 0:
                self.quic.send_ping(0)
                self.transmit()
                quiet.pings += 1
        meter.request_started()  # from here silence is a stall again
        quiet.resumed_at = time.monotonic()

    def _freeze(self, freeze: Freeze) -> None:
        self.emit(CallFreeze, direction=freeze.direction, start_ts=freeze.start_ts, end_ts=freeze.end_ts,
                  freeze_ms=freeze.ms, ongoing=freeze.ongoing)

    def keepalive(self, meter: DataMeter) -> None:
        """Send a PING when data has stopped for ``probe_after`` (the detection delay), then again
        every ``probe_after`` while it stays stopped; each one is a ``probe_sent`` event.

        A downloading client only sends ACKs, which are not ack-eliciting: once the network under
        it changes, nothing would ever reach the server from the new address and the server would
        keep sending to the dead one. Like a real client that notices a stalled transfer, it
        sends a non-probing PING, whose arrival from the new address is what makes the server
        migrate (RFC 9000 §9.3). Passive mode relies on this; it knows nothing of the network.
        """
        now = time.monotonic()
        wait = self.options.probe_after
        if meter.idle or meter.last_mono is None or now - meter.last_mono < wait or now - self.last_keepalive < wait:
            return
        self.last_keepalive = now
        self.quic.send_ping(0)
        self.transmit()
        self.emit(ProbeSent, silence_ms=round((now - meter.last_mono) * 1000, 3),
                  probe_after_ms=round(wait * 1000, 3))

    async def _with_progress(self, meter: DataMeter, done: asyncio.Future[bool]) -> bool:
        async def watch() -> None:  # the detection delay is looked at finer than progress is reported
            while True:
                await asyncio.sleep(self.options.probe_after / PROBE_CHECKS)
                self.keepalive(meter)

        watcher = self.loop.create_task(watch())
        try:
            while not done.done():
                await asyncio.wait([done], timeout=PROGRESS_INTERVAL)
                meter.progress()
        finally:
            watcher.cancel()
        return done.result()


def _settle(done: asyncio.Future[bool], end_stream: bool | None) -> None:
    """A stream handler's end: None means the connection ended first (False), True a clean FIN."""
    if end_stream is None and not done.done():
        done.set_result(False)
    elif end_stream and not done.done():
        done.set_result(True)


def client_configuration(options: ClientOptions, quic_logger: IncrementalQlog | None, keylog: Any) -> QuicConfiguration:
    alpn = H3_ALPN[0] if options.workload == "video" else ALPN_LAB
    configuration = QuicConfiguration(is_client=True, alpn_protocols=[alpn], server_name=options.server_name,
                                      quic_logger=quic_logger, secrets_log_file=keylog,
                                      max_datagram_frame_size=65536 if options.workload == "call" else None)
    configuration.load_verify_locations(options.ca)
    return configuration


def server_address(host: str, port: int) -> NetworkAddress:
    """The server as aioquic's connect() addresses it: IPv6 4-tuple, IPv4 v4-mapped."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    addr = infos[0][4]
    return v4_mapped(addr[:2])  # type: ignore[return-value]


async def run_quic_client(options: ClientOptions, emitter: Emitter) -> int:
    """Connect, run the workload, close; 0 when the workload completed and verified, else 1."""
    loop = asyncio.get_running_loop()
    quic_logger = IncrementalQlog(options.qlog_dir, "client") if options.qlog_dir else None
    keylog = open(options.keylog, "a", buffering=1) if options.keylog else None  # noqa: SIM115
    configuration = client_configuration(options, quic_logger, keylog)
    if quic_logger is not None:
        quic_logger.start()
    quic = QuicConnection(configuration=configuration)
    sock = bind_client_socket(options.local)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: LabClientProtocol(quic, emitter, options), sock=sock)
    assert isinstance(protocol, LabClientProtocol)
    control: ControlServer | None = None
    watcher: asyncio.Task[None] | None = None
    ok = False
    try:
        protocol.connect(server_address(*options.server))
        try:
            await asyncio.wait_for(protocol.wait_connected(), options.connect_timeout)
        except (TimeoutError, ConnectionError) as exc:
            protocol.emit(Error, message=f"handshake failed: {type(exc).__name__} {exc}")
            return 1
        if options.control_socket:
            control = ControlServer(options.control_socket, protocol.handle_command)
            try:
                await control.start()
            except OSError as exc:
                print(f"warning: control socket {options.control_socket}: {exc}", file=sys.stderr)
                control = None
        if options.watch_interfaces and options.migration == "active":
            watcher = loop.create_task(protocol.watch_interfaces())
        if options.workload == "echo":
            ok = await protocol.echo(options.interval_ms, options.duration_s)
        elif options.workload == "video":
            ok = await protocol.video(options.video or VideoPlan())
        elif options.workload == "call":
            ok = await protocol.call(options.interval_ms, options.duration_s)
        else:
            ok = await protocol.download(options.size, options.rate)
    finally:
        if watcher is not None:
            watcher.cancel()
        if control is not None:
            control.close()
        protocol.close(reason_phrase="workload done" if ok else "workload failed")
        try:
            await asyncio.wait_for(protocol.wait_closed(), 1.0)
        except TimeoutError:
            pass
        if not protocol.telemetry.closed:
            protocol.telemetry.quic_event(quic_events.ConnectionTerminated(
                error_code=0, frame_type=None, reason_phrase="closed by client"))
        seam.protocol_transport(protocol).close()
        transport.close()
        if quic_logger is not None:
            quic_logger.stop()
        if keylog is not None:
            keylog.close()
    return 0 if ok else 1
