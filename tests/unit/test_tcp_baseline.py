"""The TCP + TLS baseline on loopback: real sockets, a real relay that really breaks mid-transfer."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from lab.certs import ensure_certificates
from lab.endpoints.tcp.client import run_tcp_client
from lab.endpoints.tcp.server import serve_tcp
from lab.events import Emitter, Event, parse_line

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    paths, _ = ensure_certificates(tmp_path_factory.mktemp("certs"))
    return paths


def events_of(stream: io.StringIO) -> list[Event]:
    return [e for e in (parse_line(line) for line in stream.getvalue().splitlines()) if e is not None]


def of_type(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.TYPE == kind]


class Relay:
    """A loopback TCP relay whose first connection breaks, for real, mid-stream.

    It breaks after ``break_after`` bytes towards the client, or ``break_after_s`` seconds after
    the connection was accepted. mode "reset": the client-facing socket is closed with SO_LINGER 0,
    so the client gets a real RST. mode "stall": the relay silently drops everything from then on,
    in both directions (a dead path: no FIN, no RST).
    """

    def __init__(self, target: tuple[str, int], break_after: int | None = None, mode: str = "reset",
                 break_after_s: float | None = None) -> None:
        self.target = target
        self.break_after = break_after
        self.break_after_s = break_after_s
        self.mode = mode
        self.connections = 0
        self.broken = asyncio.Event()
        self.server: asyncio.AbstractServer | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def _break(self, cwriter: asyncio.StreamWriter, swriter: asyncio.StreamWriter) -> None:
        self.broken.set()
        if self.mode == "reset":
            sock = cwriter.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            cwriter.transport.abort()
            swriter.transport.abort()

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        self.connections += 1
        first = self.connections == 1
        sreader, swriter = await asyncio.open_connection(*self.target)
        self.writers += [cwriter, swriter]
        forwarded = 0
        if first and self.break_after_s is not None:
            asyncio.get_running_loop().call_later(self.break_after_s, self._break, cwriter, swriter)

        async def pipe(reader, writer, to_client: bool) -> None:
            nonlocal forwarded
            with contextlib.suppress(OSError):
                while data := await reader.read(16384):
                    if first and self.broken.is_set():
                        continue  # stalled: swallow
                    writer.write(data)
                    await writer.drain()
                    if to_client and first and self.break_after is not None:
                        forwarded += len(data)
                        if forwarded >= self.break_after:
                            self._break(cwriter, swriter)
                            if self.mode == "reset":
                                return
            if not (first and self.broken.is_set()):  # a dead path does not deliver FINs either
                writer.close()

        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(pipe(creader, swriter, False), pipe(sreader, cwriter, True))

    async def close(self) -> None:
        if self.server:
            self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await asyncio.sleep(0)


async def _serve(certs, stream):
    return await serve_tcp("127.0.0.1", 0, str(certs.cert), str(certs.key), Emitter("server", stream, "tcp"), None)


@pytest.mark.timeout(20)
def test_download_is_sha256_verified(certs, tmp_path):
    server_out, client_out = io.StringIO(), io.StringIO()
    keylog = tmp_path / "keys.log"

    async def scenario() -> int:
        server = await _serve(certs, server_out)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await run_tcp_client(("127.0.0.1", port), "localhost", "download", 3_000_000, 6_000_000, 0, 0,
                                        str(certs.ca), Emitter("client", client_out, "tcp"), str(keylog))

    assert asyncio.run(scenario()) == 0
    events = events_of(client_out)
    done = of_type(events, "transfer_complete")
    assert len(done) == 1 and done[0].ok and done[0].bytes == 3_000_000
    assert done[0].sha256 == done[0].expected_sha256
    assert all(e.transport == "tcp" and e.role == "client" for e in events)
    assert len(of_type(events, "progress")) >= 3  # ~0.5 s paced at 6 MB/s, one every 100 ms
    assert not of_type(events, "reconnect_started")
    handshakes = of_type(events, "handshake_completed")
    assert len(handshakes) == 1 and handshakes[0].local.startswith("127.0.0.1:")
    server_events = events_of(server_out)
    assert [e.TYPE for e in server_events] == ["handshake_completed", "session_resumption", "connection_closed"]
    assert server_events[2].reason == "complete"
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in keylog.read_text()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("mode", ["reset", "stall"])
def test_broken_connection_reconnects_and_resumes(certs, mode):
    server_out, client_out = io.StringIO(), io.StringIO()
    size = 2_000_000

    async def scenario() -> tuple[int, int]:
        server = await _serve(certs, server_out)
        port = server.sockets[0].getsockname()[1]
        relay = Relay(("127.0.0.1", port), break_after=600_000, mode=mode)
        relay_port = await relay.start()
        async with server:
            code = await run_tcp_client(("127.0.0.1", relay_port), "localhost", "download", size, 4_000_000, 0, 0,
                                        str(certs.ca), Emitter("client", client_out, "tcp"), None,
                                        stall_timeout=0.4)
        await relay.close()
        return code, relay.connections

    code, connections = asyncio.run(scenario())
    events = events_of(client_out)
    assert code == 0, client_out.getvalue()[-2000:]
    assert connections == 2
    started = of_type(events, "reconnect_started")
    reconnected = of_type(events, "reconnected")
    assert len(started) == 1 and len(reconnected) == 1
    assert started[0].reason == ("reset" if mode == "reset" else "stall")
    assert 0 < started[0].offset < size and reconnected[0].offset == started[0].offset
    assert reconnected[0].duration_ms is not None and reconnected[0].local.startswith("127.0.0.1:")
    assert reconnected[0].conn != started[0].conn  # a new TCP connection
    gaps = of_type(events, "data_gap")
    if mode == "stall":  # the outage lasts at least the stall timeout; a reset on loopback may be < 50 ms
        assert gaps and max(g.gap_ms for g in gaps) >= 400
        assert any(g.bytes == started[0].offset for g in gaps)
    assert all(g.end_ts >= g.start_ts and g.gap_ms >= 5 for g in gaps)  # the meter reports gaps >= 5 ms
    done = of_type(events, "transfer_complete")
    assert done[0].ok and done[0].bytes == size and done[0].sha256 == done[0].expected_sha256


@pytest.mark.timeout(20)
def test_echo_reports_rtts(certs):
    client_out = io.StringIO()

    async def scenario() -> int:
        server = await _serve(certs, io.StringIO())
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await run_tcp_client(("127.0.0.1", port), "localhost", "echo", 0, 0, 20, 0.6,
                                        str(certs.ca), Emitter("client", client_out, "tcp"), None)

    assert asyncio.run(scenario()) == 0
    rtts = of_type(events_of(client_out), "echo_rtt")
    assert len(rtts) >= 15
    assert [e.seq for e in rtts] == sorted(e.seq for e in rtts)
    assert all(0 < e.rtt_ms < 100 for e in rtts)


@pytest.mark.timeout(20)
def test_untrusted_server_is_refused(certs, tmp_path):
    other, _ = ensure_certificates(tmp_path / "other")
    client_out = io.StringIO()

    async def scenario() -> int:
        server = await _serve(certs, io.StringIO())
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await run_tcp_client(("127.0.0.1", port), "localhost", "download", 1000, 0, 0, 0,
                                        str(other.ca), Emitter("client", client_out, "tcp"), None,
                                        reconnect_budget=0.5)

    assert asyncio.run(scenario()) == 1
    events = events_of(client_out)
    assert of_type(events, "error")
    assert not of_type(events, "transfer_complete")[0].ok


@pytest.mark.timeout(20)
def test_standalone_modules(certs):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = subprocess.Popen([sys.executable, "-m", "lab.endpoints.tcp.server", "--host", "127.0.0.1", "--port", "0",
                               "--cert", str(certs.cert), "--key", str(certs.key)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        line = server.stderr.readline()
        port = int(re.search(r":(\d+)$", line.strip()).group(1))
        client = subprocess.run([sys.executable, "-m", "lab.endpoints.tcp.client", "--server", f"127.0.0.1:{port}",
                                 "--server-name", "localhost", "--size", "300KB", "--ca", str(certs.ca)],
                                capture_output=True, text=True, env=env, cwd=REPO, timeout=15)
        assert client.returncode == 0, client.stderr
        done = [e for e in map(parse_line, client.stdout.splitlines()) if e and e.TYPE == "transfer_complete"]
        assert done and done[0].ok and done[0].bytes == 300_000
    finally:
        server.terminate()
        server.wait(5)


@pytest.mark.timeout(20)
def test_local_address_is_used_for_every_connection(certs):
    client_out = io.StringIO()

    async def scenario() -> int:
        server = await _serve(certs, io.StringIO())
        port = server.sockets[0].getsockname()[1]
        relay = Relay(("127.0.0.1", port), break_after=200_000, mode="reset")
        relay_port = await relay.start()
        async with server:
            code = await run_tcp_client(("127.0.0.1", relay_port), "localhost", "download", 500_000, 0, 0, 0,
                                        str(certs.ca), Emitter("client", client_out, "tcp"), None, local="127.0.0.2")
        await relay.close()
        return code

    assert asyncio.run(scenario()) == 0
    events = events_of(client_out)
    assert [e.local.split(":")[0] for e in of_type(events, "handshake_completed")] == ["127.0.0.2", "127.0.0.2"]
    assert of_type(events, "reconnected")[0].local.startswith("127.0.0.2:")


@pytest.mark.timeout(20)
def test_echo_reconnects_after_a_stall(certs):
    client_out = io.StringIO()

    async def scenario() -> int:
        server = await _serve(certs, io.StringIO())
        port = server.sockets[0].getsockname()[1]
        relay = Relay(("127.0.0.1", port), mode="stall", break_after_s=0.4)
        relay_port = await relay.start()
        async with server:
            code = await run_tcp_client(("127.0.0.1", relay_port), "localhost", "echo", 0, 0, 20, 1.5,
                                        str(certs.ca), Emitter("client", client_out, "tcp"), None, stall_timeout=0.3)
        await relay.close()
        return code

    assert asyncio.run(scenario()) == 0
    events = events_of(client_out)
    started = of_type(events, "reconnect_started")
    assert len(started) == 1 and started[0].reason == "stall"
    rtts = of_type(events, "echo_rtt")
    assert {e.conn for e in rtts} == {started[0].conn, of_type(events, "reconnected")[0].conn}
    assert len(rtts) >= 30
