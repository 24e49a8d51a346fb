"""Container entry point for the server and the client: set up routes, then run or idle.

`python -m lab.endpoints.node ROLE [-- COMMAND...]`
- Deletes Docker's default routes, IPv4 and IPv6 (they point at the host: containment), then,
  where LAB_ROUTES (LAB_ROUTES6 for IPv6) names the gateway of an attached network, routes
  through that lab router instead. LAB_STATIC_ROUTES6: plain subnet=next-hop routes (the server's
  to the client networks' /64s, which the routers route rather than NAT).
- Writes /run/lab/ready for the healthcheck, then execs COMMAND (the server) or idles (the client,
  whose workloads the controller starts with `docker exec`).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from lab.endpoints.shared import netconf

READY = Path("/run/lab/ready")


def main(argv: list[str]) -> int:
    role = argv[0] if argv else "idle"
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    routes = netconf.parse_routes(os.environ.get("LAB_ROUTES", ""))
    gateway = netconf.gateway_for_attached(routes)
    netconf.set_default_route(None)  # Docker's default route points at the host: containment
    if routes:  # the client: policy routing through the lab's routers (netconf.route_script)
        sources = [(i.address, gw, netconf.source_table(subnet, list(routes))) for subnet, gw in routes.items()
                   if (i := netconf.interface_in(subnet))]
        netconf.run("sh", "-ec", "; ".join(netconf.route_script(gateway, sources)))
    routes6 = netconf.parse_routes(os.environ.get("LAB_ROUTES6", ""))
    if routes6:
        sources6 = [(i.address, gw, netconf.source_table(subnet, list(routes6))) for subnet, gw in routes6.items()
                    if (i := netconf.interface_in(subnet))]
        netconf.run("sh", "-ec", "; ".join(netconf.route_script(netconf.gateway_for_attached(routes6), sources6, 6)))
    netconf.add_routes(netconf.parse_routes(os.environ.get("LAB_STATIC_ROUTES6", "")))
    for directory in ("/logs/qlog", "/run/lab"):
        Path(directory).mkdir(parents=True, exist_ok=True)
    READY.write_text(role + "\n")
    print(f"{role}: ready, interfaces "
          + ", ".join(f"{i.name}={i.address}/{i.prefix}" for i in netconf.interfaces())
          + f", lab default route via {gateway}", flush=True)
    if command:
        os.execvp(command[0], command)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
