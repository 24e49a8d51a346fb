#!/usr/bin/env python3
"""Record the traces of ``tests/data/conformance/``: real aioquic 1.7.2 connections, as they are and with
one RFC 9000 rule broken (or mended) by a monkeypatch, so that every rule of
:mod:`lab.verify.conformance` has a real capture that violates it and one that complies.

Each trace is one connection on loopback, inside a short-lived container of the lab image
(``docker run --rm --network none``: no network but its own loopback), captured there with
``tcpdump -i lo``: a client downloads from a tiny server (``tools/record_capture.py``'s) and moves
in the middle, with the recipe of aioquic's ``examples/interop.py`` (a new UDP socket swapped under
the protocol, optionally ``change_connection_id()``, then a PING). The client's key log is injected
into the pcapng (``editcap --inject-secrets``), which is decoded on the host with the lab image's
tshark (:func:`lab.verify.pcap.read_quic_packets`) into ``<name>.jsonl``
(:func:`lab.verify.pcap.packets_to_json`): the unit tests read those and need no Docker.

The traces (:data:`TRACES`; patches apply to the whole process, so each trace runs in a process of its own):

``rebind-port``            aioquic as it is: a new source port, the same DCID (what a NAT rebinding shows).
``migrate-addr``           aioquic as it is: a new address (127.0.0.2) and a new CID (active migration).
``expanded-challenge``     aioquic as it is; the client's first datagram on the new address is 1200+ bytes,
                           so the server's budget allows an expanded PATH_CHALLENGE.
``revalidate``             server patched to do what §8.2.3 asks: once a path is validated by a challenge, it
                           challenges it again (an expanded datagram once the 3x limit is gone).
``unpadded-probes``        both endpoints patched not to pad PATH_CHALLENGE/PATH_RESPONSE datagrams (§8.2.1, §8.2.2);
                           the client moves after the download with a 1100-byte request, so the server has budget
                           and no data to fill its challenge datagram with.
``no-amplification-limit`` server patched to ignore the 3x limit on unvalidated paths (§8.1, §9.3.1).
``misrouted-response``     client patched to send its PATH_RESPONSE from its old socket (§8.2.2).
``reused-cid``             client moves to a new address without ``change_connection_id()`` (§9.5).
``server-keeps-cid``       server patched not to switch its DCID when the client does (§9.5).
``no-retire``              both endpoints patched not to send RETIRE_CONNECTION_ID for the CID they replace
                           (§9.5 SHOULD).
``early-migration``        client moves to a new address when its handshake completes, before HANDSHAKE_DONE (§9).

It also decodes the lab's own recorded runs (``tests/data/runs/*/captures/server-side.pcapng``, a real
NAT in front of the client) into ``run-<name>.jsonl``, and writes ``traces.json`` (what each trace is,
its server address) and ``README.md`` (the findings each trace gives).

Run (needs Docker and the lab image, ``make images``; about a minute):
``.venv/bin/python tools/make_conformance_traces.py [--out tests/data/conformance] [--only NAME ...]``.
Inside the container it runs itself as ``... record NAME --out DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tools")]

PORT = 47433
SERVER = f"127.0.0.1:{PORT}"
SIZE = 90_000  # bytes downloaded: the move lands at a third of it
IMAGE_MOUNT = "/src"
EARLY_TARGET = "127.0.0.2"  # where the early-migration client moves


@dataclass(frozen=True)
class Trace:
    name: str
    description: str
    move_to: str | None = "127.0.0.2"  # the client's new local address (None: no move during the download)
    new_cid: bool = True  # the client calls change_connection_id() when it moves
    big_first: bool = False  # the client's first datagram on the new path carries 1100 bytes of STREAM data
    early: bool = False  # the client moves when its handshake completes (before HANDSHAKE_DONE)
    after: bool = False  # the client moves once the download is complete (the server has nothing left to send)
    patch: str = ""  # name of a function of PATCHES, applied before the connection starts


TRACES: tuple[Trace, ...] = (
    Trace("rebind-port", "aioquic 1.7.2 as it is; the client moves to a new source port and keeps its DCID "
          "(what a NAT rebinding shows the server)", move_to="127.0.0.1", new_cid=False),
    Trace("migrate-addr", "aioquic 1.7.2 as it is; the client moves to 127.0.0.2 with a new DCID"),
    Trace("expanded-challenge", "aioquic 1.7.2 as it is; the client moves to 127.0.0.2 and its first datagram "
          "there carries 1100 bytes of data, so the server's 3x budget allows an expanded PATH_CHALLENGE",
          big_first=True),
    Trace("revalidate", "server patched to challenge a path again once a challenge validated it (RFC 9000 "
          "§8.2.3); the client moves to a new source port", move_to="127.0.0.1", new_cid=False,
          patch="revalidate"),
    Trace("unpadded-probes", "both endpoints patched not to expand datagrams carrying PATH_CHALLENGE or "
          "PATH_RESPONSE; after the download the client moves to 127.0.0.2 and its first datagram there "
          "carries 1100 bytes, so the server's budget allows 1200", big_first=True, after=True, patch="unpadded"),
    Trace("no-amplification-limit", "server patched to ignore the 3x limit on unvalidated paths; the client "
          "moves to a new source port", move_to="127.0.0.1", new_cid=False, patch="no_amplification_limit"),
    Trace("misrouted-response", "client patched to send the datagram carrying its PATH_RESPONSE from its old "
          "socket; the client moves to 127.0.0.2", patch="misroute_response"),
    Trace("reused-cid", "aioquic 1.7.2 as it is; the client moves to 127.0.0.2 without change_connection_id()",
          new_cid=False),
    Trace("server-keeps-cid", "server patched not to switch its DCID when the client switches its own; the "
          "client moves to 127.0.0.2 with a new DCID", patch="server_keeps_cid"),
    Trace("no-retire", "both endpoints patched not to retire the CID they replace; the client moves to "
          "127.0.0.2 with a new DCID", patch="no_retire"),
    Trace("early-migration", "aioquic 1.7.2 as it is, driven to move to 127.0.0.2 as soon as its handshake "
          "completes, before HANDSHAKE_DONE arrives", move_to=None, early=True),
)
RUNS = ("nat-rebinding", "recorded-rebinding")  # tests/data/runs/<name>: the lab's recorded runs
LAB_TOPOLOGY = REPO / "tests" / "data" / "runs" / "recorded-rebinding" / "topology.json"  # both runs' addresses


# --- the patches (inside the container) -----------------------------------------------------------------------

def _patch_unpadded() -> None:
    """QuicPacketBuilder.start_frame flags datagrams with PATH_CHALLENGE/PATH_RESPONSE for padding: unflag them."""
    from aioquic.quic.packet import QuicFrameType
    from aioquic.quic.packet_builder import QuicPacketBuilder

    original = QuicPacketBuilder.start_frame

    def start_frame(self, frame_type, *args, **kwargs):
        buf = original(self, frame_type, *args, **kwargs)
        if frame_type in (QuicFrameType.PATH_CHALLENGE, QuicFrameType.PATH_RESPONSE):
            self._datagram_needs_padding = False
        return buf

    QuicPacketBuilder.start_frame = start_frame


def _patch_no_amplification_limit() -> None:
    """The server counts 10 MB received on every unvalidated path, so its 3x limit never binds."""
    from aioquic.quic.connection import QuicConnection

    original = QuicConnection.datagrams_to_send

    def datagrams_to_send(self, now):
        if not self._is_client:
            for path in self._network_paths:
                if not path.is_validated:
                    path.bytes_received = max(path.bytes_received, 10_000_000)
        return original(self, now)

    QuicConnection.datagrams_to_send = datagrams_to_send


def _patch_revalidate() -> None:
    """Once a server challenge validated a migrated path, make aioquic validate it once more: it sends a
    new PATH_CHALLENGE on the active path, expanded (the path was validated: no 3x limit, marked by a
    received count that cannot bind)."""
    from aioquic.quic.connection import QuicConnection

    original = QuicConnection._handle_path_response_frame

    def handle(self, context, frame_type, buf):
        pending = [p for p in self._network_paths if not p.is_validated]
        original(self, context, frame_type, buf)
        if self._is_client:
            return
        for path in pending:
            if path.is_validated and not getattr(path, "lab_revalidated", False):
                path.lab_revalidated = True
                path.is_validated = False
                path.local_challenge_sent = False
                path.validation_deadline = None
                path.bytes_received = max(path.bytes_received, 10_000_000)

    QuicConnection._handle_path_response_frame = handle


def _patch_server_keeps_cid() -> None:
    """The server never switches its DCID (``change_connection_id`` does nothing on the server)."""
    from aioquic.quic.connection import QuicConnection

    original = QuicConnection.change_connection_id

    def change_connection_id(self):
        if self._is_client:
            original(self)

    QuicConnection.change_connection_id = change_connection_id


def _patch_no_retire() -> None:
    """Neither endpoint queues RETIRE_CONNECTION_ID for the CID it replaces."""
    from aioquic.quic.connection import QuicConnection

    QuicConnection._retire_peer_cid = lambda self, connection_id: None


def _patch_misroute_response() -> None:
    """The client marks when it writes a PATH_RESPONSE; its protocol (``_Client.transmit``) then sends that
    batch of datagrams from the old socket."""
    from aioquic.quic.connection import QuicConnection

    original = QuicConnection._write_path_response_frame

    def write(self, builder, challenge):
        original(self, builder, challenge)
        if self._is_client:
            self.lab_responded = True

    QuicConnection._write_path_response_frame = write


PATCHES: dict[str, Callable[[], None]] = {
    "unpadded": _patch_unpadded, "no_amplification_limit": _patch_no_amplification_limit,
    "revalidate": _patch_revalidate, "server_keeps_cid": _patch_server_keeps_cid, "no_retire": _patch_no_retire,
    "misroute_response": _patch_misroute_response,
}


# --- one connection (inside the container) ---------------------------------------------------------------------

def _client_class():
    from aioquic.asyncio import QuicConnectionProtocol
    from aioquic.quic.events import HandshakeCompleted
    from record_capture import _Forward

    class _Client(QuicConnectionProtocol):
        """A client protocol that can move to a new socket (``move``), early if asked, and keeps the old one
        open for the misrouting patch."""

        trace: Trace

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.old_transport = None
            self.prepared = None
            if self.trace.early:
                asyncio.ensure_future(self.prepare(EARLY_TARGET))

        async def prepare(self, host: str) -> None:
            loop = asyncio.get_running_loop()
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((f"::ffff:{host}", 0, 0, 0))
            self.prepared, _ = await loop.create_datagram_endpoint(lambda: _Forward(self), sock=sock)

        def swap(self, new_cid: bool, big_first: bool) -> None:
            """Swap the socket, change the CID, send the first packet on the new path: one synchronous block."""
            if new_cid:
                self._quic.change_connection_id()
            self.old_transport, self._transport = self._transport, self.prepared
            self.prepared.set_protocol(self)
            if big_first:
                stream = self._quic.get_next_available_stream_id()  # a request for 0 bytes, padded with blanks
                self._quic.send_stream_data(stream, b"GET 0\n".ljust(1100), end_stream=True)
            else:
                self._quic.send_ping(0)
            self.transmit()

        async def move(self, host: str, new_cid: bool, big_first: bool) -> None:
            await self.prepare(host)
            self.swap(new_cid, big_first)

        def quic_event_received(self, event) -> None:
            if isinstance(event, HandshakeCompleted) and self.trace.early and self.prepared is not None:
                asyncio.get_running_loop().call_soon(self.swap, self.trace.new_cid, False)
            super().quic_event_received(event)

        def transmit(self) -> None:
            if self.old_transport is None:
                return super().transmit()
            current = self._transport
            self._transport = _Split(self, current)
            try:
                super().transmit()
            finally:
                self._transport = current
                self._quic.lab_responded = False

    class _Split:
        """A transport that sends a batch of datagrams from the old socket when one of them carries a
        PATH_RESPONSE (``datagrams_to_send`` writes the whole batch before the first ``sendto``)."""

        def __init__(self, proto: _Client, current) -> None:
            self.proto, self.current = proto, current

        def sendto(self, data: bytes, addr) -> None:
            responded = getattr(self.proto._quic, "lab_responded", False)
            (self.proto.old_transport if responded else self.current).sendto(data, addr)

    return _Client


async def _download(proto, trace: Trace, size: int) -> None:
    reader, writer = await proto.create_stream()
    writer.write(f"GET {size}\n".encode())
    writer.write_eof()
    got, moved = 0, trace.move_to is None or trace.after
    while True:
        data = await reader.read(65536)
        if not data:
            break
        got += len(data)
        if not moved and got >= size // 3:
            moved = True
            await proto.move(trace.move_to, trace.new_cid, trace.big_first)
    if got != size:
        raise RuntimeError(f"download incomplete: {got}/{size} bytes")
    if trace.after:
        await proto.move(trace.move_to, trace.new_cid, trace.big_first)
        await asyncio.sleep(0.1)


async def _session(trace: Trace, ca: Path, cert: Path, key: Path, keylog: Path) -> None:
    from aioquic.asyncio import connect, serve
    from aioquic.quic.configuration import QuicConfiguration
    from record_capture import ALPN, _Server

    server_cfg = QuicConfiguration(is_client=False, alpn_protocols=ALPN)
    server_cfg.load_cert_chain(cert, key)
    server = await serve("127.0.0.1", PORT, configuration=server_cfg, create_protocol=_Server)
    client = _client_class()
    client.trace = trace
    try:
        with keylog.open("a") as keys:
            cfg = QuicConfiguration(is_client=True, alpn_protocols=ALPN, server_name="localhost",
                                    verify_mode=ssl.CERT_REQUIRED, secrets_log_file=keys)
            cfg.load_verify_locations(str(ca))
            async with connect("127.0.0.1", PORT, configuration=cfg, create_protocol=client) as proto:
                await asyncio.wait_for(_download(proto, trace, SIZE), 20)
                await asyncio.wait_for(proto.ping(), 5)
    finally:
        server.close()


def record(name: str, out: Path) -> Path:
    """Inside the container: capture one trace on lo, inject the key log; returns ``out/<name>.pcapng``."""
    from lab.certs import ensure_certificates

    trace = next(t for t in TRACES if t.name == name)
    if trace.patch:
        PATCHES[trace.patch]()
    work = Path(tempfile.mkdtemp(prefix="conformance-"))
    paths, _ = ensure_certificates(work / "certs")
    raw, keylog = work / f"{name}.pcap", work / f"{name}.keys.log"
    keylog.write_text("")
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-s", "0", "-w", str(raw),
                             f"udp port {PORT}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = dump.stderr.readline()
        if "listening" not in line:
            raise RuntimeError(f"tcpdump did not start: {line.strip()}")
        asyncio.run(_session(trace, paths.ca, paths.cert, paths.key, keylog))
        time.sleep(0.5)
    finally:
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)
    target = out / f"{name}.pcapng"
    subprocess.run(["editcap", "--inject-secrets", f"tls,{keylog}", "-F", "pcapng", str(raw), str(target)],
                   check=True)
    return target


# --- the host side: containers, decoding, the index -----------------------------------------------------------

def _in_container(names: list[str], out: Path) -> None:
    """One short-lived container of the lab image per trace (patches stay in their process)."""
    import docker

    from lab.verify.tshark import lab_image

    client = docker.from_env()
    script = " && ".join(f"python3 {IMAGE_MOUNT}/tools/make_conformance_traces.py record {n} --out /out"
                         for n in names) + f" && chown -R {os.getuid()}:{os.getgid()} /out"
    client.containers.run(lab_image(), ["sh", "-c", script], remove=True, network_mode="none",
                          working_dir=IMAGE_MOUNT, environment={"PYTHONDONTWRITEBYTECODE": "1"},
                          volumes={str(REPO): {"bind": IMAGE_MOUNT, "mode": "ro"},
                                   str(out): {"bind": "/out", "mode": "rw"}},
                          labels={"org.quic-migration-lab": "conformance-traces"})


def _readme(index: list[dict], out: Path) -> None:
    from lab.verify.conformance import evaluate
    from lab.verify.pcap import packets_from_json

    lines = ["# Conformance traces", "", "Written by `tools/make_conformance_traces.py` (do not edit): each trace's "
             "decoded packets (`<name>.jsonl`, read by `tests/unit/test_conformance.py`), the capture itself where "
             "it was recorded here (`<name>.pcapng`, the key log injected: Wireshark opens it decrypted) and the "
             "findings `lab.verify.conformance.evaluate` gives.", ""]
    for entry in index:
        packets = packets_from_json((out / entry["packets"]).read_text())
        lines += [f"## {entry['name']}", "", entry["description"], "", "| rule | level | endpoint | verdict | frames |",
                  "|---|---|---|---|---|"]
        for f in evaluate(packets, entry["server_addresses"]):
            verdict = f"**{f.verdict}**" if f.verdict == "violation" else f.verdict
            lines.append(f"| {f.rule} | {f.level} | {f.endpoint} | {verdict} | {' '.join(map(str, f.frames))} |")
        lines.append("")
    (out / "README.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", nargs="?", default="all", choices=("all", "record"))
    ap.add_argument("name", nargs="?", help="record: the trace")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "conformance")
    ap.add_argument("--only", nargs="*", help="record only these traces (the index keeps the others' files)")
    args = ap.parse_args(argv)
    if args.command == "record":
        print(record(args.name, args.out))
        return 0
    from lab.verify.pcap import packets_to_json, read_quic_packets

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    names = args.only or [t.name for t in TRACES]
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        _in_container(names, Path(tmp))
        for name in names:
            shutil.copyfile(Path(tmp) / f"{name}.pcapng", out / f"{name}.pcapng")
    index = []
    for trace in TRACES:
        if trace.name in names:
            packets = read_quic_packets(out / f"{trace.name}.pcapng", None, [PORT])
            (out / f"{trace.name}.jsonl").write_text(packets_to_json(packets))
        if (out / f"{trace.name}.jsonl").is_file():
            index.append({"name": trace.name, "description": trace.description, "packets": f"{trace.name}.jsonl",
                          "capture": f"{trace.name}.pcapng", "server_addresses": [SERVER]})
    for run in RUNS:
        capture = REPO / "tests" / "data" / "runs" / run / "captures" / "server-side.pcapng"
        servers = _lab_servers(json.loads(LAB_TOPOLOGY.read_text()))
        packets = read_quic_packets(capture, None, [int(s.rsplit(":", 1)[1]) for s in servers])
        (out / f"run-{run}.jsonl").write_text(packets_to_json(packets))
        index.append({"name": f"run-{run}", "description": f"the lab's recorded `{run}` run (a NAT in front of "
                      f"the client), decoded from tests/data/runs/{run}/captures/server-side.pcapng",
                      "packets": f"run-{run}.jsonl", "capture": f"../runs/{run}/captures/server-side.pcapng",
                      "server_addresses": sorted(servers)})
    # Traces recorded elsewhere (a matrix cell of a foreign stack: "capture" is null) are kept as they are.
    previous = out / "traces.json"
    made = {entry["name"] for entry in index}
    if previous.is_file():
        index += [e for e in json.loads(previous.read_text()) if e.get("capture") is None and e["name"] not in made]
    (out / "traces.json").write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n")
    _readme(index, out)
    for entry in index:
        print(f"{entry['name']}: {len((out / entry['packets']).read_text().splitlines())} packets")
    return 0


def _lab_servers(topology_config: dict) -> set[str]:
    """The server's two addresses (``ip:port``) from a run's topology.json."""
    from lab.topology.model import topology_from_config

    topology = topology_from_config(topology_config)
    return {f"{topology.server_address}:{topology.server_port}",
            f"{topology.server_preferred_address}:{topology.server_preferred_port}"}


if __name__ == "__main__":
    raise SystemExit(main())
