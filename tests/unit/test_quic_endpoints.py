"""The QUIC endpoints as real subprocesses on loopback: migrations, events, qlog, §9.4, 3x limit.

One long-lived server (as in the containers) serves every client of this module. Clients are
driven through their control socket at chosen points of a paced download, and every
assertion is made on the JSON events the processes print (and on their qlog files).
Only loopback addresses are used (127.0.0.1, .2, .3).
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab.addresses import host_of, parse_host_port, same_ip, v4_mapped
from lab.certs import ensure_certificates
from lab.events import EVENT_TYPES, Event, parse_line

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class Process:
    """A subprocess whose stdout events are parsed as they arrive."""

    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    queue: queue.Queue[Event] = field(default_factory=queue.Queue)

    @classmethod
    def start(cls, args: list[str]) -> Process:
        popen = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        process = cls(popen)
        threading.Thread(target=process._read, daemon=True).start()
        return process

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)
            event = parse_line(line)
            if event is not None:
                self.events.append(event)
                self.queue.put(event)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> Event:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.queue.get(timeout=0.05)
            except queue.Empty:
                if self.popen.poll() is not None and self.queue.empty():
                    break
                continue
            if predicate(event):
                return event
        raise AssertionError(f"event not seen; last events: {[e.TYPE for e in self.events[-8:]]}")

    def of_type(self, kind: str, conn: str | None = None) -> list[Any]:
        return [e for e in self.events if e.TYPE == kind and (conn is None or e.conn == conn)]


def command(path: Path, cmd: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall((json.dumps(cmd) + "\n").encode())
        return json.loads(sock.makefile().readline())


@dataclass
class Lab:
    server: Process
    port: int
    preferred_port: int
    preferred: str
    certs: Path
    qlog: Path
    tmp: Path

    def client(self, *args: str, port: int | None = None, name: str = "c") -> tuple[Process, Path]:
        control = self.tmp / f"{name}.sock"
        process = Process.start([
            "-m", "lab.endpoints.client", "--server", f"127.0.0.1:{port or self.port}",
            "--ca", str(self.certs / "ca.crt"), "--control-socket", str(control), "--qlog-dir", str(self.qlog),
            "--keylog", str(self.tmp / "keys.log"), *args])
        return process, control


@pytest.fixture(scope="module")
def quic_lab(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("quic-lab")
    certs, _ = ensure_certificates(tmp / "certs")
    port, preferred_port, pref = free_udp_port(), free_udp_port(), free_udp_port("127.0.0.3")
    server = Process.start([
        "-m", "lab.endpoints.server", "--listen", "127.0.0.1", "--port", str(port),
        "--preferred-port", str(preferred_port), "--preferred-address", f"127.0.0.3:{pref}",
        "--cert", str(certs.cert), "--key", str(certs.key), "--tcp-port", "0", "--qlog-dir", str(tmp / "qlog")])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (tmp / "qlog").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    yield Lab(server, port, preferred_port, f"127.0.0.3:{pref}", certs.directory, tmp / "qlog", tmp)
    server.popen.terminate()
    server.popen.wait(5)


@pytest.fixture(scope="module")
def moving_download(quic_lab: Lab) -> dict[str, Any]:
    """A paced 3 MB download (2 s): a rebinding at 0.6 MB, a move to 127.0.0.2 at 1.4 MB.

    Paced at 1.5 MB/s so the transfer is still open when the qlog is read after the move (at
    3 MB/s a loaded CI machine finished first, and the snapshot was of a closed connection).
    """
    client, control = quic_lab.client("--size", "3MB", "--rate", "1500KB/s", "--local", "127.0.0.1",
                                      "--migration", "active", name="moving")
    hello = client.wait_for(lambda e: e.TYPE == "handshake_completed")
    client.wait_for(lambda e: e.TYPE == "progress" and e.bytes >= 600_000)
    rebind = command(control, {"cmd": "rebind"})
    client.wait_for(lambda e: e.TYPE == "migration_completed")
    client.wait_for(lambda e: e.TYPE == "progress" and e.bytes >= 1_400_000)
    move = command(control, {"cmd": "migrate", "local": "127.0.0.2"})
    client.wait_for(lambda e: e.TYPE == "migration_completed" and e.mode == "active")
    quic_lab.server.wait_for(lambda e: e.TYPE == "path_validated" and e.peer.startswith("127.0.0.2:"))
    qlog_path = quic_lab.qlog / f"{hello.conn}_server.qlog"
    time.sleep(0.3)  # one flush period
    open_during_snapshot = client.popen.poll() is None and not client.of_type("transfer_complete")
    snapshot = qlog_path.read_text()
    rc = client.popen.wait(20)
    time.sleep(0.2)
    return {"client": client, "conn": hello.conn, "rc": rc, "rebind": rebind, "move": move,
            "qlog": snapshot, "open": open_during_snapshot}


@pytest.fixture(scope="module")
def preferred_download(quic_lab: Lab) -> dict[str, Any]:
    client, _ = quic_lab.client("--size", "1MB", "--rate", "2MB/s", "--migration", "preferred",
                                port=quic_lab.preferred_port, name="preferred")
    rc = client.popen.wait(20)
    hello = client.of_type("handshake_completed")[0]
    time.sleep(0.2)
    return {"client": client, "conn": hello.conn, "rc": rc}


def server_events(lab: Lab, kind: str, conn: str) -> list[Any]:
    return lab.server.of_type(kind, conn)


def test_port_rebinding_keeps_cid_and_is_validated(quic_lab: Lab, moving_download: dict[str, Any]) -> None:
    conn = moving_download["conn"]
    assert moving_download["rebind"]["ok"] and moving_download["rebind"]["rotate_cid"] is False
    old_host, new_local = moving_download["rebind"]["old_local"], moving_download["rebind"]["new_local"]
    assert old_host.split(":")[0] == new_local.split(":")[0] == "127.0.0.1" and old_host != new_local
    changes = [e for e in server_events(quic_lab, "active_path_changed", conn) if e.new_peer == new_local]
    assert changes and changes[0].address_changed is False
    challenges = [e for e in server_events(quic_lab, "path_challenge_sent", conn) if e.peer == new_local]
    responses = [e for e in server_events(quic_lab, "path_response_received", conn) if e.peer == new_local]
    assert challenges and responses and responses[0].data in {c.data for c in challenges}
    validated = [e for e in server_events(quic_lab, "path_validated", conn) if e.peer == new_local]
    assert validated and validated[0].validation_ms < 1000
    # Same CID: the server switches its peer CID only once, for the move to 127.0.0.2.
    cid_changes = server_events(quic_lab, "peer_cid_changed", conn)
    assert len(cid_changes) == 1 and cid_changes[0].mono > changes[0].mono


def test_address_change_uses_new_cid(quic_lab: Lab, moving_download: dict[str, Any]) -> None:
    conn, client = moving_download["conn"], moving_download["client"]
    new_local = moving_download["move"]["new_local"]
    assert new_local.startswith("127.0.0.2:") and moving_download["move"]["rotate_cid"] is True
    change = next(e for e in server_events(quic_lab, "active_path_changed", conn) if e.new_peer == new_local)
    assert change.address_changed is True
    cid_change = server_events(quic_lab, "peer_cid_changed", conn)[0]
    client_cid_changes = client.of_type("peer_cid_changed")
    assert client_cid_changes and cid_change.old_cid != cid_change.new_cid
    assert any(e.peer == new_local for e in server_events(quic_lab, "path_validated", conn))
    completed = [e for e in client.of_type("migration_completed") if e.mode == "active"]
    assert completed and completed[0].local == new_local
    assert client.of_type("progress")[-1].local == new_local


def test_congestion_reset_on_ip_change_only(quic_lab: Lab, moving_download: dict[str, Any]) -> None:
    conn = moving_download["conn"]
    resets = server_events(quic_lab, "congestion_reset", conn)
    assert [e.peer for e in resets] == [moving_download["move"]["new_local"]]  # none for the rebinding
    assert resets[0].cwnd_after == 10 * 1200 and resets[0].srtt_before_ms is not None


def test_preferred_address_migration(quic_lab: Lab, preferred_download: dict[str, Any]) -> None:
    client, conn = preferred_download["client"], preferred_download["conn"]
    change = client.of_type("active_path_changed")
    assert change and change[0].new_peer == quic_lab.preferred and change[0].address_changed
    assert [e.mode for e in client.of_type("migration_completed")] == ["preferred"]
    # After the migration the server's datagrams come from the preferred address (observed source).
    later = [e for e in client.of_type("progress") if e.mono > change[0].mono]
    assert later and all(e.peer == quic_lab.preferred for e in later)
    server_side = server_events(quic_lab, "active_path_changed", conn)
    assert server_side and server_side[0].local == quic_lab.preferred


def test_transfers_sha256_verified(moving_download: dict[str, Any], preferred_download: dict[str, Any]) -> None:
    for run in (moving_download, preferred_download):
        assert run["rc"] == 0
        (done,) = run["client"].of_type("transfer_complete")
        assert done.ok and done.sha256 == done.expected_sha256 and done.bytes in (3_000_000, 1_000_000)
        assert run["client"].of_type("connection_closed")


def test_echo_survives_rebinding(quic_lab: Lab) -> None:
    client, control = quic_lab.client("--workload", "echo", "--duration", "0.6s", "--interval-ms", "10",
                                      "--local", "127.0.0.1", name="echo")
    client.wait_for(lambda e: e.TYPE == "echo_rtt" and e.seq >= 10)
    assert command(control, {"cmd": "rebind"})["ok"]
    assert client.popen.wait(15) == 0
    rtts = client.of_type("echo_rtt")
    assert len(rtts) >= 30 and len({e.seq for e in rtts}) == len(rtts)
    assert client.of_type("transfer_complete")[0].ok


def test_event_streams_parse(quic_lab: Lab, moving_download: dict[str, Any],
                             preferred_download: dict[str, Any]) -> None:
    for process in (quic_lab.server, moving_download["client"], preferred_download["client"]):
        lines = [line for line in process.lines if line.strip()]
        assert lines
        for line in lines:
            event = parse_line(line)  # raises SchemaError on unknown types/fields
            assert event is not None, line
            assert event.role in ("server", "client") and event.transport == "quic"


def test_qlog_written_while_connection_open(moving_download: dict[str, Any]) -> None:
    assert moving_download["open"], "the transfer ended before the qlog snapshot"
    qlog = json.loads(moving_download["qlog"])
    assert qlog["qlog_version"] == "0.3"
    events = qlog["traces"][0]["events"]
    frames = [f for e in events for f in e.get("data", {}).get("frames", [])]
    assert any(f["frame_type"] == "path_challenge" for f in frames)
    assert any(e["name"] == "connectivity:path_updated" for e in events)


def test_amplification_limit_respected(quic_lab: Lab, moving_download: dict[str, Any]) -> None:
    limited = server_events(quic_lab, "amplification_limited", moving_download["conn"])
    assert limited, "no send on an unvalidated path reached the 3x budget"
    for event in quic_lab.server.of_type("amplification_limited"):
        assert event.bytes_sent <= 3 * event.bytes_received


def test_every_event_type_documented() -> None:
    text = (ROOT / "docs" / "events.md").read_text()
    documented = set(re.findall(r"^### `([a-z_]+)`", text, re.MULTILINE))
    assert set(EVENT_TYPES) <= documented, sorted(set(EVENT_TYPES) - documented)


def test_one_address_parser_for_every_endpoint() -> None:
    assert parse_host_port("10.0.0.1:4433") == ("10.0.0.1", 4433)
    assert parse_host_port(" [::1]:443 ") == ("::1", 443)
    assert parse_host_port("server", 443) == ("server", 443) and parse_host_port("[fd00::1]", 0) == ("fd00::1", 0)
    assert parse_host_port("fd00::1", 4433) == ("fd00::1", 4433)  # a bare IPv6 address has no port
    with pytest.raises(ValueError, match="missing port"):
        parse_host_port("10.0.0.1")
    assert v4_mapped(("10.0.0.1", 443)) == ("::ffff:10.0.0.1", 443, 0, 0)
    assert v4_mapped(("::1", 443)) == ("::1", 443, 0, 0)
    assert v4_mapped(("::1", 443, 1, 2)) == ("::1", 443, 1, 2)
    assert host_of(("::ffff:10.0.0.1", 443, 0, 0)) == "10.0.0.1" and host_of("[::1]:5") == "::1"
    assert same_ip(("::ffff:10.0.0.1", 1, 0, 0), "10.0.0.1:2") and not same_ip("10.0.0.1:1", "10.0.0.2:1")
