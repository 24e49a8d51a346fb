"""The victim host: on the internet network, silent (no ICMP, no answer), so that whatever the
server sends it can only be counted (its capture), never mistaken for a reply.

It announces itself once (a gratuitous ARP) before going quiet: a silent host's MAC is never
learned by the bridge, which then floods every frame sent to it onto every port, and the routers'
captures would count the server's datagrams to the victim once each.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from lab.endpoints import node
from lab.endpoints.adversary.packets import gratuitous_arp
from lab.endpoints.shared import netconf


def announce() -> None:
    for interface in netconf.interfaces():
        mac = Path(f"/sys/class/net/{interface.name}/address").read_text().strip()
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
            raw.bind((interface.name, 0))
            raw.send(gratuitous_arp(mac, interface.address))


def main() -> int:
    subprocess.run(["iptables", "-w", "-A", "INPUT", "-p", "udp", "-j", "DROP"], check=True)
    announce()
    return node.main(["victim"])


if __name__ == "__main__":
    sys.exit(main())
