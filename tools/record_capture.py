#!/usr/bin/env python3
"""Record the small QUIC migration captures in ``tests/data/captures/`` (reproducible recipe).

Everything happens on loopback (127.0.0.0/8) with aioquic 1.7.2 directly: a tiny server that sends
``GET <n>`` bytes back in paced chunks, and a client that migrates in the middle of the download
with the recipe of aioquic's ``examples/interop.py`` (new UDP socket bound to a new local
address/port, swapped under the protocol, optionally ``change_connection_id()``, then a PING so the
server sees a non-probing packet on the new path). ``tcpdump -i lo`` records the server's UDP port;
the client's key log (``QuicConfiguration.secrets_log_file``) is injected with
``editcap --inject-secrets tls,<keylog>`` so each pcapng decrypts on its own in Wireshark.

Outputs (each well under 300 KB):

* ``rebind-port.pcapng``: NAT-rebinding-like move to a new source port, same DCID (linkable).
* ``rebind-addr.pcapng``: move to 127.0.0.2 and a new DCID (active migration with rotation).
* ``unanswered-challenge.pcapng``: ``rebind-addr`` with every datagram carrying a client
  PATH_RESPONSE deleted (``editcap <in> <out> <frame numbers>``): a deliberately broken trace.
* ``two-handshakes.pcap`` + ``two-handshakes.keys.log``: two connections in one trace (fails the
  one-handshake check); left un-injected so that ``tshark -o tls.keylog_file:<keylog>`` is exercised.
  The key log holds throwaway secrets of a loopback test connection.

Needs root (or CAP_NET_RAW) for tcpdump on the host's loopback; editcap and tshark run from the lab image
(``make images``), as everywhere in the lab.
Run: ``.venv/bin/python tools/record_capture.py [--out tests/data/captures] [--port 47433]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent, StreamDataReceived

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.certs import ensure_certificates  # noqa: E402
from lab.verify.pcap import delete_frames, inject_keylog, read_quic_packets  # noqa: E402

ALPN = ["lab-capture"]
CHUNK = 8_000
CHUNK_INTERVAL = 0.004  # seconds between chunks: a 160 KB download lasts ~80 ms, so the move lands mid-transfer


class _Server(QuicConnectionProtocol):
    """Answers ``GET <n>\\n`` on a bidirectional stream with n bytes, in paced chunks."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._requests: dict[int, bytes] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            buf = self._requests.get(event.stream_id, b"") + event.data
            self._requests[event.stream_id] = buf
            if event.end_stream:
                size = int(buf.decode().split()[1])
                asyncio.ensure_future(self._send(event.stream_id, size))

    async def _send(self, stream_id: int, size: int) -> None:
        sent = 0
        while sent < size:
            n = min(CHUNK, size - sent)
            sent += n
            self._quic.send_stream_data(stream_id, bytes(n), end_stream=sent >= size)
            self.transmit()
            await asyncio.sleep(CHUNK_INTERVAL)


class _Forward(asyncio.DatagramProtocol):
    """Placeholder protocol of the new socket until the swap; forwards anything it receives."""

    def __init__(self, proto: QuicConnectionProtocol) -> None:
        self._proto = proto

    def datagram_received(self, data: bytes, addr) -> None:
        self._proto.datagram_received(data, addr)


async def _migrate(proto: QuicConnectionProtocol, host: str, new_cid: bool) -> None:
    """aioquic-migration.md §2 (new socket on a new local address/port, swapped under the protocol), made atomic.

    The recipe as written (``create_datagram_endpoint(lambda: proto, ...)`` then ``change_connection_id()``)
    lets the event loop run between the swap (``connection_made``) and the CID change: in a first
    recording an ACK went out on the new path with the *old* DCID, which links the two paths and fails
    ``new_dcid_on_new_path``. Here the socket is opened first, and the swap, the CID change and the
    first packet on the new path happen in one synchronous block.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((f"::ffff:{host}", 0, 0, 0))
    transport, _ = await loop.create_datagram_endpoint(lambda: _Forward(proto), sock=sock)
    old = proto._transport
    if new_cid:
        proto._quic.change_connection_id()  # queues RETIRE_CONNECTION_ID; no transmit yet
    proto._transport = transport
    transport.set_protocol(proto)
    proto._quic.send_ping(0)  # non-probing: the server migrates and validates the new path
    proto.transmit()
    old.close()


async def _download(proto: QuicConnectionProtocol, size: int, migrate_to: str | None, new_cid: bool) -> int:
    reader, writer = await proto.create_stream()
    writer.write(f"GET {size}\n".encode())
    writer.write_eof()
    got = 0
    migrated = migrate_to is None
    while True:
        data = await reader.read(65536)
        if not data:
            break
        got += len(data)
        if not migrated and got >= size // 3:
            migrated = True
            await _migrate(proto, migrate_to, new_cid)
    if got != size:
        raise RuntimeError(f"download incomplete: {got}/{size} bytes")
    return got


async def _session(port: int, ca: Path, keylog: Path, size: int, migrate_to: str | None, new_cid: bool,
                   connections: int) -> None:
    certs_dir = ca.parent
    server_cfg = QuicConfiguration(is_client=False, alpn_protocols=ALPN)
    server_cfg.load_cert_chain(certs_dir / "server.crt", certs_dir / "server.key")
    server = await serve("127.0.0.1", port, configuration=server_cfg, create_protocol=_Server)
    try:
        with keylog.open("a") as keys:
            for _ in range(connections):
                cfg = QuicConfiguration(is_client=True, alpn_protocols=ALPN, server_name="localhost",
                                        verify_mode=ssl.CERT_REQUIRED, secrets_log_file=keys)
                cfg.load_verify_locations(str(ca))
                async with connect("127.0.0.1", port, configuration=cfg) as proto:
                    await asyncio.wait_for(_download(proto, size, migrate_to, new_cid), 20)
                    await proto.ping()
    finally:
        server.close()


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        raise SystemExit(f"{tool} not found: apt-get install -y tcpdump (loopback capture on the host)")


def capture(workdir: Path, name: str, port: int, size: int, migrate_to: str | None, new_cid: bool,
            connections: int = 1) -> tuple[Path, Path]:
    """Run one scenario under ``tcpdump -i lo``; returns (raw pcap, NSS key log) in ``workdir``."""
    _require("tcpdump")
    paths, _ = ensure_certificates(workdir / "certs")
    raw = workdir / f"{name}.pcap"
    keylog = workdir / f"{name}.keys.log"
    keylog.write_text("")
    cmd = ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-s", "0", "-w", str(raw), f"udp port {port}"]
    # --immediate-mode: without it the last ring-buffer block (~a third of a short trace) is lost on SIGINT.
    dump = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = dump.stderr.readline()  # "listening on lo, ..." once the capture runs
        if "listening" not in line:
            raise RuntimeError(f"tcpdump did not start: {line.strip()}")
        asyncio.run(_session(port, paths.ca, keylog, size, migrate_to, new_cid, connections))
        time.sleep(1.0)
    finally:
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)
    return raw, keylog


def delete_path_responses(raw: Path, keylog: Path, out: Path, port: int) -> list[int]:
    """Copy ``raw`` to ``out`` without the datagrams that carry a client PATH_RESPONSE; returns their frame numbers.

    Works on the raw capture (before key injection): editcap 4.0.17 cannot rewrite a pcapng holding secrets.
    Command: ``editcap <raw> <out> <frame> [<frame>...]`` (listed frames are deleted).
    """
    packets = read_quic_packets(raw, keylog, [port])
    frames = sorted({p.frame for p in packets if p.path_response and p.src_port != port})
    if not frames:
        raise RuntimeError(f"{raw} has no client PATH_RESPONSE to delete")
    delete_frames(raw, frames, out)
    return frames


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "captures")
    ap.add_argument("--port", type=int, default=47433, help="server UDP port on 127.0.0.1 (the tests expect 47433)")
    ap.add_argument("--size", type=int, default=160_000, help="bytes downloaded per connection")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("warning: tcpdump usually needs root", file=sys.stderr)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    made = []
    with tempfile.TemporaryDirectory(prefix="record-capture-") as tmp:
        work = Path(tmp)
        raw, keys = capture(work, "rebind-port", args.port, args.size, migrate_to="127.0.0.1", new_cid=False)
        made.append(inject_keylog(raw, keys, out / "rebind-port.pcapng"))
        raw, keys = capture(work, "rebind-addr", args.port, args.size, migrate_to="127.0.0.2", new_cid=True)
        made.append(inject_keylog(raw, keys, out / "rebind-addr.pcapng"))
        broken = work / "unanswered-challenge.pcap"
        deleted = delete_path_responses(raw, keys, broken, args.port)
        made.append(inject_keylog(broken, keys, out / "unanswered-challenge.pcapng"))
        print(f"deleted frames {deleted} (client PATH_RESPONSE) from rebind-addr -> unanswered-challenge.pcapng")
        # Kept raw, with its key log beside it: exercises ``tshark -o tls.keylog_file:`` (no injection).
        raw, keys = capture(work, "two-handshakes", args.port, args.size // 4, migrate_to=None, new_cid=False,
                            connections=2)
        shutil.copyfile(raw, out / "two-handshakes.pcap")
        shutil.copyfile(keys, out / "two-handshakes.keys.log")
        made.append(out / "two-handshakes.pcap")
    for path in made:
        keylog = out / "two-handshakes.keys.log" if path.suffix == ".pcap" else None
        packets = read_quic_packets(path, keylog, [args.port])
        undecrypted = sum(1 for p in packets if p.packet_type == "1rtt" and not p.decrypted)
        print(f"{path.name}: {path.stat().st_size} bytes, {len(packets)} QUIC packets, "
              f"{undecrypted} undecrypted 1-RTT")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
