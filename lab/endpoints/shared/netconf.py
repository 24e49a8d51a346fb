"""Network facts and changes inside a container, through iproute2.

Docker (before Engine 28) attaches networks in no fixed order and re-picks the default gateway on
every connect or disconnect, so interfaces are found by subnet and routes are set by the lab.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Interface:
    name: str
    address: str
    prefix: int

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(f"{self.address}/{self.prefix}", strict=False)  # type: ignore[return-value]


def run(*args: str, check: bool = True) -> str:
    result = subprocess.run(list(args), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def interfaces(family: int = 4) -> list[Interface]:
    """IPv4 (or global IPv6) addresses of every interface except loopback."""
    found = []
    for link in json.loads(run("ip", "-j", f"-{family}", "addr", "show") or "[]"):
        for info in link.get("addr_info", []):
            if info.get("family") == ("inet" if family == 4 else "inet6") and link["ifname"] != "lo" \
                    and info.get("scope") == "global":
                found.append(Interface(link["ifname"], info["local"], int(info["prefixlen"])))
    return found


def interface_in(subnet: str) -> Interface | None:
    network = ipaddress.ip_network(subnet)
    for interface in interfaces(network.version):
        if ipaddress.ip_address(interface.address) in network:
            return interface
    return None


def parse_routes(text: str) -> dict[str, str]:
    """'10.0.1.0/24=10.0.1.2 10.0.2.0/24=10.0.2.2' -> {subnet: gateway}."""
    routes = {}
    for item in text.split():
        subnet, _, gateway = item.partition("=")
        routes[subnet] = gateway
    return routes


def gateway_for_attached(routes: dict[str, str]) -> str | None:
    """The gateway of the first attached network (in `routes` order) the container is on."""
    for subnet, gateway in routes.items():
        if interface_in(subnet):
            return gateway
    return None


def set_default_route(gateway: str | None) -> None:
    """Replace the default route (None: no default route at all, so nothing can leave).

    Docker's IPv6 default route (via the host's bridge address) goes too, whatever the gateway:
    the host forwards IPv6 for any network with an IPv6 pool (docs/ipv6.md)."""
    run("ip", "route", "del", "default", check=False)
    run("sh", "-c", "while ip -6 route del default 2>/dev/null; do :; done")
    if gateway:
        run("ip", "route", "replace", "default", "via", gateway)


def add_routes(routes: dict[str, str]) -> None:
    """Static routes, subnet -> next hop (the server's routes to the client networks' IPv6 /64s)."""
    for subnet, via in routes.items():
        family = "-6" if ":" in subnet else "-4"
        run("ip", family, "route", "replace", subnet, "via", via)



# --- the client's routing (policy routing, so that Docker's own default route is never used) ---

DEFAULT_TABLE = 100  # the lab's default route lives here, not in the main table
SUPPRESS_PRIORITY = 1500
DEFAULT_PRIORITY = 2000
SOURCE_PRIORITY = 1000
SOURCE_TABLE_BASE = 101


def source_table(subnet: str, subnets: list[str]) -> int:
    """The routing table of a client network: numbered by its subnet among all the client's subnets,
    so the controller and the container's entry point give each network the same table."""
    return SOURCE_TABLE_BASE + sorted(subnets).index(subnet)


def route_script(gateway: str | None, sources: list[tuple[str, str, int]], family: int = 4) -> list[str]:
    """Shell commands that set the client's routes in place, without a moment of no route.

    - rule 1000: traffic from an attached address leaves through that network's router (source
      routing, as on a multi-homed phone; an actively migrated socket keeps its path);
    - rule 1500: the main table for everything but default routes (connected subnets), so the
      default route Docker installs and re-picks on every connect and disconnect is never used;
    - rule 2000: table 100, the lab's default route: via the router of the current network, or
      `unreachable` when the client is on no network, so nothing falls through to Docker's route.

    `sources` are (address, gateway, table) of the attached networks. Each network keeps its own
    table whatever else is attached (the caller numbers them by the topology's network order): a
    table renumbered when another network joined once sent the Wi-Fi address's packets out through
    the cellular router while both were up. A rule of an address for another table is removed.

    ``family`` 6 gives the same rules and tables for IPv6 (``ip -6``; the families' rules and tables
    are apart in the kernel), so Docker's IPv6 default route via the host bridge is never used either.
    """
    ip = "ip" if family == 4 else "ip -6"
    script = [
        f"{ip} rule show priority {SUPPRESS_PRIORITY} | grep -q suppress "
        f"|| {ip} rule add from all lookup main suppress_prefixlength 0 priority {SUPPRESS_PRIORITY}",
        f"{ip} rule show priority {DEFAULT_PRIORITY} | grep -q 'lookup {DEFAULT_TABLE}' "
        f"|| {ip} rule add from all lookup {DEFAULT_TABLE} priority {DEFAULT_PRIORITY}",
    ]
    wanted = []
    for address, source_gateway, table in sources:
        wanted.append(f"{address}@{table}")
        script += [f"{ip} route replace default via {source_gateway} table {table}",
                   f"{ip} rule show priority {SOURCE_PRIORITY} | grep -q 'from {address} lookup {table}$' "
                   f"|| {ip} rule add from {address} table {table} priority {SOURCE_PRIORITY}"]
    keep = " ".join(wanted) or "none"
    script.append(f"{ip} rule show priority {SOURCE_PRIORITY} | awk '{{print $3, $5}}' | while read a t; do "
                  f"case ' {keep} ' in *\" $a@$t \"*) ;; "
                  f"*) {ip} rule del from $a table $t priority {SOURCE_PRIORITY};; "
                  f"esac; done")
    if gateway:  # a router's address, or "dev clat src 192.0.0.1" (IPv4 through the CLAT, on IPv6-only)
        hop = gateway if gateway.startswith("dev ") else f"via {gateway}"
        script.append(f"{ip} route replace default {hop} table {DEFAULT_TABLE}")
    else:
        script.append(f"{ip} route replace unreachable default table {DEFAULT_TABLE}")
    return script
