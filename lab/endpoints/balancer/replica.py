"""`python -m lab.endpoints.balancer.replica -- COMMAND...`: a farm replica's routes, then COMMAND.

The balancer DNATs without SNAT, so a replica sees the client's (post-NAT) address; its replies
must go back through the balancer, whose conntrack entry turns their source back into the VIP.
Hence a route to the internet network via the balancer's farm address (``LB_GATEWAY``,
``INTERNET_SUBNET``), set before ``lab.endpoints.node`` removes Docker's default route.

A replica with a unicast address of its own on the internet network (``REPLICA_UNICAST``, its
preferred address) answers from there directly: a policy rule sends what leaves from that address
through its own interface (table 211), while everything else (sockets bound to the wildcard, whose
source the main table picks) still goes back through the balancer.
"""

from __future__ import annotations

import os
import subprocess
import sys

UNICAST_TABLE = "211"


def main(argv: list[str]) -> int:
    command = argv[argv.index("--") + 1:] if "--" in argv else argv
    subnet = os.environ["INTERNET_SUBNET"]
    subprocess.run(["ip", "route", "replace", subnet, "via", os.environ["LB_GATEWAY"]], check=True)
    unicast = os.environ.get("REPLICA_UNICAST")
    if unicast:
        iface = subprocess.run(["sh", "-c", f"ip -o -4 addr | awk '$4 ~ /^{unicast}\\// {{print $2}}'"],
                               capture_output=True, text=True, check=True).stdout.strip()
        if not iface:
            raise SystemExit(f"replica: no interface holds REPLICA_UNICAST {unicast}")
        subprocess.run(["ip", "route", "replace", subnet, "dev", iface, "src", unicast, "table", UNICAST_TABLE],
                       check=True)
        subprocess.run(["sh", "-c", f"ip rule del from {unicast} 2>/dev/null; "
                                    f"ip rule add from {unicast} lookup {UNICAST_TABLE}"], check=True)
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
