"""`python -m lab.endpoints.client`: one connection (QUIC or the TCP+TLS baseline), one workload.

A thin launcher: options (env fallbacks QLOGDIR, SSLKEYLOGFILE) -> ``run_quic_client``
(``lab.endpoints.quic.client``) or ``run_tcp_client`` (``lab.endpoints.tcp.client``). Events
go to stdout as JSON lines (``docs/events.md``). Exit 0 when the workload completed and its
sha256 matched, 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from lab.addresses import parse_host_port
from lab.endpoints.quic.client import PROBE_AFTER, ClientOptions, run_quic_client
from lab.endpoints.quic.reconnect import ATTEMPT_TIMEOUT, STRATEGIES, run_quic_reconnect
from lab.endpoints.shared import sched
from lab.endpoints.shared.gaps import freeze_startup_objects
from lab.endpoints.shared.video import VideoPlan
from lab.endpoints.tcp.client import run_tcp_client
from lab.events import Emitter
from lab.units import parse_bit_rate, parse_byte_rate, parse_duration, parse_size


def parse_rate(text: str) -> int:
    """'2MB/s' or a whole number of bytes per second -> bytes per second; '0' = unpaced."""
    return parse_byte_rate(text, bare=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab.endpoints.client", description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, metavar="IP:PORT")
    parser.add_argument("--server-name", default="server", help="TLS SNI and certificate name (default server)")
    parser.add_argument("--transport", choices=("quic", "tcp", *STRATEGIES, "tcp-resume"), default="quic",
                        help="quic-0rtt, quic-full, tcp-resume: reconnect after a break (reconnect-vs-migrate)")
    parser.add_argument("--workload", choices=("download", "echo", "video", "call"), default="download",
                        help="video: a DASH/HLS player over HTTP/3 (TCP: HTTP/1.1); call: messages both ways")
    parser.add_argument("--size", type=parse_size, default=parse_size("8MB"), help="download size (default 8MB)")
    parser.add_argument("--rate", type=parse_rate, default=0, help="download pacing asked of the server, e.g. 2MB/s")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="echo or call interval (default 20)")
    parser.add_argument("--duration", type=parse_duration, default=10.0, help="echo or call duration (default 10s)")
    parser.add_argument("--bitrate", type=parse_bit_rate, default=VideoPlan.bitrate,
                        help="video: the stream's bitrate (default 2500kbit)")
    parser.add_argument("--segment", type=parse_duration, default=VideoPlan.segment_s,
                        help="video: seconds of video per segment (default 2s)")
    parser.add_argument("--segments", type=int, default=VideoPlan.count, help="video: segments (default 10)")
    parser.add_argument("--startup", type=parse_duration, default=VideoPlan.startup_s,
                        help="video: buffered video before playback starts or resumes (default 2s)")
    parser.add_argument("--buffer", type=parse_duration, default=VideoPlan.buffer_s,
                        help="video: the player asks for the next segment while its buffer is below this (default 4s)")
    parser.add_argument("--call-stream", action="store_true",
                        help="call over QUIC: one stream instead of DATAGRAM frames (RFC 9221)")
    parser.add_argument("--migration", choices=("none", "passive", "active", "preferred"), default="none")
    parser.add_argument("--rotate-cid", action=argparse.BooleanOptionalAction, default=True,
                        help="switch to a new peer CID on an active migration (default on)")
    parser.add_argument("--probe-after", type=parse_duration, default=PROBE_AFTER,
                        help="QUIC: the detection delay, silence before the client sends a PING (default 200ms)")
    parser.add_argument("--strategy", action="store_true",
                        help="tcp: reconnect as the strategies of reconnect-vs-migrate do (after --probe-after)")
    parser.add_argument("--control-socket", default="/run/lab/client.sock",
                        help="QUIC only: unix socket for JSON-line commands ('' = none); the TCP baseline takes none")
    parser.add_argument("--watch-interfaces", action="store_true",
                        help="active mode: migrate when the local address disappears or a new one appears")
    parser.add_argument("--ca", default="/certs/ca.crt")
    parser.add_argument("--keylog", default=os.environ.get("SSLKEYLOGFILE") or None)
    parser.add_argument("--qlog-dir", default=os.environ.get("QLOGDIR") or None)
    parser.add_argument("--local", default=None, help="bind address of the first socket (default wildcard)")
    return parser


async def _run_tcp(args: argparse.Namespace, server: tuple[str, int]) -> int:
    emitter = Emitter("client", transport=args.transport)
    if args.transport == "tcp-resume" or args.strategy:
        # A strategy of reconnect-vs-migrate: the migrating client's detection delay and retry cadence.
        return await run_tcp_client(server, args.server_name, args.workload, args.size, args.rate,
                                    args.interval_ms, args.duration, args.ca, emitter, args.keylog,
                                    video=video_plan(args), stall_timeout=args.probe_after,
                                    resume=args.transport == "tcp-resume", attempt_timeout=ATTEMPT_TIMEOUT,
                                    retry_interval=args.probe_after)
    return await run_tcp_client(server, args.server_name, args.workload, args.size, args.rate,
                                args.interval_ms, args.duration, args.ca, emitter, args.keylog, video=video_plan(args))


def video_plan(args: argparse.Namespace) -> VideoPlan:
    return VideoPlan(bitrate=args.bitrate, segment_s=args.segment, count=args.segments, startup_s=args.startup,
                     buffer_s=args.buffer)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        server = parse_host_port(args.server, 443)
    except ValueError as exc:
        print(f"error: --server: {exc}", file=sys.stderr)
        return 2
    freeze_startup_objects()
    sched.request_slice(sched.slice_from_env(dict(os.environ)))
    if args.transport in ("tcp", "tcp-resume"):
        return asyncio.run(_run_tcp(args, server))
    rotate = args.rotate_cid
    options = ClientOptions(server=server, server_name=args.server_name, workload=args.workload, size=args.size,
                            rate=args.rate, interval_ms=args.interval_ms, duration_s=args.duration,
                            migration=args.migration, rotate_cid=rotate, probe_after=args.probe_after,
                            control_socket=args.control_socket or None,
                            watch_interfaces=args.watch_interfaces, ca=args.ca, keylog=args.keylog,
                            qlog_dir=args.qlog_dir, local=args.local, video=video_plan(args),
                            call_datagrams=not args.call_stream)
    try:
        if args.transport in STRATEGIES:
            return asyncio.run(run_quic_reconnect(options, Emitter("client", transport=args.transport),
                                                  args.transport))
        return asyncio.run(run_quic_client(options, Emitter("client")))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
