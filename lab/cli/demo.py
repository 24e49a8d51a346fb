"""`python -m lab demo`: three live QUIC migrations on loopback, narrated from observed events.

A server and two clients run as subprocesses (as in the containers), with temporary
certificates: connection 1 downloads while the client rebinds its port (same CID; the server
validates the new path) and then moves to 127.0.0.2 with a new CID; connection 2 connects to
the server's preferred-address port and follows it to 127.0.0.3. Every sentence printed is
rendered from an event one of the processes emitted; the verdict is computed from the same
events. Exit 0 only when every migration was observed and every transfer sha256-verified.
"""

from __future__ import annotations

import argparse
import json
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from lab.certs import ensure_certificates
from lab.cli import options
from lab.events import Event, parse_line

HELP = "run a QUIC server and clients on loopback and narrate three live migrations"
STYLE = {"server": "cyan", "client": "green"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="3MB", help="download size per connection (default 3MB)")
    parser.add_argument("--rate", default="3MB/s", help="download pacing (default 3MB/s)")
    parser.add_argument("--verbose", action="store_true", help="also print progress events")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _short(hexdata: str) -> str:
    return hexdata[:8] + ".."


def render(event: Any) -> str | None:
    """One sentence per event (None: not narrated)."""
    t = event.TYPE
    if t == "handshake_completed":
        return f"handshake with {event.peer} done in {event.duration_ms} ms (ALPN {event.alpn})"
    if t == "migration_started":
        target = event.new_local or "the wildcard address"
        cid = "new CID" if event.rotate_cid else "same CID"
        return f"{event.mode} migration started: {event.old_local} -> {target} ({cid})"
    if t == "migration_completed":
        return f"{event.mode} migration completed in {event.duration_ms} ms: now {event.local} <-> {event.peer}"
    if t == "path_discovered":
        return f"new path {event.peer} discovered (on {event.local})"
    if t == "path_challenge_sent":
        return f"PATH_CHALLENGE {_short(event.data)} sent to {event.peer}"
    if t == "path_response_received":
        return f"PATH_RESPONSE {_short(event.data)} received from {event.peer}"
    if t == "path_validated":
        return f"path {event.peer} validated in {event.validation_ms} ms"
    if t == "path_abandoned":
        return f"path {event.peer} abandoned ({event.reason})"
    if t == "active_path_changed":
        if event.old_peer == event.new_peer:
            return f"client moved to this server address: replies now leave from {event.local}"
        kind = "new IP address" if event.address_changed else "same IP, new port (NAT rebinding)"
        return f"active path {event.old_peer} -> {event.new_peer} ({kind})"
    if t == "congestion_reset":
        return (f"RFC 9000 §9.4: congestion control reset for {event.peer}: cwnd {event.cwnd_before} -> "
                f"{event.cwnd_after} bytes, srtt was {event.srtt_before_ms} ms")
    if t == "amplification_limited":
        return (f"3x anti-amplification limit on {event.peer}: sent {event.bytes_sent} "
                f"of {3 * event.bytes_received} bytes allowed")
    if t == "peer_cid_changed":
        return f"now sends to connection ID {_short(event.new_cid)} (was {_short(event.old_cid)})"
    if t == "data_gap":
        return f"data resumed after a {event.gap_ms} ms gap"
    if t == "transfer_complete":
        verdict = "verified" if event.ok else "MISMATCH"
        return f"received {event.bytes} bytes, sha256 {event.sha256[:12]}.. {verdict}"
    if t == "connection_closed":
        return f"connection closed: {event.reason}"
    if t == "error":
        return f"error: {event.message}"
    return None


class Demo:
    def __init__(self, console: Console, verbose: bool) -> None:
        self.console = console
        self.verbose = verbose
        self.queue: queue.Queue[tuple[str, Event]] = queue.Queue()
        self.events: dict[str, list[Any]] = {}
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, name: str, args: list[str]) -> subprocess.Popen[str]:
        popen = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True)
        self.processes.append(popen)
        self.events[name] = []

        def read() -> None:
            assert popen.stdout is not None
            for line in popen.stdout:
                event = parse_line(line)
                if event is not None:
                    self.queue.put((name, event))

        threading.Thread(target=read, daemon=True).start()
        return popen

    def pump(self, until: Callable[[str, Any], bool], timeout: float = 15.0) -> Any:
        """Narrate events as they arrive until one satisfies ``until``; return it (None on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                name, event = self.queue.get(timeout=0.05)
            except queue.Empty:
                continue
            self.events[name].append(event)
            self.narrate(name, event)
            if until(name, event):
                return event
        return None

    def narrate(self, name: str, event: Any) -> None:
        text = render(event)
        if event.TYPE == "progress" and self.verbose:
            text = f"{event.bytes}/{event.total} bytes via {event.local} <- {event.peer}"
        if text is None:
            return
        style = STYLE.get(event.role, "white")
        self.console.print(f"[{style}]{name:>10}[/] {text}", highlight=False, soft_wrap=True)

    def of(self, name: str, kind: str) -> list[Any]:
        return [e for e in self.events.get(name, []) if e.TYPE == kind]

    def server_of(self, kind: str, conn: str) -> list[Any]:
        return [e for e in self.of("server", kind) if e.conn == conn]

    def stop(self) -> None:
        for popen in self.processes:
            if popen.poll() is None:
                popen.terminate()
        for popen in self.processes:
            try:
                popen.wait(5)
            except subprocess.TimeoutExpired:
                popen.kill()


def _command(path: Path, cmd: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall((json.dumps(cmd) + "\n").encode())
        return json.loads(sock.makefile().readline())


def _wait_for_file(path: Path, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def run(args: argparse.Namespace) -> int:
    size = options.size("--size", args.size)  # before any process starts (a bad --rate stopped the client midway)
    options.byte_rate("--rate", args.rate)
    console = Console(highlight=False)
    demo = Demo(console, args.verbose)
    with tempfile.TemporaryDirectory(prefix="lab-demo-") as tmp_name:
        tmp = Path(tmp_name)
        certs, _ = ensure_certificates(tmp / "certs")
        port, pport, pref = _free_port("127.0.0.1"), _free_port("127.0.0.1"), _free_port("127.0.0.3")
        preferred = f"127.0.0.3:{pref}"
        try:
            demo.start("server", ["-m", "lab.endpoints.server", "--listen", "127.0.0.1", "--port", str(port),
                                  "--preferred-port", str(pport), "--preferred-address", preferred,
                                  "--cert", str(certs.cert), "--key", str(certs.key), "--tcp-port", "0",
                                  "--qlog-dir", str(tmp / "qlog")])
            _wait_for_file(tmp / "qlog")
            time.sleep(0.3)
            client_args = ["-m", "lab.endpoints.client", "--ca", str(certs.ca), "--size", args.size,
                           "--rate", args.rate]

            console.rule("connection 1: port rebinding, then a move to 127.0.0.2")
            control = tmp / "c1.sock"
            c1 = demo.start("client 1", [*client_args, "--server", f"127.0.0.1:{port}", "--local", "127.0.0.1",
                                         "--migration", "active", "--control-socket", str(control)])
            hello = demo.pump(lambda n, e: n == "client 1" and e.TYPE == "handshake_completed")
            if hello is None:
                console.print("[red]client 1 did not connect[/]")
                return 1
            demo.pump(lambda n, e: n == "client 1" and e.TYPE == "progress" and e.bytes >= size // 4)
            _command(control, {"cmd": "rebind"})
            demo.pump(lambda n, e: n == "server" and e.TYPE == "path_validated", timeout=5)
            demo.pump(lambda n, e: n == "client 1" and e.TYPE == "progress" and e.bytes >= size // 2)
            _command(control, {"cmd": "migrate", "local": "127.0.0.2"})
            demo.pump(lambda n, e: n == "client 1" and e.TYPE == "connection_closed", timeout=20)
            c1.wait(10)

            console.rule(f"connection 2: the server's preferred address {preferred}")
            c2 = demo.start("client 2", [*client_args, "--server", f"127.0.0.1:{pport}", "--migration", "preferred",
                                         "--control-socket", ""])
            demo.pump(lambda n, e: n == "client 2" and e.TYPE == "connection_closed", timeout=20)
            c2.wait(10)
            demo.pump(lambda n, e: False, timeout=0.3)  # the server's last words
        finally:
            demo.stop()
        return verdict(demo, console, hello.conn, preferred, c1.returncode, c2.returncode)


def verdict(demo: Demo, console: Console, conn1: str, preferred: str, rc1: int | None, rc2: int | None) -> int:
    """Each check is computed from the events seen; all must hold."""
    changes = demo.server_of("active_path_changed", conn1)
    validated = {e.peer for e in demo.server_of("path_validated", conn1)}
    cid_changes = demo.server_of("peer_cid_changed", conn1)
    rebinds = [e for e in changes if not e.address_changed]
    moves = [e for e in changes if e.address_changed and e.new_peer.startswith("127.0.0.2:")]
    move_mono = moves[0].mono if moves else float("inf")
    rebind_ok = bool(rebinds) and rebinds[0].new_peer in validated and all(c.mono >= move_mono for c in cid_changes)
    move_ok = bool(moves) and moves[0].new_peer in validated and bool(cid_changes)
    c2_changes = demo.of("client 2", "active_path_changed")
    c2_progress = demo.of("client 2", "progress")
    preferred_ok = bool(c2_changes) and c2_changes[0].new_peer == preferred and bool(c2_progress) and \
        c2_progress[-1].peer == preferred
    transfers = demo.of("client 1", "transfer_complete") + demo.of("client 2", "transfer_complete")
    transfers_ok = len(transfers) == 2 and all(t.ok for t in transfers) and rc1 == 0 and rc2 == 0
    checks = [
        ("port rebinding: same CID, new path validated by the server", rebind_ok),
        ("move to 127.0.0.2: new CID, new path validated by the server", move_ok),
        (f"preferred address: server replies observed from {preferred}", preferred_ok),
        ("every transfer sha256-verified", transfers_ok),
    ]
    console.rule("verdict")
    for text, ok in checks:
        console.print(("[green]PASS[/] " if ok else "[red]FAIL[/] ") + text)
    return 0 if all(ok for _, ok in checks) else 1
