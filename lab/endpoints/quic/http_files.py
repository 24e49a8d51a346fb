"""Static files over QUIC for the interop runner: HTTP/3 ("h3") and HTTP/0.9 ("hq-interop").

Server side: ``HttpFileHandler`` is created by a QUIC server once the handshake has negotiated
h3 or hq-interop, and is then given every QUIC event of that connection. It serves files from
``www``: GET -> the file's bytes; a missing file -> 404 (h3) or a reset stream (hq-interop, which
has no status codes); anything resolving outside ``www`` is refused the same way.

Client side: ``fetch_files`` downloads URLs over one connection, concurrently, into a directory
(the interop runner's ``/downloads``). ``FileClientProtocol`` is the aioquic protocol it uses.

hq-interop, as the interop runner uses it: the client opens one bidirectional stream per file,
sends ``GET /path\\r\\n`` and FIN; the server answers with the raw bytes and FIN.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from aioquic.asyncio import QuicConnectionProtocol, connect
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamDataReceived, StreamReset
from aioquic.quic.logger import QuicFileLogger

from lab.endpoints.quic import aioquic_seam as seam
from lab.events import normalise_address

HQ_ALPN = "hq-interop"
H3 = H3_ALPN[0]  # "h3"
FILE_ALPNS = (H3, HQ_ALPN)
HQ_NOT_FOUND = 0x10  # hq-interop has no status codes: a refused request is a reset stream
MAX_REQUEST_LINE = 8192


def resolve_file(www: Path, request_path: str) -> Path | None:
    """The file under ``www`` that ``request_path`` names, or None (missing, a directory, or outside)."""
    path = unquote(urlsplit(request_path).path)
    if not path.startswith("/") or "\x00" in path:
        return None
    root = www.resolve()
    candidate = (root / path.lstrip("/")).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


class HttpFileHandler:
    """Serves ``www`` on one QUIC connection, for ALPN "h3" or "hq-interop"."""

    def __init__(self, protocol: QuicConnectionProtocol, alpn: str, www: Path) -> None:
        if alpn not in FILE_ALPNS:
            raise ValueError(f"HttpFileHandler serves {FILE_ALPNS}, not {alpn!r}")
        self.protocol = protocol
        self.alpn = alpn
        self.www = Path(www)
        self.quic = seam.protocol_connection(protocol)
        self.http = H3Connection(self.quic) if alpn == H3 else None
        self._requests: dict[int, bytearray] = {}  # hq-interop: request bytes per stream until the line ends
        self._answered: set[int] = set()
        self.served: list[tuple[str, int, int]] = []  # (path, status, bytes) for logs and tests

    def quic_event_received(self, event: QuicEvent) -> None:
        if self.http is not None:
            for h3_event in self.http.handle_event(event):
                self._h3_event(h3_event)
        elif isinstance(event, StreamDataReceived):
            self._hq_data(event)
        elif isinstance(event, StreamReset):
            self._requests.pop(event.stream_id, None)
        self.protocol.transmit()

    # --- HTTP/3 ---------------------------------------------------------------------------

    def _h3_event(self, event: H3Event) -> None:
        if not isinstance(event, HeadersReceived):
            return  # request bodies (DataReceived) are ignored: GET only
        headers = dict(event.headers)
        method = headers.get(b":method", b"").decode(errors="replace")
        path = headers.get(b":path", b"/").decode(errors="replace")
        assert self.http is not None
        if method not in ("GET", "HEAD"):
            self._h3_reply(event.stream_id, path, 405, b"method not allowed\n")
            return
        file = resolve_file(self.www, path)
        if file is None:
            self._h3_reply(event.stream_id, path, 404, b"not found\n")
            return
        body = file.read_bytes()
        self._h3_reply(event.stream_id, path, 200, b"" if method == "HEAD" else body, len(body))

    def _h3_reply(self, stream_id: int, path: str, status: int, body: bytes, length: int | None = None) -> None:
        assert self.http is not None
        self.http.send_headers(stream_id, [
            (b":status", str(status).encode()),
            (b"server", b"quic-migration-lab"),
            (b"content-length", str(len(body) if length is None else length).encode()),
        ])
        self.http.send_data(stream_id, body, end_stream=True)
        self.served.append((path, status, len(body)))

    # --- hq-interop (HTTP/0.9) ------------------------------------------------------------

    def _hq_data(self, event: StreamDataReceived) -> None:
        if event.stream_id in self._answered:
            return  # the rest of a request already answered (e.g. a separate FIN)
        buffer = self._requests.setdefault(event.stream_id, bytearray())
        buffer += event.data
        if b"\n" not in buffer and not event.end_stream and len(buffer) < MAX_REQUEST_LINE:
            return
        del self._requests[event.stream_id]
        self._answered.add(event.stream_id)
        line = bytes(buffer).split(b"\n", 1)[0].strip().decode(errors="replace")
        parts = line.split()
        if len(parts) < 2 or parts[0] != "GET":
            self.quic.reset_stream(event.stream_id, HQ_NOT_FOUND)
            self.served.append((line[:80], 400, 0))
            return
        file = resolve_file(self.www, parts[1])
        if file is None:
            self.quic.reset_stream(event.stream_id, HQ_NOT_FOUND)
            self.served.append((parts[1], 404, 0))
            return
        body = file.read_bytes()
        self.quic.send_stream_data(event.stream_id, body, end_stream=True)
        self.served.append((parts[1], 200, len(body)))


# --- client ---------------------------------------------------------------------------------


class FetchError(Exception):
    pass


class FileClientProtocol(QuicConnectionProtocol):
    """An aioquic client protocol that GETs paths over h3 or hq-interop (from its configured ALPN)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.quic = seam.protocol_connection(self)
        self.alpn = self.quic.configuration.alpn_protocols[0]
        self.http = H3Connection(self.quic) if self.alpn == H3 else None
        self._bodies: dict[int, bytearray] = {}
        self._status: dict[int, int] = {}
        self._waiters: dict[int, asyncio.Future[bytes]] = {}
        self.last_received = time.monotonic()
        self.probes = 0

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[no-untyped-def]
        self.last_received = time.monotonic()
        super().datagram_received(data, addr)

    async def keep_alive(self, probe_after: float) -> None:
        """While requests are open, PING after ``probe_after`` s without a datagram from the server.

        A downloading client sends only ACKs, which answer what arrives: when its network changes
        under it (break-before-make) nothing arrives, so without a probe its new address would
        never reach the server. The lab's own client does the same (``--probe-after``).
        """
        while True:
            await asyncio.sleep(probe_after / 4)
            if self._waiters and time.monotonic() - self.last_received >= probe_after:
                self.quic.send_ping(self.probes)
                self.transmit()
                self.probes += 1
                self.last_received = time.monotonic()  # one probe per silent interval
                print(f"probe sent after {probe_after * 1000:g} ms of silence", file=sys.stderr, flush=True)

    @property
    def server_address(self) -> str:
        """The server address the connection uses now: it changes when the client follows preferred_address."""
        return normalise_address(seam.network_paths(self.quic)[0].addr)

    async def get(self, authority: str, path: str) -> bytes:
        stream_id = self.quic.get_next_available_stream_id()
        if self.http is not None:
            self.http.send_headers(stream_id, [
                (b":method", b"GET"), (b":scheme", b"https"),
                (b":authority", authority.encode()), (b":path", path.encode()),
                (b"user-agent", b"quic-migration-lab"),
            ], end_stream=True)
        else:
            self.quic.send_stream_data(stream_id, f"GET {path}\r\n".encode(), end_stream=True)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[stream_id] = waiter
        self._bodies[stream_id] = bytearray()
        self.transmit()
        return await waiter

    def _finish(self, stream_id: int, error: str | None = None) -> None:
        waiter = self._waiters.pop(stream_id, None)
        body = self._bodies.pop(stream_id, bytearray())
        if waiter is None or waiter.done():
            return
        status = self._status.pop(stream_id, 200)
        if error is None and status != 200:
            error = f"HTTP status {status}"
        if error:
            waiter.set_exception(FetchError(error))
        else:
            waiter.set_result(bytes(body))

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            for stream_id in list(self._waiters):
                self._finish(stream_id, f"connection closed: {event.reason_phrase or event.error_code}")
        elif isinstance(event, StreamReset):
            self._finish(event.stream_id, f"stream reset by the server (code {event.error_code})")
        if self.http is not None:
            for h3_event in self.http.handle_event(event):
                if isinstance(h3_event, HeadersReceived):
                    status = dict(h3_event.headers).get(b":status", b"0")
                    self._status[h3_event.stream_id] = int(status)
                    if h3_event.stream_ended:
                        self._finish(h3_event.stream_id)
                elif isinstance(h3_event, DataReceived):
                    if h3_event.stream_id in self._bodies:
                        self._bodies[h3_event.stream_id] += h3_event.data
                    if h3_event.stream_ended:
                        self._finish(h3_event.stream_id)
        elif isinstance(event, StreamDataReceived) and event.stream_id in self._bodies:
            self._bodies[event.stream_id] += event.data
            if event.end_stream:
                self._finish(event.stream_id)


def client_configuration(alpn: str, *, server_name: str | None = None, cafile: str | None = None,
                         keylog: str | None = None, qlog_dir: str | None = None) -> QuicConfiguration:
    """A client configuration; without ``cafile`` the server is not verified (as in the interop runner)."""
    configuration = QuicConfiguration(is_client=True, alpn_protocols=[alpn], server_name=server_name)
    if cafile:
        configuration.load_verify_locations(cafile)
    else:
        configuration.verify_mode = ssl.CERT_NONE
    if keylog:
        configuration.secrets_log_file = open(keylog, "a")  # noqa: SIM115 -- lives as long as the process
    if qlog_dir:
        Path(qlog_dir).mkdir(parents=True, exist_ok=True)
        configuration.quic_logger = QuicFileLogger(qlog_dir)
    return configuration


def download_name(url: str) -> str:
    """The file name a URL is saved under: its last path segment (the interop runner's convention)."""
    name = Path(unquote(urlsplit(url).path)).name
    if not name or name in (".", ".."):
        raise ValueError(f"no file name in {url!r}")
    return name


async def fetch_files(urls: Iterable[str], alpn: str, downloads: Path, *, cafile: str | None = None,
                      keylog: str | None = None, qlog_dir: str | None = None,
                      configuration: QuicConfiguration | None = None, timeout: float = 60.0,
                      on_done: Callable[[FileClientProtocol], None] | None = None,
                      probe_after: float = 0.0) -> list[Path]:
    """GET every URL over one QUIC connection (all requests in parallel) into ``downloads``.

    All URLs must name the same server. ``on_done`` sees the protocol once every body has arrived,
    before the connection closes (e.g. to read which server address it ended on, see
    ``server_address``). ``probe_after`` > 0 sends a PING after that many seconds without a
    datagram while requests are open (:meth:`FileClientProtocol.keep_alive`).
    Raises FetchError (or TimeoutError, ConnectionError) on failure.
    """
    urls = list(urls)
    if not urls:
        return []
    parts = [urlsplit(url) for url in urls]
    host, port = parts[0].hostname, parts[0].port or 443
    if any((p.hostname, p.port or 443) != (host, port) for p in parts):
        raise FetchError("all URLs must name the same server")
    if configuration is None:
        configuration = client_configuration(alpn, server_name=host, cafile=cafile, keylog=keylog, qlog_dir=qlog_dir)
    downloads = Path(downloads)
    downloads.mkdir(parents=True, exist_ok=True)
    authority = parts[0].netloc
    async with asyncio.timeout(timeout):
        async with connect(host, port, configuration=configuration, create_protocol=FileClientProtocol) as client:
            assert isinstance(client, FileClientProtocol)
            keep_alive = asyncio.create_task(client.keep_alive(probe_after)) if probe_after > 0 else None
            try:
                bodies = await asyncio.gather(*(client.get(authority, p.path or "/") for p in parts))
            finally:
                if keep_alive is not None:
                    keep_alive.cancel()
            if on_done is not None:
                on_done(client)
    saved = []
    for url, body in zip(urls, bodies, strict=True):
        target = downloads / download_name(url)
        target.write_bytes(body)
        saved.append(target)
    return saved


def main(argv: list[str] | None = None) -> int:
    """``python -m lab.endpoints.quic.http_files [--alpn h3|hq-interop] [--ca FILE] DIR URL...``: a small fetch tool."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lab.endpoints.quic.http_files", description=main.__doc__)
    parser.add_argument("--alpn", choices=FILE_ALPNS, default=HQ_ALPN)
    parser.add_argument("--ca", default=None, help="CA to verify the server with (default: no verification)")
    parser.add_argument("downloads")
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args(argv)
    try:
        for path in asyncio.run(fetch_files(args.urls, args.alpn, Path(args.downloads), cafile=args.ca)):
            print(path)
    except (FetchError, OSError, TimeoutError, ConnectionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
