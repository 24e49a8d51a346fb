"""The video and call workloads as real programs on loopback (no Docker): QUIC and TCP.

QUIC: the lab's server and client as subprocesses (the fixtures of test_quic_endpoints); the
player plays over HTTP/3 through a NAT-style rebinding made with the client's control socket, the
call runs over DATAGRAM frames and over a stream. TCP: the baseline client and server in-process,
the player over HTTP/1.1 and the call on the stream. Every assertion is on the emitted events.
"""

from __future__ import annotations

import asyncio
import io

import pytest

from lab.endpoints.shared.video import VideoPlan, parse_segment_path, segment_body, segment_sha256
from lab.endpoints.tcp.client import run_tcp_client
from lab.endpoints.tcp.server import serve_tcp
from lab.events import Emitter
from lab.observe.timeline import Timeline
from lab.report.player import playback
from tests.unit.test_quic_endpoints import Lab, command, quic_lab  # noqa: F401 -- quic_lab is a fixture
from tests.unit.test_tcp_baseline import certs, events_of, of_type  # noqa: F401 -- certs is a fixture

VIDEO = ("--workload", "video", "--segments", "4", "--segment", "1s", "--startup", "1s", "--buffer", "2s",
         "--bitrate", "1mbit")


def check_segments(segments: list, count: int, size: int) -> None:
    assert [s.index for s in segments] == list(range(count))
    assert all(s.sha256_ok and s.bytes == size for s in segments)
    assert all(s.received_ts > s.requested_ts for s in segments)


def test_segment_content_is_deterministic_and_named_by_its_path() -> None:
    assert parse_segment_path("/lab/video/3-1000.m4s") == (3, 1000)
    assert parse_segment_path("/lab/video/3-0.m4s") is None and parse_segment_path("/etc/passwd") is None
    import hashlib
    assert hashlib.sha256(segment_body(3, 1000)).hexdigest() == segment_sha256(3, 1000) != segment_sha256(4, 1000)


@pytest.mark.timeout(60)
def test_quic_video_over_h3_through_a_rebinding(quic_lab: Lab) -> None:  # noqa: F811
    client, control = quic_lab.client(*VIDEO, "--local", "127.0.0.1", name="video")
    client.wait_for(lambda e: e.TYPE == "segment" and e.index == 1, timeout=20)
    assert command(control, {"cmd": "rebind"})["ok"]
    assert client.popen.wait(30) == 0, client.lines[-5:]
    handshake = client.of_type("handshake_completed")
    assert len(handshake) == 1 and handshake[0].alpn == "h3"
    check_segments(client.of_type("segment"), 4, 125_000)
    done = client.of_type("transfer_complete")[0]
    assert done.ok and done.sha256 == done.expected_sha256 and done.bytes == 4 * 125_000
    assert client.of_type("migration_completed"), "the rebinding was made"
    pb = playback(Timeline(client.events))
    assert pb is not None and pb.complete and pb.startup_ms is not None
    served = [e for e in quic_lab.server.events if e.TYPE == "path_validated" and e.conn == done.conn]
    assert served, "the server validated the rebound path"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stream", [False, True], ids=["datagrams", "stream"])
def test_quic_call(quic_lab: Lab, stream: bool) -> None:  # noqa: F811
    extra = ("--call-stream",) if stream else ()
    client, _ = quic_lab.client("--workload", "call", "--duration", "1.5s", *extra, name=f"call{stream}")
    assert client.popen.wait(20) == 0, client.lines[-5:]
    stats = client.of_type("call_stats")[0]
    assert stats.datagrams is not stream and stats.sent >= 60 and stats.received == stats.sent
    assert stats.latency_ms["up"]["p50"] is not None and stats.latency_ms["down"]["max"] < 150
    assert len(client.of_type("echo_rtt")) == stats.received
    done = client.of_type("transfer_complete")[0]
    assert done.ok and done.sha256 == done.expected_sha256


async def _tcp(certs, workload: str, **kwargs) -> tuple[int, list, list]:  # noqa: F811
    server_out, client_out = io.StringIO(), io.StringIO()
    server = await serve_tcp("127.0.0.1", 0, str(certs.cert), str(certs.key), Emitter("server", server_out, "tcp"),
                             None)
    port = server.sockets[0].getsockname()[1]
    async with server:
        code = await run_tcp_client(("127.0.0.1", port), "localhost", workload, 0, 0, 20.0, 1.5, str(certs.ca),
                                    Emitter("client", client_out, "tcp"), None, **kwargs)
    return code, events_of(client_out), events_of(server_out)


@pytest.mark.timeout(30)
def test_tcp_video_over_http1(certs) -> None:  # noqa: F811
    plan = VideoPlan(bitrate=1_000_000, segment_s=1.0, count=4, startup_s=1.0, buffer_s=2.0)
    code, events, server = asyncio.run(_tcp(certs, "video", video=plan))
    assert code == 0
    check_segments(of_type(events, "segment"), 4, 125_000)
    done = of_type(events, "transfer_complete")[0]
    assert done.ok and done.sha256 == done.expected_sha256
    assert len(of_type(events, "handshake_completed")) == 1, "one kept-alive connection for every segment"
    assert [e.TYPE for e in server][:1] == ["handshake_completed"]
    pb = playback(Timeline(events))
    assert pb is not None and pb.complete and pb.rebuffer_events == 0


@pytest.mark.timeout(30)
def test_tcp_call(certs) -> None:  # noqa: F811
    code, events, _ = asyncio.run(_tcp(certs, "call"))
    assert code == 0
    stats = of_type(events, "call_stats")[0]
    assert not stats.datagrams and stats.sent >= 60 and stats.lost == 0
    assert of_type(events, "transfer_complete")[0].ok
