"""A NAT router: forwards between its LAN (a client network) and the internet, and reports its
NAT mappings live as nat_mapping events (from conntrack's event stream).

Environment: ROUTER_NAME, LAN_SUBNET, INTERNET_SUBNET, DATACENTER_SUBNET, SERVER_IP.
MASQUERADE --random gives every new mapping a random external port, so that dropping the
client's conntrack entries (a NAT rebinding) changes the port the server sees.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from lab.endpoints.shared import netconf
from lab.events import Emitter, NatMapping

READY = Path("/run/lab/ready")
_CONNTRACK = re.compile(
    r"\[(?P<change>NEW|DESTROY)\]\s+(?P<proto>udp|tcp)\s+\d+\s+(?:\d+\s+)?(?:\w+\s+)?"
    r"src=(?P<src>\S+) dst=(?P<dst>\S+) sport=(?P<sport>\d+) dport=(?P<dport>\d+).*?"
    r"src=(?P<rsrc>\S+) dst=(?P<rdst>\S+) sport=(?P<rsport>\d+) dport=(?P<rdport>\d+)"
)


def parse_conntrack_event(line: str) -> tuple[str, str, str, str] | None:
    """A `conntrack -E` line -> (change, proto, inside "ip:port", outside "ip:port")."""
    match = _CONNTRACK.search(line)
    if not match:
        return None
    change = "new" if match["change"] == "NEW" else "destroyed"
    inside = f"{match['src']}:{match['sport']}"
    outside = f"{match['rdst']}:{match['rdport']}"  # where the reply goes = the NAT's public side
    return change, match["proto"], inside, outside


def configure(lan_subnet: str, internet_subnet: str, datacenter_subnet: str, server_ip: str) -> tuple[str, str]:
    lan = netconf.interface_in(lan_subnet)
    wan = netconf.interface_in(internet_subnet)
    if lan is None or wan is None:
        raise SystemExit(f"router: no interface in {lan_subnet} or {internet_subnet}: {netconf.interfaces()}")
    netconf.set_default_route(None)  # nothing leaves the lab
    netconf.run("ip", "route", "replace", datacenter_subnet, "via", server_ip)
    ipt = ["iptables", "-w"]
    for rule in (
        ["-t", "nat", "-F"],
        ["-F", "FORWARD"],
        ["-P", "FORWARD", "DROP"],
        ["-A", "FORWARD", "-i", lan.name, "-o", wan.name, "-s", lan_subnet, "-j", "ACCEPT"],
        ["-A", "FORWARD", "-i", wan.name, "-o", lan.name, "-m", "conntrack", "--ctstate",
         "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ["-t", "nat", "-A", "POSTROUTING", "-o", wan.name, "-s", lan_subnet, "-j", "MASQUERADE", "--random"],
    ):
        netconf.run(*ipt, *rule)
    return lan.name, wan.name


def main() -> int:
    name = os.environ.get("ROUTER_NAME", "router")
    lan, wan = configure(os.environ["LAN_SUBNET"], os.environ["INTERNET_SUBNET"],
                         os.environ["DATACENTER_SUBNET"], os.environ["SERVER_IP"])
    emitter = Emitter("router", transport="udp")
    print(f"{name}: NAT {os.environ['LAN_SUBNET']} ({lan}) -> {wan}, random external ports", flush=True)
    READY.parent.mkdir(parents=True, exist_ok=True)
    READY.write_text("ready\n")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    events = subprocess.Popen(["conntrack", "-E", "-e", "NEW,DESTROY"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, bufsize=1)
    assert events.stdout is not None
    for line in events.stdout:
        parsed = parse_conntrack_event(line)
        if parsed is None:
            continue
        change, proto, inside, outside = parsed
        emitter.emit(NatMapping, router=name, inside=inside, outside=outside, change=change, transport=proto)
    return events.wait()


if __name__ == "__main__":
    sys.exit(main())
