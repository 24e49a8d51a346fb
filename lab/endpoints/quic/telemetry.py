"""Lab events and incremental qlog from an aioquic ``QuicConnection``, by diffing its state.

aioquic reports migration only through debug log text, and its qlog has no path events and is
written when the connection ends. ``ConnectionTelemetry`` hooks ``receive_datagram`` and
``datagrams_to_send`` of one connection (plus the PATH_CHALLENGE/PATH_RESPONSE frame handlers)
and compares the state before and after each call: the network paths and their
``is_validated``/``local_challenges``, ``get_peer_address()``, the host CIDs and the peer
CID. Each difference becomes one lab event (``lab.events``) and, when the connection
has a qlog trace, one custom qlog event (``connectivity:path_updated`` ...).

It also applies RFC 9000 §9.4, which aioquic does not: when the active path changes to a peer
address with a different IP address, the congestion controller and the RTT estimator are reset
to their initial values (a port-only change, i.e. NAT rebinding, keeps them). Disable it with
``cc_reset=False`` (``--no-cc-reset``) to observe aioquic's own behaviour.

``IncrementalQlog`` is a ``QuicLogger`` that appends to ``<odcid>_<role>.qlog`` in place every
QLOG_FLUSH_INTERVAL while a connection is open, keeping no events in memory, so that an open
connection's trace can be read live.

Both read aioquic's internals only through ``lab.endpoints.quic.aioquic_seam``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aioquic.quic import events as quic_events
from aioquic.quic.connection import NetworkAddress, QuicConnection
from aioquic.quic.logger import QLOG_VERSION, QuicLogger, QuicLoggerTrace

from lab.addresses import same_ip
from lab.endpoints.quic import aioquic_seam as seam
from lab.endpoints.shared.gaps import loop_stalls_from_env
from lab.events import (
    ActivePathChanged,
    AmplificationLimited,
    CongestionReset,
    ConnectionClosed,
    Emitter,
    HandshakeCompleted,
    HostCidRetired,
    PathAbandoned,
    PathChallengeSent,
    PathDiscovered,
    PathResponseReceived,
    PathValidated,
    PeerCidChanged,
    normalise_address,
)

QLOG_FLUSH_INTERVAL = 0.1  # the loop hands new events over, then encodes them in slices
# Events encoded per slice, between which the loop reads its sockets: about 0.2 ms of json.dumps.
# An earlier writer thread made the loop wait for the GIL (and for the core the writer was
# descheduled on): on the baseline (2 cores, 5 runs) moving the encoding out of the transfer cut
# the client's data gaps of 5-13 ms from 69 to 21, so the encoding stays on the loop, in slices.
QLOG_SLICE_EVENTS = 32


@dataclass
class _PathState:
    addr: NetworkAddress
    discovered: float
    validated: bool
    challenges: set[bytes] = field(default_factory=set)
    amplification_reported_at: int = -1  # bytes_received when last reported


class ConnectionTelemetry:
    """Turns the state changes of one QuicConnection into lab events and qlog events.

    ``local`` is set by the owner (the protocol) to the local address of the socket in use, as
    QuicConnection has no notion of its own address.
    """

    def __init__(self, quic: QuicConnection, emitter: Emitter, *, cc_reset: bool = True) -> None:
        self.quic = quic
        self.emitter = emitter
        self.cc_reset = cc_reset
        self.conn = quic.original_destination_connection_id.hex()
        self.local: str | None = None
        self.started = time.monotonic()
        self.handshake_done = False
        self.closed = False
        self.last_rx_addr: NetworkAddress | None = None
        self.rx_nonprobing = False  # the last datagram held a non-probing packet
        self.rx_path_challenge = False  # the last datagram held a PATH_CHALLENGE
        self.rx_stream_data = False
        # observers, called with the lab event after it was emitted
        self.listeners: list[Callable[[Any], None]] = []

        self._paths: dict[int, _PathState] = {}
        self._peer_addr: NetworkAddress | None = None
        self._peer_cid: bytes = seam.peer_cid(quic)
        self._host_cids: set[bytes] = seam.host_cids(quic)
        self._install()

    # --- wrapping -----------------------------------------------------------------------------

    def _install(self) -> None:
        quic = self.quic

        def before_receive(addr: NetworkAddress) -> None:
            self.rx_nonprobing = self.rx_path_challenge = False
            self.last_rx_addr = addr

        def after_send() -> None:
            self._diff()
            self._check_amplification()

        def on_payload(is_probing: bool) -> None:
            if not is_probing:
                self.rx_nonprobing = True

        def on_challenge() -> None:
            self.rx_path_challenge = True

        def on_response(peer: NetworkAddress, data: bytes) -> None:
            self._emit(PathResponseReceived, peer=normalise_address(peer), data=data.hex())
            self._diff()

        seam.on_receive_datagram(quic, before_receive, self._diff)
        seam.on_datagrams_to_send(quic, after_send)
        seam.on_packet_payload(quic, on_payload)
        seam.on_path_challenge(quic, on_challenge)
        seam.on_path_response(quic, on_response)

    # --- emission -----------------------------------------------------------------------------

    def _emit(self, cls: type, **fields: Any) -> Any:
        event = self.emitter.emit(cls, conn=self.conn, **fields)
        trace: QuicLoggerTrace | None = seam.qlog_trace(self.quic)
        if trace is not None:
            data = {k: v for k, v in event.to_dict().items() if k not in ("ts", "mono", "role", "conn", "type")}
            category, name = _QLOG_NAMES.get(cls.TYPE, ("lab", cls.TYPE))
            if category == "connectivity":
                data = {"lab_event": cls.TYPE, **data}
            trace.log_event(category=category, event=name, data=data)
        for listener in list(self.listeners):
            listener(event)
        return event

    def quic_event(self, event: quic_events.QuicEvent, local: str | None = None) -> None:
        """Feed the events of the QuicConnection (the protocol calls this for each one)."""
        if isinstance(event, quic_events.HandshakeCompleted) and not self.handshake_done:
            self.handshake_done = True
            peer = self.quic.get_peer_address()
            self._emit(HandshakeCompleted, local=local or self.local or "",
                       peer=normalise_address(peer) if peer else "", alpn=event.alpn_protocol,
                       duration_ms=round((time.monotonic() - self.started) * 1000, 3))
        elif isinstance(event, quic_events.StreamDataReceived):
            self.rx_stream_data = True
        elif isinstance(event, quic_events.ConnectionTerminated) and not self.closed:
            self.closed = True
            reason = event.reason_phrase or f"closed (error code 0x{event.error_code:x})"
            self._emit(ConnectionClosed, reason=reason, error_code=event.error_code)

    # --- state diffs --------------------------------------------------------------------------

    def _diff(self) -> None:
        quic = self.quic
        now = time.monotonic()
        current = {id(p): p for p in seam.network_paths(quic)}

        for key, path in current.items():
            state = self._paths.get(key)
            if state is None:
                initial = not self._paths and self._peer_addr is None
                # The handshake's path is not news: only later paths are reported.
                state = self._paths[key] = _PathState(addr=path.addr, discovered=now,
                                                      validated=path.is_validated or initial)
                if not initial:
                    self._emit(PathDiscovered, peer=normalise_address(path.addr), local=self.local)
            for challenge in path.local_challenges:
                if challenge not in state.challenges:
                    state.challenges.add(challenge)
                    self._emit(PathChallengeSent, peer=normalise_address(path.addr), data=challenge.hex())
            if path.is_validated and not state.validated:
                state.validated = True
                self._emit(PathValidated, peer=normalise_address(path.addr),
                           validation_ms=round((now - state.discovered) * 1000, 3))

        for key in list(self._paths):
            if key not in current:
                state = self._paths.pop(key)
                if not state.validated:
                    reason = "validation abandoned" if self._peer_addr == state.addr else "evicted"
                    self._emit(PathAbandoned, peer=normalise_address(state.addr), reason=reason)

        peer = quic.get_peer_address()
        if peer is not None and peer != self._peer_addr:
            old = self._peer_addr
            self._peer_addr = peer
            if old is not None:
                changed = not same_ip(old, peer)
                self._emit(ActivePathChanged, old_peer=normalise_address(old), new_peer=normalise_address(peer),
                           local=self.local, address_changed=changed)
                if changed and self.cc_reset:
                    self.reset_congestion(peer)
                else:
                    self.release_old_path_flight()

        if seam.peer_cid(quic) != self._peer_cid:
            old_cid, self._peer_cid = self._peer_cid, seam.peer_cid(quic)
            if self.handshake_done:  # during the handshake, the peer's CID is only being learnt
                self._emit(PeerCidChanged, old_cid=old_cid.hex(), new_cid=self._peer_cid.hex())

        host_cids = seam.host_cids(quic)
        for cid in self._host_cids - host_cids:
            self._emit(HostCidRetired, cid=cid.hex())
        self._host_cids = host_cids

    def _check_amplification(self) -> None:
        """Report a path whose 3x anti-amplification budget no longer allows a full datagram.

        Reported once per value of the path's ``bytes_received``: the budget only grows when
        the peer sends more, so one report per episode suffices.
        """
        if self.quic.configuration.is_client:
            return  # the limit binds servers only (RFC 9000 §8.1)
        limit = seam.max_datagram_size(self.quic)
        for path in seam.network_paths(self.quic):
            if path.is_validated or not path.bytes_sent:
                continue
            state = self._paths.get(id(path))
            if state is None or state.amplification_reported_at == path.bytes_received:
                continue
            if 3 * path.bytes_received - path.bytes_sent < limit:
                state.amplification_reported_at = path.bytes_received
                self._emit(AmplificationLimited, peer=normalise_address(path.addr), bytes_sent=path.bytes_sent,
                           bytes_received=path.bytes_received)

    # --- RFC 9000 §9.4 ------------------------------------------------------------------------

    def reset_congestion(self, peer: NetworkAddress | str) -> None:
        """Reset the congestion controller, pacer and RTT estimator to their initial values.

        aioquic keeps one QuicPacketRecovery per connection and never resets it on migration.
        Packets still in flight were sent on the old path: they stop counting against the new
        path's window (their ``in_flight`` flag is cleared, so neither their acknowledgement nor
        their loss touches the new controller), otherwise a fresh initial window would be full
        of them and the PATH_CHALLENGE itself would wait for the old path's data to drain.
        Their loss detection and retransmission are unchanged.
        """
        cwnd_before = seam.congestion_window(self.quic)
        srtt_before = seam.smoothed_rtt(self.quic)
        seam.reset_recovery(self.quic)
        self._emit(CongestionReset, peer=normalise_address(peer), cwnd_before=cwnd_before,
                   cwnd_after=seam.congestion_window(self.quic),
                   srtt_before_ms=round(srtt_before * 1000, 3) if srtt_before is not None else None)

    def release_old_path_flight(self) -> None:
        """On a port-only change (RFC 9000 §9.4 lets congestion state stay), stop counting the
        packets sent to the old address against the window.

        The old NAT binding is gone, so they will never be acknowledged; while they fill the
        window, aioquic sends only ACKs on the new path and the PATH_CHALLENGE waits for loss
        detection (measured: 80 ms). Their loss detection and retransmission are unchanged.
        """
        seam.release_packets_in_flight(self.quic)

    def path_counters(self) -> list[dict[str, Any]]:
        """Per-path byte counters, for status replies and tests."""
        return [{"peer": normalise_address(p.addr), "validated": p.is_validated, "bytes_sent": p.bytes_sent,
                 "bytes_received": p.bytes_received} for p in seam.network_paths(self.quic)]


_QLOG_NAMES = {
    "path_discovered": ("connectivity", "path_updated"),
    "path_challenge_sent": ("connectivity", "path_updated"),
    "path_response_received": ("connectivity", "path_updated"),
    "path_validated": ("connectivity", "path_updated"),
    "path_abandoned": ("connectivity", "path_updated"),
    "active_path_changed": ("connectivity", "path_updated"),
    "amplification_limited": ("connectivity", "path_updated"),
    "peer_cid_changed": ("connectivity", "connection_id_updated"),
    "host_cid_retired": ("connectivity", "connection_id_updated"),
    "congestion_reset": ("recovery", "congestion_reset"),
}


class _Batch:
    """New events of one trace, handed over by one flush, and what of them is encoded so far."""

    __slots__ = ("events", "head", "parts", "path")

    def __init__(self, path: Path, head: dict[str, Any] | None, events: list[dict[str, Any]]) -> None:
        self.path, self.head, self.events = path, head, events
        self.parts: list[str] = []

    @property
    def done(self) -> bool:
        return len(self.parts) * QLOG_SLICE_EVENTS >= len(self.events)

    def encode_slice(self) -> None:
        start = len(self.parts) * QLOG_SLICE_EVENTS
        self.parts.append(json.dumps(self.events[start:start + QLOG_SLICE_EVENTS])[1:-1])


class IncrementalQlog(QuicLogger):
    """A QuicLogger streaming each trace to ``<dir>/<odcid>_<role>.qlog`` while it is open.

    aioquic's QuicFileLogger keeps every event in memory and writes a trace only when its
    connection ends; a lab wants to look at a long-lived connection while it migrates, and must not
    stall it. So every flush takes the new events out of the trace and the event loop encodes them
    QLOG_SLICE_EVENTS at a time, reading its sockets between slices, then appends them in place,
    overwriting the file's closing brackets and writing them again after: nothing is kept in
    memory, the file is valid JSON after every write, and no slice holds the loop for long.

    Measured in the client container (12 MB at 2 MB/s, asyncio debug): encoding a whole flush at
    once took 14-67 ms per 250 ms flush, each one a stall of the data the lab measures; a writer
    thread instead made the loop wait for the GIL (see QLOG_SLICE_EVENTS).
    """

    def __init__(self, directory: str | Path, role: str) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.role = role
        self._started: set[int] = set()  # id(trace) of traces whose file was begun
        self._batches: deque[_Batch] = deque()  # in order; the first may be partly encoded
        self._tails: dict[Path, int] = {}  # file -> bytes of its closing brackets
        self._counts: dict[Path, int] = {}  # file -> events written
        self._task: asyncio.Task[None] | None = None
        # Diagnosis, off by default: LAB_LOOP_STALLS=<ms> records the loop's long callbacks, written
        # beside each trace as <odcid>_<role>.loop-stalls.json when it ends (lab.bench.stalls reads them).
        self.stalls = loop_stalls_from_env(dict(os.environ))
        if self.stalls is not None:
            self.stalls.install()

    def start(self) -> None:
        """Start the periodic flush (needs a running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.flush()
        self.drain()

    def drain(self) -> None:
        """Encode and write everything handed over, now (a trace that ended, or the logger stopping)."""
        while self._batches:
            batch = self._batches[0]
            while not batch.done:
                batch.encode_slice()
            self._write(self._batches.popleft())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(QLOG_FLUSH_INTERVAL)
            self.flush()
            while self._batches:  # one slice a loop iteration; drain() may finish the batch meanwhile
                batch = self._batches[0]
                if batch.done:
                    self._write(self._batches.popleft())
                    continue
                batch.encode_slice()
                await asyncio.sleep(0)

    def path_for(self, odcid: bytes) -> Path:
        return self.directory / f"{odcid.hex()}_{self.role}.qlog"

    def flush(self) -> None:
        for trace in seam.logger_traces(self):
            if id(trace) not in self._started or len(seam.trace_events(trace)):
                self._hand_over(trace)

    def _hand_over(self, trace: QuicLoggerTrace) -> None:
        """Take the trace's new events out of it and queue them for encoding (cheap)."""
        head = None
        if id(trace) not in self._started:
            self._started.add(id(trace))
            head = {**trace.to_dict(), "events": []}
        self._batches.append(_Batch(self.path_for(seam.trace_odcid(trace)), head,
                                    seam.drain_trace_events(trace)))

    def _write(self, batch: _Batch) -> None:
        with contextlib.suppress(OSError):
            self._append(batch.path, batch.head, ",".join(p for p in batch.parts if p), len(batch.events))

    def _append(self, target: Path, head: dict[str, Any] | None, body: str, count: int) -> None:
        if head is not None:
            text = json.dumps({"qlog_format": "JSON", "qlog_version": QLOG_VERSION, "traces": [head]})
            prefix, _, suffix = text.partition('"events": []')
            tail = "]" + suffix
            with open(target, "w", encoding="ascii") as out:
                out.write(prefix + '"events": [' + body + tail)
            self._tails[target], self._counts[target] = len(tail), count
        elif count and target in self._tails:
            with open(target, "r+", encoding="ascii") as out:
                end = out.seek(0, os.SEEK_END)
                out.seek(end - self._tails[target])
                tail = out.read()
                out.seek(end - self._tails[target])
                out.write(("," if self._counts[target] else "") + body + tail)
            self._counts[target] += count

    def end_trace(self, trace: QuicLoggerTrace) -> None:
        super().end_trace(trace)
        self._hand_over(trace)
        self._started.discard(id(trace))
        seam.forget_trace(self, trace)
        self.drain()  # the connection is over: its file is complete when this returns
        if self.stalls is not None:
            target = self.path_for(seam.trace_odcid(trace)).with_suffix(".loop-stalls.json")
            with contextlib.suppress(OSError):
                target.write_text(json.dumps(self.stalls.summary()))
            self.stalls.found.clear()
