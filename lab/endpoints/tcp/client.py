"""The TCP + TLS 1.3 baseline client: what an application has to do when its connection breaks.

Download: read the deterministic stream, count and hash it, emit ``progress`` every 100 ms and a
``data_gap`` whenever data resumes after >= 50 ms without any (measured at every read). When the
connection fails -- reset, EOF before the end, TCP_USER_TIMEOUT, or no data for ``stall_timeout``
(the application-level watchdog an app would need, since TCP itself waits minutes) -- it emits
``reconnect_started``, reconnects with backoff within a bounded budget, asks for the rest with
``Request(offset=bytes so far)`` and emits ``reconnected``. At the end ``transfer_complete`` says
whether the bytes received in order hash to the expected value.

Echo: one ``ECHO_FRAME`` every ``interval_ms`` for ``duration_s``; ``echo_rtt`` per reply;
reconnect on failure or when a reply is overdue by ``stall_timeout``.

``conn`` is a short random id per TCP connection: a reconnect is a new connection with a new id.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import secrets
import socket
import ssl
import sys
import time
from dataclasses import dataclass

from lab.addresses import parse_host_port
from lab.endpoints.shared.call import CALL_FRAME, CallMeter, Freeze
from lab.endpoints.shared.gaps import DOWNLOAD_THRESHOLD_S, GapMeter
from lab.endpoints.shared.video import PlayerResult, VideoPlan, run_player
from lab.endpoints.shared.workload import ECHO_FRAME, Request, expected_sha256
from lab.endpoints.tcp.server import close_reason, tune_socket
from lab.events import (
    CallFreeze,
    CallStats,
    ConnectionClosed,
    DataGap,
    EchoRtt,
    Emitter,
    Error,
    GapHistogram,
    HandshakeCompleted,
    Progress,
    Reconnected,
    ReconnectStarted,
    SessionResumption,
    TransferComplete,
    normalise_address,
)
from lab.units import parse_byte_rate, parse_size

PROGRESS_INTERVAL_S = 0.100
READ_SIZE = 64 * 1024
CONNECT_TIMEOUT_S = 5.0
BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 2.0


@dataclass
class _Connection:
    conn: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    local: str
    peer: str

    def abort(self, graceful: bool = False) -> None:
        if graceful:
            self.writer.close()  # TLS close_notify, then FIN
        else:
            self.writer.transport.abort()


class ReconnectFailed(Exception):
    pass


class _ResumingContext(ssl.SSLContext):
    """A client context that offers ``session`` (TLS 1.3 resumption, RFC 8446 §2.2) on its next
    handshake: asyncio's ``open_connection`` takes no session, but it wraps through ``wrap_bio``."""

    session: ssl.SSLSession | None = None

    def wrap_bio(self, *args: object, **kwargs: object) -> ssl.SSLObject:
        if self.session is not None:
            kwargs.setdefault("session", self.session)
        return super().wrap_bio(*args, **kwargs)  # type: ignore[arg-type]


class TcpClient:
    def __init__(self, server: tuple[str, int], server_name: str, cafile: str, emitter: Emitter,
                 keylog: str | None, local: str | None, stall_timeout: float, reconnect_budget: float,
                 user_timeout_ms: int, resume: bool = False, attempt_timeout: float = CONNECT_TIMEOUT_S,
                 retry_interval: float | None = None) -> None:
        self.server = server
        self.server_name = server_name
        self.emitter = emitter
        self.local = parse_host_port(local, 0) if local else None  # "10.0.0.2", "[::1]:5000"
        self.stall_timeout = stall_timeout
        self.reconnect_budget = reconnect_budget
        self.user_timeout_ms = user_timeout_ms
        # resume (tcp-resume of reconnect-vs-migrate): every reconnect offers the last session ticket.
        self.resume = resume
        self.attempt_timeout = attempt_timeout
        self.retry_interval = retry_interval  # a fixed wait between attempts instead of the backoff
        if resume:
            self.context = _ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
            self.context.load_verify_locations(cafile)
        else:
            self.context = ssl.create_default_context(cafile=cafile)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_3
        if keylog:
            self.context.keylog_filename = keylog
        self.current: _Connection | None = None

    async def connect(self, timeout: float = CONNECT_TIMEOUT_S) -> _Connection:
        """One attempt: TCP connect (from ``local`` if given), then the TLS 1.3 handshake."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        infos = await loop.getaddrinfo(self.server[0], self.server[1], type=socket.SOCK_STREAM)
        if self.local:
            family = socket.AF_INET6 if ":" in self.local[0] else socket.AF_INET
            infos = [info for info in infos if info[0] == family] or infos
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            tune_socket(sock, self.user_timeout_ms)
            if self.local:
                if self.local[1]:  # a fixed local port must be reusable by the reconnect
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(self.local)
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, address)
                reader, writer = await asyncio.open_connection(
                    sock=sock, ssl=self.context, server_hostname=self.server_name,
                    ssl_handshake_timeout=timeout)
        except BaseException:
            sock.close()
            raise
        conn = _Connection(secrets.token_hex(4), reader, writer,
                           normalise_address(writer.get_extra_info("sockname")),
                           normalise_address(writer.get_extra_info("peername")))
        self.emitter.emit(HandshakeCompleted, conn=conn.conn, local=conn.local, peer=conn.peer, alpn=None,
                          duration_ms=round((time.monotonic() - started) * 1000, 3))
        ssl_object = writer.get_extra_info("ssl_object")
        offered = isinstance(self.context, _ResumingContext) and self.context.session is not None
        self.emitter.emit(SessionResumption, conn=conn.conn, offered=offered,
                          resumed=bool(ssl_object is not None and ssl_object.session_reused))
        self.current = conn
        return conn

    def keep_session(self, conn: _Connection) -> None:
        """Keep the connection's session for the next handshake; TLS 1.3 sends its tickets after the
        handshake, so the session holds one only once data has been read."""
        if not isinstance(self.context, _ResumingContext):
            return
        ssl_object = conn.writer.get_extra_info("ssl_object")
        session = ssl_object.session if ssl_object is not None else None
        if session is not None and session.has_ticket:
            self.context.session = session

    def close(self, reason: str) -> None:
        if self.current is not None:
            self.current.abort(graceful=reason == "complete")
            self.emitter.emit(ConnectionClosed, conn=self.current.conn, reason=reason)
            self.current = None

    async def first_connect(self) -> _Connection | None:
        """The first connection; if it fails, retry like a reconnect (the server may not be up yet)."""
        try:
            return await self.connect()
        except (OSError, TimeoutError) as exc:
            reason = close_reason(exc)
            self.emitter.emit(Error, message=f"connect to {self.server[0]}:{self.server[1]} failed: {reason}")
            if isinstance(exc, ssl.SSLCertVerificationError):
                return None
        try:
            return await self.reconnect(reason, 0)
        except ReconnectFailed:
            return None

    async def reconnect(self, reason: str, offset: int) -> _Connection:
        """Drop the broken connection and retry with exponential backoff within the budget."""
        old = self.current.conn if self.current else None
        self.close(reason)
        self.emitter.emit(ReconnectStarted, conn=old, reason=reason, offset=offset)
        started = time.monotonic()
        deadline = started + self.reconnect_budget
        backoff = BACKOFF_START_S
        last_error = "no attempt"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.emitter.emit(Error, conn=old,
                                  message=f"reconnect gave up after {self.reconnect_budget:.1f} s: {last_error}")
                raise ReconnectFailed(last_error)
            try:
                conn = await self.connect(min(self.attempt_timeout, remaining))
            except (OSError, TimeoutError) as exc:
                last_error = close_reason(exc)
                if isinstance(exc, ssl.SSLCertVerificationError):  # retrying will not fix it
                    self.emitter.emit(Error, conn=old, message=f"reconnect failed: {exc}")
                    raise ReconnectFailed(last_error) from exc
                await asyncio.sleep(min(self.retry_interval or backoff, max(0.0, deadline - time.monotonic())))
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            self.emitter.emit(Reconnected, conn=conn.conn, offset=offset, local=conn.local,
                              duration_ms=round((time.monotonic() - started) * 1000, 3))
            return conn


async def _stop(reporter: asyncio.Task[None], client: TcpClient) -> None:
    """The end of a workload: its progress reporter stopped, a connection still open aborted."""
    reporter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reporter
    if client.current is not None:
        client.close("aborted")


async def _download(client: TcpClient, size: int, rate: int, seed: int) -> int:
    emitter = client.emitter
    digest = hashlib.sha256()
    received = 0
    started = time.monotonic()
    gaps = GapMeter(DOWNLOAD_THRESHOLD_S)

    async def report_progress() -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            conn = client.current
            emitter.emit(Progress, conn=conn.conn if conn else None, bytes=received, total=size,
                         local=conn.local if conn else None, peer=conn.peer if conn else None)

    reporter = asyncio.create_task(report_progress())
    conn: _Connection | None = None
    try:
        conn = await client.first_connect()
        while conn is not None and received < size:
            reason = None
            try:
                conn.writer.write(Request("download", size=size, offset=received, seed=seed, rate=rate).encode())
                await conn.writer.drain()
                while received < size:
                    try:
                        async with asyncio.timeout(client.stall_timeout):
                            data = await conn.reader.read(READ_SIZE)
                    except TimeoutError:
                        reason = "stall"
                        break
                    if not data:
                        reason = "eof"
                        break
                    gap = gaps.arrival(time.monotonic(), time.time())
                    if gap is not None:
                        start, end, gap_ms = gap
                        emitter.emit(DataGap, conn=conn.conn, start_ts=start, end_ts=end, gap_ms=gap_ms, bytes=received)
                    data = data[: size - received]
                    digest.update(data)
                    received += len(data)
                    if client.resume:
                        client.keep_session(conn)
            except (OSError, asyncio.IncompleteReadError) as exc:
                reason = close_reason(exc)
            if received >= size:
                break
            try:
                conn = await client.reconnect(reason or "closed", received)
            except ReconnectFailed:
                break
        client.close("complete" if received >= size else "failed")
    finally:
        await _stop(reporter, client)
        expected = expected_sha256(size, seed)
        sha = digest.hexdigest()
        ok = received == size and sha == expected
        last = conn.conn if conn else None
        emitter.emit(Progress, conn=last, bytes=received, total=size)
        emitter.emit(GapHistogram, conn=last, **gaps.histogram())
        emitter.emit(TransferComplete, conn=last, bytes=received, sha256=sha, expected_sha256=expected,
                     ok=ok, duration_ms=round((time.monotonic() - started) * 1000, 3))
    return 0 if ok else 1


class _Frames:
    """What the echo loop sends and does with each reply: the echo's (RTT) or the call's (one-way)."""

    def __init__(self, emitter: Emitter, call: CallMeter | None = None) -> None:
        self.emitter = emitter
        self.call = call
        self.size = (CALL_FRAME if call else ECHO_FRAME).size
        self.sent: dict[int, int] = {}
        self.got, self.want = hashlib.sha256(), hashlib.sha256()
        self.bytes = 0

    def pack(self, seq: int) -> bytes:
        if self.call is None:
            return ECHO_FRAME.pack(seq, time.monotonic_ns())
        sent_ns = time.time_ns()
        self.sent[seq] = sent_ns
        self.call.sent += 1
        return CALL_FRAME.pack(seq, sent_ns, 0)

    def reply(self, conn: str, frame: bytes) -> int:
        """Handle one reply; its sequence number."""
        self.bytes += len(frame)
        if self.call is None:
            seq, sent_ns = ECHO_FRAME.unpack(frame)
            self.emitter.emit(EchoRtt, conn=conn, seq=seq, rtt_ms=round((time.monotonic_ns() - sent_ns) / 1e6, 3))
            return seq
        received = time.time()
        seq, sent_ns, server_ns = CALL_FRAME.unpack(frame)
        self.got.update(frame[:16])
        self.want.update(CALL_FRAME.pack(seq, self.sent.get(seq, -1), 0)[:16])
        self.emitter.emit(EchoRtt, conn=conn, seq=seq, rtt_ms=round((received - sent_ns / 1e9) * 1000, 3))
        for freeze in self.call.reply(sent_ns / 1e9, server_ns / 1e9, received):
            emit_freeze(self.emitter, conn, freeze)
        return seq


def emit_freeze(emitter: Emitter, conn: str | None, freeze: Freeze) -> None:
    emitter.emit(CallFreeze, conn=conn, direction=freeze.direction, start_ts=freeze.start_ts, end_ts=freeze.end_ts,
                 freeze_ms=freeze.ms, ongoing=freeze.ongoing)


async def _echo(client: TcpClient, interval_ms: float, duration_s: float, frames: _Frames | None = None) -> int:
    emitter = client.emitter
    frames = frames or _Frames(emitter)
    interval = max(interval_ms, 1.0) / 1000
    deadline = time.monotonic() + duration_s
    replies = 0
    seq = 0
    conn = await client.first_connect()
    if conn is None:
        return 1
    failed = False
    while time.monotonic() < deadline:
        outstanding: dict[int, int] = {}  # seq -> send time (ns); frames of a dead connection are lost
        reason = None
        try:
            conn.writer.write(Request("call" if frames.call else "echo").encode())
            next_send = time.monotonic()
            while time.monotonic() < deadline:
                now = time.monotonic()
                if now >= next_send:
                    outstanding[seq] = time.monotonic_ns()
                    conn.writer.write(frames.pack(seq))
                    seq += 1
                    next_send = max(next_send + interval, now)
                    await conn.writer.drain()
                if outstanding and (time.monotonic_ns() - min(outstanding.values())) / 1e9 >= client.stall_timeout:
                    reason = "stall"
                    break
                wait = max(0.0, min(next_send, deadline) - time.monotonic())
                try:
                    async with asyncio.timeout(wait):
                        frame = await conn.reader.readexactly(frames.size)
                except TimeoutError:
                    continue
                outstanding.pop(frames.reply(conn.conn, frame), None)
                replies += 1
        except (OSError, asyncio.IncompleteReadError) as exc:
            reason = close_reason(exc)
        if time.monotonic() >= deadline:
            break
        try:
            conn = await client.reconnect(reason or "closed", 0)
        except ReconnectFailed:
            failed = True
            break
    if frames.call is not None and not failed and conn is not None:  # the last replies in flight
        with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
            async with asyncio.timeout(max(0.2, 4 * interval)):
                while frames.call.received < frames.call.sent:
                    frames.reply(conn.conn, await conn.reader.readexactly(frames.size))
    client.close("complete" if not failed else "failed")
    return 0 if replies and not failed else 1


async def _call(client: TcpClient, interval_ms: float, duration_s: float) -> int:
    """The call workload over TCP: the echo loop with stamped frames (lab.endpoints.shared.call)."""
    interval = max(interval_ms, 1.0) / 1000
    meter = CallMeter(interval_s=interval, start_ts=time.time())
    frames = _Frames(client.emitter, meter)
    started = time.monotonic()
    code = await _echo(client, interval_ms, duration_s, frames)
    last = max(frames.sent.values(), default=time.time_ns()) / 1e9
    for freeze in meter.finish(last + interval):
        emit_freeze(client.emitter, None, freeze)
    client.emitter.emit(CallStats, datagrams=False, **meter.stats())
    digest, expected = frames.got.hexdigest(), frames.want.hexdigest()
    ok = code == 0 and meter.received > 0 and digest == expected
    client.emitter.emit(TransferComplete, bytes=frames.bytes, sha256=digest, expected_sha256=expected, ok=ok,
                        duration_ms=round((time.monotonic() - started) * 1000, 3))
    return 0 if ok else 1


async def _video(client: TcpClient, plan: VideoPlan) -> int:
    """The video workload over HTTP/1.1 (keep-alive): one GET per segment; a broken connection is
    replaced (reconnect) and the segment asked for again from its start."""
    emitter = client.emitter
    gaps = GapMeter(DOWNLOAD_THRESHOLD_S)
    received = 0
    started = time.monotonic()
    conn: _Connection | None = None

    async def report_progress() -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            current = client.current
            emitter.emit(Progress, conn=current.conn if current else None, bytes=received,
                         total=plan.count * plan.segment_bytes, local=current.local if current else None,
                         peer=current.peer if current else None)

    async def get(current: _Connection, path: str) -> bytes:
        nonlocal received
        current.writer.write(f"GET {path} HTTP/1.1\r\nHost: {client.server_name}\r\n"
                             "User-Agent: quic-migration-lab\r\n\r\n".encode())
        await current.writer.drain()
        async with asyncio.timeout(client.stall_timeout):
            head = await current.reader.readuntil(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        status = lines[0].split()[1] if len(lines[0].split()) > 1 else "?"
        length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                       if line.lower().startswith("content-length:")), 0)
        body = bytearray()
        while len(body) < length:
            async with asyncio.timeout(client.stall_timeout):
                data = await current.reader.read(min(READ_SIZE, length - len(body)))
            if not data:
                raise asyncio.IncompleteReadError(bytes(body), length)
            gap = gaps.arrival(time.monotonic(), time.time())
            if gap is not None:
                emitter.emit(DataGap, conn=current.conn, start_ts=gap[0], end_ts=gap[1], gap_ms=gap[2], bytes=received)
            body += data
            received += len(data)
        if status != "200":
            raise ValueError(f"HTTP status {status}")
        return bytes(body)

    async def fetch(index: int, path: str) -> bytes | None:
        nonlocal conn
        while conn is not None:
            gaps.last_mono, gaps.last_wall = time.monotonic(), time.time()  # the idle time before is no gap
            try:
                return await get(conn, path)
            except TimeoutError:
                reason = "stall"
            except ValueError as exc:
                emitter.emit(Error, conn=conn.conn, message=f"segment {index}: {exc}")
                return None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                reason = close_reason(exc)
            try:
                conn = await client.reconnect(reason, received)
            except ReconnectFailed:
                conn = None
        return None

    reporter = asyncio.create_task(report_progress())
    result = PlayerResult()
    try:
        conn = await client.first_connect()
        if conn is not None:
            result = await run_player(plan, fetch, lambda cls, **fields: emitter.emit(
                cls, conn=client.current.conn if client.current else None, **fields))
        client.close("complete" if result.ok else "failed")
    finally:
        await _stop(reporter, client)
        last = conn.conn if conn else None
        emitter.emit(Progress, conn=last, bytes=received, total=plan.count * plan.segment_bytes)
        emitter.emit(GapHistogram, conn=last, **gaps.histogram())
        emitter.emit(TransferComplete, conn=last, bytes=result.bytes, sha256=result.sha256,
                     expected_sha256=result.expected_sha256, ok=result.ok,
                     duration_ms=round((time.monotonic() - started) * 1000, 3))
    return 0 if result.ok else 1


async def run_tcp_client(server: tuple[str, int], server_name: str, workload: str, size: int, rate: int,
                         interval_ms: float, duration_s: float, cafile: str, emitter: Emitter, keylog: str | None,
                         local: str | None = None, *, stall_timeout: float = 1.5, reconnect_budget: float = 30.0,
                         user_timeout_ms: int | None = None, seed: int = 1, video: VideoPlan | None = None,
                         resume: bool = False, attempt_timeout: float = CONNECT_TIMEOUT_S,
                         retry_interval: float | None = None) -> int:
    """Run one workload (download, echo, call or video) against the TCP server; 0 when it succeeded.

    ``user_timeout_ms`` (TCP_USER_TIMEOUT) defaults to twice the stall timeout, so that the kernel
    too gives up on a dead path instead of retransmitting for 15 minutes (tcp_retries2).
    """
    if user_timeout_ms is None:
        user_timeout_ms = int(stall_timeout * 2000)
    client = TcpClient(server, server_name, cafile, emitter, keylog, local, stall_timeout, reconnect_budget,
                       user_timeout_ms, resume, attempt_timeout, retry_interval)
    if workload == "download":
        return await _download(client, size, rate, seed)
    if workload == "echo":
        return await _echo(client, interval_ms, duration_s)
    if workload == "call":
        return await _call(client, interval_ms, duration_s)
    if workload == "video":
        return await _video(client, video or VideoPlan())
    raise ValueError(f"unknown workload {workload!r} (download, echo, call or video)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab.endpoints.tcp.client", description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="server:4433", help="host:port (default server:4433)")
    parser.add_argument("--server-name", default=None, help="TLS server name (default: the host)")
    parser.add_argument("--workload", choices=("download", "echo", "call"), default="download")
    parser.add_argument("--size", default="4MB", help="download size (e.g. 4MB, 1MiB)")
    parser.add_argument("--rate", default="0", help="paced download rate, e.g. 1MB/s, or bytes per second; 0 = unpaced")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--interval-ms", type=float, default=100.0, help="echo interval")
    parser.add_argument("--duration", type=float, default=10.0, help="echo duration in seconds")
    parser.add_argument("--ca", required=True, help="CA certificate to verify the server with")
    parser.add_argument("--keylog", default=None, help="NSS key log file (default: $SSLKEYLOGFILE)")
    parser.add_argument("--local", default=None, help="local address to bind, ip or ip:port")
    parser.add_argument("--stall-timeout", type=float, default=1.5,
                        help="seconds without data before the application gives up on the connection")
    parser.add_argument("--reconnect-budget", type=float, default=30.0, help="max seconds spent reconnecting")
    parser.add_argument("--user-timeout-ms", type=int, default=None,
                        help="TCP_USER_TIMEOUT (default: 2 x stall timeout)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server = parse_host_port(args.server, 4433)
    try:
        return asyncio.run(run_tcp_client(
            server, args.server_name or server[0], args.workload, parse_size(args.size),
            parse_byte_rate(args.rate, bare=True), args.interval_ms, args.duration, args.ca,
            Emitter("client", transport="tcp"),
            args.keylog or os.environ.get("SSLKEYLOGFILE"), args.local, stall_timeout=args.stall_timeout,
            reconnect_budget=args.reconnect_budget, user_timeout_ms=args.user_timeout_ms, seed=args.seed))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
