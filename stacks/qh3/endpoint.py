#!/usr/bin/env python3
"""A quic-interop-runner endpoint on qh3: a second, independent QUIC stack for the lab.

ONE standalone program, qh3 + the standard library only (it must not import ``lab`` or
``aioquic``: the lab runs it as a black-box foreign endpoint). See docs/stacks.md.

Environment (as the runner sets it): ``ROLE`` (server | client), ``TESTCASE``, ``REQUESTS``
(space-separated URLs), ``SSLKEYLOGFILE``, ``QLOGDIR``. Mounts: ``/certs`` (cert.pem, priv.key),
``/www`` (served), ``/downloads`` (client output). Exit codes: 0 success, 1 failure, 127 unsupported
test case (also the answer to the runner's compliance probe with a random name).

Test cases: handshake, transfer, rebind-port, rebind-addr (hq-interop), http3 (h3). The client
accepts connectionmigration too and runs it as a transfer (qh3 2.1 parses a server's
preferred_address but never moves to it); the server answers connectionmigration with 127, since
qh3 cannot advertise a preferred_address.

Overrides for local runs and the lab (the runner never sets them): ``ENDPOINT_ROOT`` (prefix of
/certs, /www, /downloads), ``PORT`` (server: listen port, 443), ``PROBE_AFTER_MS`` (client: send a
PING after this long without receiving anything while downloading, 200; 0 disables),
``CLIENT_TIMEOUT`` (client: seconds for the whole run, 120).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import posixpath
import signal
import socket
import ssl
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import qh3
from qh3.asyncio.client import connect
from qh3.asyncio.protocol import QuicConnectionProtocol
from qh3.asyncio.server import QuicServer
from qh3.h3.connection import H3_ALPN, H3Connection
from qh3.h3.events import DataReceived, H3Event, HeadersReceived
from qh3.h3.events import StreamReset as H3StreamReset
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.connection import QuicConnectionError
from qh3.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent, StreamDataReceived, StreamReset
from qh3.quic.logger import QuicFileLogger

UNSUPPORTED = 127
HQ_ALPN = "hq-interop"
H3 = H3_ALPN[0]

# The runner gives both sides TESTCASE=transfer for rebind-port/rebind-addr and the client
# "transfer" for connectionmigration; the names are accepted anyway so that the lab can run them.
CLIENT_TESTCASES = frozenset({"handshake", "transfer", "http3", "rebind-port", "rebind-addr", "connectionmigration"})
SERVER_TESTCASES = CLIENT_TESTCASES - {"connectionmigration"}  # qh3 cannot advertise preferred_address

CHUNK = 64 * 1024
SEND_BACKLOG = 256 * 1024  # bytes queued per stream before the server waits for the window to move
REQUEST_LIMIT = 4096  # an hq-interop request line longer than this is refused


def log(message: str) -> None:
    print(f"qh3-endpoint: {message}", file=sys.stderr, flush=True)


def root(env) -> Path:
    return Path(env.get("ENDPOINT_ROOT") or "/")


def alpn_for(testcase: str) -> str:
    return H3 if testcase == "http3" else HQ_ALPN


def open_keylog(env):
    path = env.get("SSLKEYLOGFILE")
    if not path:
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process


def make_qlogger(env) -> QuicFileLogger | None:
    directory = env.get("QLOGDIR")
    if not directory:
        return None
    os.makedirs(directory, exist_ok=True)
    return QuicFileLogger(directory)


# --- server -----------------------------------------------------------------------------------


def resolve_under(www: Path, request_path: str) -> Path | None:
    """The file a request path names inside www, or None (missing, a directory, or outside www)."""
    path = unquote(urlsplit(request_path).path)
    normal = posixpath.normpath("/" + path.lstrip("/"))
    candidate = (www / normal.lstrip("/")).resolve()
    try:
        candidate.relative_to(www.resolve())
    except ValueError:
        return None
    return candidate if candidate.is_file() else None


class Outgoing:
    """A file being sent on one stream, fed to qh3 as its send buffer drains."""

    def __init__(self, path: Path, name: str) -> None:
        self.name = name
        self.file = open(path, "rb")  # noqa: SIM115 - closed when the stream is finished
        self.remaining = path.stat().st_size

    def close(self) -> None:
        self.file.close()


class ServerProtocol(QuicConnectionProtocol):
    www: Path = Path("/www")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._h3: H3Connection | None = None
        self._alpn: str | None = None
        self._requests: dict[int, bytearray] = {}
        self._outgoing: dict[int, Outgoing] = {}
        self._started = time.monotonic()

    @property
    def peer(self) -> str:
        address = getattr(self._quic, "_remote_addr", None)
        return f"{address[0]}:{address[1]}" if address else "?"

    # qh3 calls transmit() after every datagram and timer: feed the files there.
    def transmit(self) -> None:
        if self._outgoing:
            self._pump()
        super().transmit()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            self._alpn = event.alpn_protocol
            log(f"connected: peer {self.peer}, alpn {self._alpn}, "
                f"cid {self._quic.original_destination_connection_id.hex()}")
            if self._alpn == H3:
                self._h3 = H3Connection(self._quic)
        elif isinstance(event, ConnectionTerminated):
            log(f"connection closed: peer {self.peer}, error {event.error_code} {event.reason_phrase!r}, "
                f"after {time.monotonic() - self._started:.2f} s")
            for outgoing in self._outgoing.values():
                outgoing.close()
            self._outgoing.clear()
            return
        if self._h3 is not None:
            for h3_event in self._h3.handle_event(event):
                self._h3_event(h3_event)
        elif isinstance(event, StreamDataReceived):
            self._hq_data(event)
        elif isinstance(event, StreamReset):
            self._cancel(event.stream_id)

    def _hq_data(self, event: StreamDataReceived) -> None:
        if event.stream_id in self._outgoing:
            return
        buffer = self._requests.setdefault(event.stream_id, bytearray())
        buffer += event.data
        if b"\n" not in buffer and not event.end_stream:
            if len(buffer) > REQUEST_LIMIT:
                self._requests.pop(event.stream_id)
                self._quic.reset_stream(event.stream_id, 0x1)
            return
        line = bytes(self._requests.pop(event.stream_id)).split(b"\n", 1)[0].strip()
        method, _, target = line.decode("latin-1").partition(" ")
        if method != "GET" or not target:
            log(f"bad hq-interop request on stream {event.stream_id}: {line[:80]!r}")
            self._quic.reset_stream(event.stream_id, 0x1)
            return
        self._serve(event.stream_id, target.split(" ", 1)[0])

    def _h3_event(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            headers = dict(event.headers)
            method, target = headers.get(b":method", b""), headers.get(b":path", b"")
            if method != b"GET" or not target:
                self._h3.send_headers(event.stream_id, [(b":status", b"405")], end_stream=True)
                return
            self._serve(event.stream_id, target.decode("latin-1"))
        elif isinstance(event, H3StreamReset):
            self._cancel(event.stream_id)

    def _serve(self, stream_id: int, target: str) -> None:
        path = resolve_under(self.www, target)
        if path is None:
            log(f"not found: {target} (stream {stream_id}, peer {self.peer})")
            if self._h3 is not None:
                self._h3.send_headers(stream_id, [(b":status", b"404")], end_stream=True)
            else:
                self._quic.reset_stream(stream_id, 0x1)
            return
        outgoing = Outgoing(path, target)
        log(f"request {target}: {outgoing.remaining} bytes on stream {stream_id}, peer {self.peer}")
        if self._h3 is not None:
            self._h3.send_headers(stream_id, [(b":status", b"200"), (b"server", f"qh3/{qh3.__version__}".encode()),
                                              (b"content-length", str(outgoing.remaining).encode())])
        self._outgoing[stream_id] = outgoing
        self._transmit_soon()

    def _pump(self) -> None:
        quic = self._quic
        for stream_id, outgoing in list(self._outgoing.items()):
            while quic.get_send_buffer_size(stream_id) < SEND_BACKLOG:
                chunk = outgoing.file.read(min(CHUNK, outgoing.remaining))
                outgoing.remaining -= len(chunk)
                end = outgoing.remaining <= 0 or not chunk
                if self._h3 is not None:
                    self._h3.send_data(stream_id, chunk, end_stream=end)
                else:
                    quic.send_stream_data(stream_id, chunk, end_stream=end)
                if end:
                    outgoing.close()
                    del self._outgoing[stream_id]
                    log(f"sent {outgoing.name} (stream {stream_id}, peer {self.peer})")
                    break

    def _cancel(self, stream_id: int) -> None:
        self._requests.pop(stream_id, None)
        outgoing = self._outgoing.pop(stream_id, None)
        if outgoing is not None:
            outgoing.close()
            log(f"stream {stream_id} reset by the peer: {outgoing.name} not finished")


def server_socket(port: int) -> socket.socket:
    """A UDP socket on [::]:port that takes IPv4 too; 0.0.0.0:port where the host has no IPv6."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
        return sock
    except OSError as exc:
        log(f"no dual-stack socket ({exc}); listening on IPv4 only")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", port))
        return sock


async def serve(env) -> int:
    testcase = env.get("TESTCASE", "")
    base = root(env)
    alpn = alpn_for(testcase)
    configuration = QuicConfiguration(is_client=False, alpn_protocols=[alpn], secrets_log_file=open_keylog(env),
                                      quic_logger=make_qlogger(env))
    if alpn == H3:
        # qh3's H3Connection always sends SETTINGS_H3_DATAGRAM=1, and a qh3 peer closes the connection
        # (H3_SETTINGS_ERROR) unless the transport parameters also carry max_datagram_frame_size.
        configuration.max_datagram_frame_size = 65536
    configuration.load_cert_chain(base / "certs" / "cert.pem", base / "certs" / "priv.key")
    ServerProtocol.www = base / "www"
    port = int(env.get("PORT") or 443)

    loop = asyncio.get_running_loop()
    sock = server_socket(port)
    transport, server = await loop.create_datagram_endpoint(
        lambda: QuicServer(configuration=configuration, create_protocol=ServerProtocol), sock=sock)
    host, bound = sock.getsockname()[:2]
    log(f"qh3 {qh3.__version__} server listening on UDP [{host}]:{bound}, testcase {testcase}, alpn {alpn}, "
        f"www {ServerProtocol.www}")
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    # Close every connection, give the CONNECTION_CLOSE a moment, then write what qlog traces remain.
    protocols = set(server._protocols.values())
    log(f"stopping: closing {len(protocols)} connection(s)")
    for protocol in protocols:
        protocol.close()
    if protocols:
        await asyncio.wait([asyncio.ensure_future(p.wait_closed()) for p in protocols], timeout=1.0)
    logger = configuration.quic_logger
    if logger is not None:
        for trace in list(logger._traces):
            logger.end_trace(trace)
    transport.close()
    return 0


# --- client -----------------------------------------------------------------------------------


class Download:
    def __init__(self, url: str, path: Path, future: asyncio.Future) -> None:
        self.url = url
        self.path = path
        self.file = open(path, "wb")  # noqa: SIM115 - closed when the stream ends
        self.size = 0
        self.future = future
        self.status: bytes | None = None

    def finish(self, error: str | None = None) -> None:
        if self.future.done():
            return
        self.file.close()
        if error is None:
            self.future.set_result(self.size)
        else:
            self.path.unlink(missing_ok=True)  # no partial file: /downloads holds what arrived whole
            self.future.set_exception(ConnectionError(error))


def save_name(url: str) -> str:
    name = posixpath.basename(unquote(urlsplit(url).path))
    return name or "index.html"


class ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args, alpn: str = HQ_ALPN, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._h3 = H3Connection(self._quic) if alpn == H3 else None
        self._downloads: dict[int, Download] = {}
        self.last_received = self._loop.time()
        self.probes = 0

    def datagram_received(self, data, addr) -> None:
        self.last_received = self._loop.time()
        super().datagram_received(data, addr)

    def datagrams_received(self, data, addr) -> None:
        self.last_received = self._loop.time()
        super().datagrams_received(data, addr)

    def request(self, url: str, downloads: Path) -> Download:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        stream_id = self._quic.get_next_available_stream_id()
        download = Download(url, downloads / save_name(url), self._loop.create_future())
        self._downloads[stream_id] = download
        if self._h3 is not None:
            authority = parts.netloc.encode()
            self._h3.send_headers(stream_id, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", authority),
                                              (b":path", target.encode()),
                                              (b"user-agent", f"qh3/{qh3.__version__}".encode())], end_stream=True)
        else:
            self._quic.send_stream_data(stream_id, f"GET {target}\r\n".encode(), end_stream=True)
        self._transmit_soon()
        return download

    def probe(self) -> None:
        self.probes += 1
        self._quic.send_ping(self.probes)
        self.transmit()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            for download in self._downloads.values():
                download.finish(f"connection closed (error {event.error_code} {event.reason_phrase!r})")
            return
        if self._h3 is not None:
            for h3_event in self._h3.handle_event(event):
                self._h3_event(h3_event)
            return
        download = self._downloads.get(getattr(event, "stream_id", -1))
        if download is None:
            return
        if isinstance(event, StreamDataReceived):
            self._data(download, event.data, event.end_stream)
        elif isinstance(event, StreamReset):
            download.finish(f"stream reset by the server (error {event.error_code})")

    def _h3_event(self, event: H3Event) -> None:
        download = self._downloads.get(getattr(event, "stream_id", -1))
        if download is None:
            return
        if isinstance(event, HeadersReceived):
            download.status = dict(event.headers).get(b":status")
            if download.status != b"200":
                download.finish(f"HTTP status {download.status!r}")
            elif event.stream_ended:
                download.finish()
        elif isinstance(event, DataReceived):
            self._data(download, event.data, event.stream_ended)
        elif isinstance(event, H3StreamReset):
            download.finish(f"stream reset by the server (error {event.error_code})")

    def _data(self, download: Download, data: bytes, end: bool) -> None:
        if download.future.done():
            return
        download.file.write(data)
        download.size += len(data)
        if end:
            download.finish()


async def keep_probing(protocol: ClientProtocol, after: float) -> None:
    """While downloading: after `after` s without receiving anything, PING, so the next packet leaves now.

    After a network change under the client, this is the packet that reaches the server from the
    client's new address (its path then gets validated) instead of waiting for a retransmission.
    """
    loop = asyncio.get_running_loop()
    last_probe = 0.0
    while True:
        quiet_since = max(protocol.last_received, last_probe)
        wait = quiet_since + after - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
            continue
        protocol.probe()
        last_probe = loop.time()
        log(f"probe sent (#{protocol.probes}, nothing received for {last_probe - protocol.last_received:.3f} s)")


async def fetch(env, urls: list[str]) -> int:
    testcase = env.get("TESTCASE", "")
    alpn = alpn_for(testcase)
    downloads = root(env) / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    first = urlsplit(urls[0])
    host, port = first.hostname or "localhost", first.port or 443
    try:
        ipaddress.ip_address(host)
        server_name = None
    except ValueError:
        server_name = host
    configuration = QuicConfiguration(is_client=True, alpn_protocols=[alpn], verify_mode=ssl.CERT_NONE,
                                      server_name=server_name, secrets_log_file=open_keylog(env),
                                      quic_logger=make_qlogger(env))
    probe_after = float(env.get("PROBE_AFTER_MS") or 200) / 1000
    started = time.monotonic()
    log(f"qh3 {qh3.__version__} client: testcase {testcase}, alpn {alpn}, {len(urls)} file(s) from {host}:{port}")

    async with connect(host, port, configuration=configuration,
                       create_protocol=lambda *a, **k: ClientProtocol(*a, alpn=alpn, **k)) as protocol:
        quic = protocol._quic
        log(f"connected: server {quic._remote_addr[0]}:{quic._remote_addr[1]}, alpn {alpn}, "
            f"handshake {time.monotonic() - started:.3f} s")
        batch = []
        try:
            for url in urls:
                batch.append(protocol.request(url, downloads))
        except QuicConnectionError as exc:
            log(f"request failed: {exc}")
            for download in protocol._downloads.values():
                download.finish(f"not requested: {exc}")
        prober = asyncio.ensure_future(keep_probing(protocol, probe_after)) if probe_after > 0 else None
        try:
            results = await asyncio.gather(*(d.future for d in batch), return_exceptions=True)
        finally:
            if prober is not None:
                prober.cancel()
        failed = len(urls) - len(batch)
        for download, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                failed += 1
                log(f"failed {download.url}: {result}")
            else:
                log(f"saved {download.path} ({result} bytes)")
        log(f"{len(urls) - failed}/{len(urls)} file(s) in {time.monotonic() - started:.3f} s, "
            f"{protocol.probes} probe(s) sent; closing")
        protocol.close()
        await asyncio.wait_for(protocol.wait_closed(), timeout=10)
    log("connection closed")
    return 1 if failed else 0


def run_client(env) -> int:
    testcase = env.get("TESTCASE", "")
    if testcase not in CLIENT_TESTCASES:
        log(f"unsupported test case {testcase!r}")
        return UNSUPPORTED
    urls = env.get("REQUESTS", "").split()
    if not urls:
        log("REQUESTS is empty: nothing to download")
        return 0
    timeout = float(env.get("CLIENT_TIMEOUT") or 120)

    async def bounded() -> int:
        # A timeout leaves qh3's shielded handshake waiter behind, failed later with ConnectionError:
        # that is no news, so asyncio's "exception was never retrieved" for it is not printed.
        loop = asyncio.get_running_loop()

        def quiet(loop, context) -> None:
            if not isinstance(context.get("exception"), ConnectionError):
                loop.default_exception_handler(context)

        loop.set_exception_handler(quiet)
        return await asyncio.wait_for(fetch(env, urls), timeout)

    try:
        return asyncio.run(bounded())
    except TimeoutError:
        log(f"client failed: no result within {timeout:g} s")
    except (ConnectionError, OSError, ValueError, QuicConnectionError) as exc:
        log(f"client failed: {exc.__class__.__name__}: {exc}")
    return 1


def run_server(env) -> int:
    testcase = env.get("TESTCASE", "")
    if testcase not in SERVER_TESTCASES:
        log(f"unsupported test case {testcase!r}")
        return UNSUPPORTED
    try:
        return asyncio.run(serve(env))
    except (OSError, ValueError) as exc:
        log(f"server failed: {exc.__class__.__name__}: {exc}")
        return 1


def main(env=None) -> int:
    env = os.environ if env is None else env
    role = env.get("ROLE", "")
    if role == "server":
        return run_server(env)
    if role == "client":
        return run_client(env)
    log(f"ROLE must be server or client, not {role!r}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
