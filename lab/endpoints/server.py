"""`python -m lab.endpoints.server`: the lab's long-lived QUIC server (and TCP+TLS baseline).

A thin launcher: options (with environment fallbacks: QLOGDIR, SSLKEYLOGFILE) -> ``serve_quic``
(``lab.endpoints.quic.server``) and, unless ``--tcp-port 0``, ``serve_tcp`` from
``lab.endpoints.tcp.server`` on the same address. Events go to stdout as JSON lines
(``docs/events.md``); warnings go to stderr.

RFC 9000 §9.4 congestion reset on an IP-address change is on by default; ``--no-cc-reset``
keeps aioquic's behaviour (one congestion controller for every path).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from lab.addresses import parse_host_port
from lab.endpoints.quic.server import ServerOptions, serve_quic
from lab.endpoints.shared import sched
from lab.endpoints.shared.gaps import freeze_startup_objects
from lab.endpoints.tcp.server import serve_tcp
from lab.events import Emitter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab.endpoints.server", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="::", help="listen address (default :: = dual stack)")
    parser.add_argument("--port", type=int, default=443, help="UDP port for QUIC (default 443)")
    parser.add_argument("--preferred-address", metavar="IP:PORT",
                        help="advertise this preferred address (and listen on it) to connections on --preferred-port")
    parser.add_argument("--preferred-port", type=int, default=4443,
                        help="connections arriving on this port get the preferred_address parameter (default 4443)")
    parser.add_argument("--cert", default="/certs/server.crt")
    parser.add_argument("--key", default="/certs/server.key")
    parser.add_argument("--qlog-dir", default=os.environ.get("QLOGDIR") or None, help="qlog directory (env QLOGDIR)")
    parser.add_argument("--keylog", default=os.environ.get("SSLKEYLOGFILE") or None,
                        help="TLS key log, appended (env SSLKEYLOGFILE)")
    parser.add_argument("--www", type=Path, default=Path("/www"), help="files served over h3 / hq-interop")
    parser.add_argument("--no-cc-reset", action="store_true",
                        help="do not reset congestion control and RTT when the peer's IP address changes")
    parser.add_argument("--tcp-port", type=int, default=None, help="TCP+TLS baseline port (default --port; 0 = off)")
    parser.add_argument("--quic-lb-server-id", type=int, default=None, metavar="ID",
                        help="encode this QUIC-LB server ID (plaintext, config 0) in every CID issued: a farm replica")
    return parser


def options_from_args(args: argparse.Namespace) -> ServerOptions:
    preferred = parse_host_port(args.preferred_address) if args.preferred_address else None
    return ServerOptions(listen=args.listen, port=args.port, preferred_address=preferred,
                         preferred_port=args.preferred_port, cert=args.cert, key=args.key, qlog_dir=args.qlog_dir,
                         keylog=args.keylog, www=args.www, cc_reset=not args.no_cc_reset,
                         quic_lb_server_id=args.quic_lb_server_id)


async def _start_tcp(args: argparse.Namespace, emitter: Emitter) -> asyncio.AbstractServer | None:
    port = args.port if args.tcp_port is None else args.tcp_port
    if not port:
        return None
    tcp_emitter = Emitter(emitter.role, stream=emitter.stream, transport="tcp")
    return await serve_tcp(args.listen, port, args.cert, args.key, tcp_emitter, args.keylog)


async def main_async(args: argparse.Namespace) -> int:
    emitter = Emitter("server")
    options = options_from_args(args)
    server = await serve_quic(options, emitter)
    tcp = await _start_tcp(args, emitter)
    print(f"serving QUIC on {[s.local for s in server.sockets]}"
          + (f", TCP on port {args.tcp_port or args.port}" if tcp else ""), file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # SIGUSR1: forget every connection, so that a new run starts with none (the lab's reset).
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(f"closed {server.close_connections()} connection(s)",
                                                          file=sys.stderr, flush=True))
    # SIGUSR2: yield the main UDP port to a foreign server in this network namespace (a black-box
    # run, lab.scenario.stacks); SIGHUP: take it back. Connections on it are closed first.
    loop.add_signal_handler(signal.SIGUSR2, lambda: print(
        f"main port {'yielded' if server.yield_main_port() else 'already yielded'}", file=sys.stderr, flush=True))

    def reclaim() -> None:
        async def bind() -> None:
            try:
                print(f"main port {'reclaimed' if await server.reclaim_main_port() else 'was not yielded'}",
                      file=sys.stderr, flush=True)
            except OSError as exc:  # still held by a foreign server: the controller retries
                print(f"main port not reclaimed: {exc}", file=sys.stderr, flush=True)
        loop.create_task(bind())

    loop.add_signal_handler(signal.SIGHUP, reclaim)
    await stop.wait()
    server.close()
    if tcp is not None:
        tcp.close()
    await asyncio.sleep(0.05)  # let CONNECTION_CLOSE frames leave
    qlog = server.configuration.quic_logger
    if qlog is not None:
        qlog.stop()  # type: ignore[attr-defined]
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        freeze_startup_objects()
        sched.request_slice(sched.slice_from_env(dict(os.environ)))
        return asyncio.run(main_async(args))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
