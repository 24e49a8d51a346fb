"""The TCP + TLS 1.3 baseline server: the same workloads and events as the QUIC server.

A TCP connection is bound to its 4-tuple, so any network change (NAT rebinding, a new address)
kills it; the client has to notice, reconnect and resume. This server is the other half of that
comparison: one request line per connection (``workload.Request``), then either the deterministic
download from ``request.offset`` (optionally paced at ``request.rate`` bytes/s) or an echo of
``ECHO_FRAME`` frames until the client closes.

Each connection gets a short random id (``conn``) since TCP has no connection ID of its own.
``python -m lab.endpoints.tcp.server --port 4433 --cert ... --key ...`` runs it standalone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import secrets
import socket
import ssl
import sys
import time

from lab.endpoints.shared.call import CALL_FRAME
from lab.endpoints.shared.video import parse_segment_path, segment_body
from lab.endpoints.shared.workload import CHUNK, ECHO_FRAME, PACING_TICK_S, Request, stream_bytes
from lab.events import ConnectionClosed, Emitter, Error, HandshakeCompleted, SessionResumption, normalise_address

HANDSHAKE_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 10.0
HTTP_IDLE_TIMEOUT_S = 60.0  # a kept-alive HTTP/1.1 connection waits this long for its next request
# How long unacknowledged data may sit in the send queue before the kernel gives up on the peer.
SERVER_USER_TIMEOUT_MS = 10_000


def server_tls_context(certfile: str, keyfile: str, keylog: str | None = None) -> ssl.SSLContext:
    """TLS 1.3 only, like QUIC; ``keylog`` gets the NSS key log so pcaps can be decrypted."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(certfile, keyfile)
    if keylog:
        context.keylog_filename = keylog
    return context


def tune_socket(sock: socket.socket | None, user_timeout_ms: int) -> None:
    """TCP_NODELAY (echo RTTs are not Nagle-delayed) and TCP_USER_TIMEOUT (bounded dead-peer wait)."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if user_timeout_ms > 0 and hasattr(socket, "TCP_USER_TIMEOUT"):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, user_timeout_ms)


def close_reason(exc: BaseException | None) -> str:
    """A short, stable reason for connection_closed / reconnect_started events."""
    if exc is None:
        return "closed"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, (asyncio.IncompleteReadError, EOFError)):
        return "eof"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, BrokenPipeError):
        return "broken_pipe"
    if isinstance(exc, ssl.SSLError):
        return f"tls:{exc.reason or exc.__class__.__name__}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno)).lower()
    return exc.__class__.__name__


async def _send_download(writer: asyncio.StreamWriter, request: Request) -> None:
    if request.rate <= 0:
        for piece in stream_bytes(request.size, request.offset, request.seed):
            writer.write(piece)
            await writer.drain()
        return
    # Paced: small pieces (about one tick's worth) at their scheduled times, so that the client's
    # read timestamps are smooth and a gap means the network, not our pacing.
    piece_size = max(1200, min(CHUNK, int(request.rate * PACING_TICK_S)))
    start = time.monotonic()
    sent = 0
    for chunk in stream_bytes(request.size, request.offset, request.seed):
        for index in range(0, len(chunk), piece_size):
            delay = start + sent / request.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            piece = chunk[index: index + piece_size]
            writer.write(piece)
            sent += len(piece)
            await writer.drain()


def _stamp(frame: bytes) -> bytes:
    """A call frame comes back stamped with the time it arrived here (wall clock, ns)."""
    seq, sent_ns, _ = CALL_FRAME.unpack(frame)
    return CALL_FRAME.pack(seq, sent_ns, time.time_ns())


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, call: bool = False) -> None:
    """Echo frames until a clean EOF: ECHO_FRAMEs as they are, or (a call) CALL_FRAMEs stamped."""
    size = CALL_FRAME.size if call else ECHO_FRAME.size
    while True:
        try:
            frame = await reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return  # clean EOF between frames
        writer.write(_stamp(frame) if call else frame)
        await writer.drain()


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes) -> None:
    """HTTP/1.1 with keep-alive, for the video workload: GET of a segment path, else 404."""
    while line:
        while True:  # the request's header lines, up to the empty one
            header = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT_S)
            if header in (b"\r\n", b"\n", b""):
                break
        parts = line.decode(errors="replace").split()
        segment = parse_segment_path(parts[1]) if len(parts) >= 2 and parts[0] == "GET" else None
        if segment is None:
            body, status = b"not found\n", b"404 Not Found"
        else:
            body, status = segment_body(*segment), b"200 OK"
        writer.write(b"HTTP/1.1 " + status + b"\r\nServer: quic-migration-lab\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n")
        for index in range(0, len(body), CHUNK):
            writer.write(body[index:index + CHUNK])
            await writer.drain()
        line = await asyncio.wait_for(reader.readline(), HTTP_IDLE_TIMEOUT_S)  # the next request, kept alive


async def handle_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            context: ssl.SSLContext, emitter: Emitter) -> None:
    conn = secrets.token_hex(4)
    tune_socket(writer.get_extra_info("socket"), SERVER_USER_TIMEOUT_MS)
    peer = normalise_address(writer.get_extra_info("peername"))
    local = normalise_address(writer.get_extra_info("sockname"))
    started = time.monotonic()
    failure: BaseException | None = None
    reason = "closed"
    try:
        await writer.start_tls(context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S)
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        emitter.emit(Error, conn=conn, message=f"TLS handshake with {peer} failed: {close_reason(exc)}")
        writer.transport.abort()
        return
    ssl_object = writer.get_extra_info("ssl_object")
    emitter.emit(HandshakeCompleted, conn=conn, local=local, peer=peer,
                 alpn=ssl_object.selected_alpn_protocol() if ssl_object else None,
                 duration_ms=round((time.monotonic() - started) * 1000, 3))
    # TLS 1.3 tickets are OpenSSL's (the context's stateless ticket key): a reconnect offering one
    # resumes; this server knows only whether it did (offered = resumed).
    reused = bool(ssl_object is not None and ssl_object.session_reused)
    emitter.emit(SessionResumption, conn=conn, offered=reused, resumed=reused)
    try:
        line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT_S)
        if not line:
            reason = "eof"
            return
        if line.startswith(b"GET "):
            await _http(reader, writer, line)
            reason = "eof"
            return
        request = Request.decode(line)
        if request.op == "call":
            await _echo(reader, writer, call=True)
            reason = "eof"
        elif request.op == "download":
            await _send_download(writer, request)
            reason = "complete"
        else:
            await _echo(reader, writer)
            reason = "eof"
    except (ValueError, TypeError) as exc:
        emitter.emit(Error, conn=conn, message=f"bad request from {peer}: {exc}")
        reason = "bad_request"
    except (OSError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError) as exc:
        failure = exc
        reason = close_reason(exc)
    except asyncio.CancelledError as exc:  # the server (or its event loop) is shutting down
        failure = exc
        reason = "server_shutdown"
    finally:
        emitter.emit(ConnectionClosed, conn=conn, reason=reason)
        if failure is not None:
            writer.transport.abort()
        else:
            writer.close()
            # Wait briefly for the TLS close_notify exchange; a cancellation here (server shutting
            # down) is not an error of this connection, and swallowing it avoids Python 3.11's
            # "Exception in callback" noise from StreamReaderProtocol.
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (OSError, TimeoutError, asyncio.CancelledError):
                writer.transport.abort()


async def serve_tcp(host: str, port: int, certfile: str, keyfile: str, emitter: Emitter,
                    keylog: str | None) -> asyncio.AbstractServer:
    """Listen on host:port; TLS is started per connection so the handshake can be timed."""
    context = server_tls_context(certfile, keyfile, keylog)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A handler cancelled at shutdown ends quietly: Python 3.11's StreamReaderProtocol would
        # otherwise log "Exception in callback" for it.
        with contextlib.suppress(asyncio.CancelledError):
            await handle_connection(reader, writer, context, emitter)

    # "::" alone would listen on IPv6 only (asyncio sets IPV6_V6ONLY); None binds every family.
    bind = None if host in ("::", "", "0.0.0.0") else host
    return await asyncio.start_server(on_connect, bind, port, reuse_address=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab.endpoints.tcp.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="::", help="address to listen on (default: all, dual-stack)")
    parser.add_argument("--port", type=int, default=4433)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--keylog", default=None, help="NSS key log file (default: $SSLKEYLOGFILE)")
    return parser


async def _main(args: argparse.Namespace) -> None:
    emitter = Emitter("server", transport="tcp")
    server = await serve_tcp(args.host, args.port, args.cert, args.key, emitter,
                             args.keylog or os.environ.get("SSLKEYLOGFILE"))
    for sock in server.sockets:
        print(f"tcp_server listening on {normalise_address(sock.getsockname())}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
