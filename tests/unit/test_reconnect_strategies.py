"""The reconnection strategies of reconnect-vs-migrate as real subprocesses on loopback.

One server (QUIC and TCP on one port number, as in the containers); each client downloads at a
paced rate, and the server is frozen (SIGSTOP) for a moment mid-download: the client sees no data
for its detection delay, gives the connection up and reconnects. Assertions are on the JSON events
the processes print: the new QUIC connection's early data accepted by the server (0-RTT), the TCP
reconnect's session reused, every transfer's sha256 matched across the connections.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from lab.certs import ensure_certificates
from tests.unit.test_quic_endpoints import Process, free_udp_port

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("reconnect")
    certs, _ = ensure_certificates(tmp / "certs")
    port = free_udp_port()
    process = Process.start(["-m", "lab.endpoints.server", "--listen", "127.0.0.1", "--port", str(port),
                             "--cert", str(certs.cert), "--key", str(certs.key), "--qlog-dir", str(tmp / "qlog")])
    time.sleep(1.0)
    yield process, port, certs.directory, tmp
    process.popen.terminate()
    process.popen.wait(5)


def download_through_freeze(server: Any, transport: str, freeze_s: float = 0.6) -> Process:
    """A 600 KB download at 300 KB/s; the server frozen ``freeze_s`` after 0.8 s."""
    process, port, certs, tmp = server
    client = Process.start(["-m", "lab.endpoints.client", "--server", f"127.0.0.1:{port}",
                            "--transport", transport, "--strategy", "--size", "600KB", "--rate", "300KB/s",
                            "--probe-after", "200ms", "--ca", str(Path(certs) / "ca.crt"), "--control-socket", "",
                            "--qlog-dir", str(tmp / "qlog"), "--keylog", str(tmp / f"keys-{transport}.log")])
    client.wait_for(lambda e: e.TYPE == "progress" and e.bytes > 100_000)
    time.sleep(0.3)
    process.popen.send_signal(signal.SIGSTOP)
    time.sleep(freeze_s)
    process.popen.send_signal(signal.SIGCONT)
    client.wait_for(lambda e: e.TYPE == "transfer_complete", timeout=20)
    client.popen.wait(5)
    return client


def test_quic_0rtt_reconnect_is_accepted_and_resumes_the_download(server: Any) -> None:
    client = download_through_freeze(server, "quic-0rtt")
    done = client.of_type("transfer_complete")[0]
    assert done.ok and done.sha256 == done.expected_sha256 and done.bytes == 600_000
    assert client.of_type("reconnect_started") and client.of_type("reconnected")
    first, second = client.of_type("session_resumption")[:1], client.of_type("session_resumption")[-1]
    assert not first[0].offered
    assert second.offered and second.resumed and second.early_data == "accepted"
    at_server = [e for e in server[0].of_type("session_resumption", second.conn)]
    assert at_server and at_server[0].early_data == "accepted" and at_server[0].resumed
    assert all(e.transport == "quic-0rtt" for e in client.events)
    assert client.popen.returncode == 0


def test_quic_full_reconnect_offers_no_ticket(server: Any) -> None:
    client = download_through_freeze(server, "quic-full")
    done = client.of_type("transfer_complete")[0]
    assert done.ok and done.bytes == 600_000
    resumptions = client.of_type("session_resumption")
    assert len(resumptions) >= 2 and not any(e.offered or e.resumed for e in resumptions)
    assert all(e.early_data == "none" for e in resumptions)


def test_tcp_resume_reconnect_reuses_the_session(server: Any) -> None:
    client = download_through_freeze(server, "tcp-resume")
    done = client.of_type("transfer_complete")[0]
    assert done.ok and done.sha256 == done.expected_sha256
    resumptions = client.of_type("session_resumption")
    assert not resumptions[0].offered and not resumptions[0].resumed
    assert resumptions[-1].offered and resumptions[-1].resumed  # SSLSocket.session_reused
    assert any(e.resumed for e in server[0].of_type("session_resumption") if e.transport == "tcp")


def test_tcp_full_reconnect_does_not_resume(server: Any) -> None:
    client = download_through_freeze(server, "tcp")
    done = client.of_type("transfer_complete")[0]
    assert done.ok
    resumptions = client.of_type("session_resumption")
    assert len(resumptions) >= 2 and not any(e.offered or e.resumed for e in resumptions)
