"""A NAT router: forwards between its LAN (a client network) and the internet, and reports its
NAT mappings live as nat_mapping events (from conntrack's event stream).

Environment: ROUTER_NAME, LAN_SUBNET, INTERNET_SUBNET, DATACENTER_SUBNET, SERVER_IP, and its NAT
behaviour NAT_MAPPING and NAT_PORTS (lab.nat_behaviour; compose.yaml sets them, and the UDP binding
timeouts as the netns sysctls). The default, random ports (MASQUERADE --random-fully), gives every
new mapping a new external port, so that dropping the client's conntrack entries (a NAT rebinding)
changes the port the server sees.

`python -m lab.endpoints.router.nat set [--mapping M] [--ports P] [--udp-timeout S]` changes the
behaviour of the running router (the controller's `nat` step), `... reset` restores compose.yaml's.
Both apply to mappings made from then on, as a reconfigured NAT does.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from lab import nat_behaviour as nb
from lab.endpoints.shared import netconf, tayga
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


def masquerade_rule(wan: str, lan_subnet: str, mapping: str, ports: str) -> list[str]:
    return ["POSTROUTING", "-o", wan, "-s", lan_subnet, "-j", "MASQUERADE", *nb.masquerade_flags(mapping, ports)]


def configure(lan_subnet: str, internet_subnet: str, datacenter_subnet: str, server_ip: str,
              mapping: str = nb.APDM, ports: str = "random") -> tuple[str, str]:
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
        ["-t", "nat", "-A", *masquerade_rule(wan.name, lan_subnet, mapping, ports)],
    ):
        netconf.run(*ipt, *rule)
    return lan.name, wan.name


def host_addresses6(*subnets: str) -> list[str]:
    """The host's own address on each of these lab networks: Docker's IPv6 gateway, the subnet's
    first host (compose.yaml sets no other, and validate refuses it for a lab host)."""
    return [str(ipaddress.ip_network(subnet).network_address + 1) for subnet in subnets]


def firewall6_rules(lan: str, wan: str, lan_subnet6: str, host: list[str] = ()) -> list[list[str]]:
    """ip6tables rules of a router for IPv6: routed, not NATed (a home router's IPv6 firewall): the
    LAN's /64 out, only replies in, nothing else forwarded. Nothing is forwarded to the host's
    addresses on the router's networks (``host``): the host is no part of the lab's internet, and a
    probe from the client to the internet bridge's address would otherwise reach it."""
    return [
        ["-F", "FORWARD"],
        ["-P", "FORWARD", "DROP"],
        *(["-A", "FORWARD", "-d", address, "-j", "DROP"] for address in host),
        ["-A", "FORWARD", "-i", lan, "-o", wan, "-s", lan_subnet6, "-j", "ACCEPT"],
        ["-A", "FORWARD", "-i", wan, "-o", lan, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
    ]


def configure6(lan_subnet6: str, internet_subnet6: str, datacenter_subnet6: str, server_ip6: str) -> None:
    """IPv6 forwarding between the LAN and the internet (compose.yaml sets the netns's
    net.ipv6.conf.all.forwarding), and the route to the datacenter's /64 via the server."""
    lan, wan = netconf.interface_in(lan_subnet6), netconf.interface_in(internet_subnet6)
    if lan is None or wan is None:
        raise SystemExit(f"router: no interface in {lan_subnet6} or {internet_subnet6}: {netconf.interfaces(6)}")
    netconf.run("ip", "-6", "route", "replace", datacenter_subnet6, "via", server_ip6)
    for rule in firewall6_rules(lan.name, wan.name, lan_subnet6, host_addresses6(lan_subnet6, internet_subnet6)):
        netconf.run("ip6tables", "-w", *rule)


def start_nat64() -> str | None:
    """The NAT64 of an IPv6-only carrier (NAT64_PREFIX set): tayga's TUN device, which holds the
    IPv4 pool (this router's LAN_SUBNET, so the IPv4 NAT below treats it as the LAN), then tayga.
    Its device name, or None for a router without one."""
    if not os.environ.get("NAT64_PREFIX"):
        return None
    translator = tayga.plat(os.environ["LAN_SUBNET"], os.environ["NAT64_PREFIX"], os.environ["CLAT_PREFIX"],
                            os.environ["CLAT_VIA"])
    directory = Path(translator.setup[0].split()[-1])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{translator.device}.conf").write_text(translator.config)
    netconf.run("sh", "-ec", "; ".join(translator.setup[1:]))
    return translator.device


def nat64_rules6(lan: str, device: str, clat_prefix: str) -> list[list[str]]:
    """IPv6 from the client's CLAT (its delegated /64) into the NAT64, and the NAT64's replies back."""
    return [["-A", "FORWARD", "-i", lan, "-o", device, "-s", clat_prefix, "-j", "ACCEPT"],
            ["-A", "FORWARD", "-i", device, "-o", lan, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED",
             "-j", "ACCEPT"]]


SYSCTLS = Path("/proc/sys/net/netfilter")
CHANGED = Path(nb.CHANGED_MARKER)  # a `set` is in force; the controller's reset looks for it


def sysctl_timeouts() -> tuple[int, int]:
    """The netns's UDP timeouts (compose.yaml's sysctls): before and after a reply."""
    return (int((SYSCTLS / "nf_conntrack_udp_timeout").read_text()),
            int((SYSCTLS / "nf_conntrack_udp_timeout_stream").read_text()))


def set_udp_timeout(unreplied: int, replied: int) -> None:
    """Set the timeout policy every LAN binding is attached to (its CT rule is made at start).

    Entries point at the policy, so the new values apply to the bindings that exist too, from
    their next packet on: a scenario can change the timeout of the connection it already has.
    /proc/sys is read-only in a container (moby's oci defaults) and the image has no nft or nfct,
    so this sends the one netlink message nfct would.
    """
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, nb.NETLINK_NETFILTER) as link:
        link.bind((0, 0))
        link.send(nb.timeout_policy_message(nb.TIMEOUT_POLICY, unreplied, replied))
        errno = nb.netlink_errno(link.recv(4096))
    if errno:
        raise SystemExit(f"router: conntrack timeout policy: {os.strerror(errno)} (errno {errno})")


def attach_timeout_policy(lan: str) -> None:
    """A CT rule in raw PREROUTING (before conntrack makes the entry) giving every UDP binding from
    the LAN the lab's policy, at first with the sysctls' values. iptables-nft refuses CT in a user
    chain, hence PREROUTING, with a comment to find it by."""
    set_udp_timeout(*sysctl_timeouts())
    rule = ["PREROUTING", "-i", lan, "-p", "udp", "-m", "comment", "--comment", nb.TIMEOUT_TAG,
            "-j", "CT", "--timeout", nb.TIMEOUT_POLICY]
    if nb.TIMEOUT_TAG not in netconf.run("iptables", "-w", "-t", "raw", "-S", "PREROUTING"):
        netconf.run("iptables", "-w", "-t", "raw", "-I", *rule)


def reconfigure(argv: list[str]) -> int:
    """The `set` and `reset` commands (run by the controller with docker exec)."""
    parser = argparse.ArgumentParser(prog="python -m lab.endpoints.router.nat")
    parser.add_argument("command", choices=("set", "reset"))
    parser.add_argument("--mapping", type=nb.mapping_name)
    parser.add_argument("--ports", type=nb.ports_name)
    parser.add_argument("--udp-timeout", type=int)
    args = parser.parse_args(argv)
    default = nb.NatBehaviour(os.environ.get(nb.ENV_MAPPING, nb.APDM), os.environ.get(nb.ENV_PORTS, "random"))
    mapping, ports = (default.mapping, default.ports) if args.command == "reset" else \
        nb.resolve(args.mapping, args.ports, default)
    try:
        nb.masquerade_flags(mapping, ports)
        if args.udp_timeout is not None:
            nb.check_timeout(args.udp_timeout, "--udp-timeout")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lan_subnet = os.environ["LAN_SUBNET"]
    lan, wan = netconf.interface_in(lan_subnet), netconf.interface_in(os.environ["INTERNET_SUBNET"])
    if lan is None or wan is None:
        raise SystemExit(f"router: no interface in {lan_subnet} or the internet: {netconf.interfaces()}")
    rule = masquerade_rule(wan.name, lan_subnet, mapping, ports)
    listed = netconf.run("iptables", "-w", "-t", "nat", "-S", "POSTROUTING").splitlines()
    rules = [line for line in listed if line.startswith("-A ")]
    number = next((i for i, line in enumerate(rules, start=1) if "-j MASQUERADE" in line), None)
    if number is None:
        raise SystemExit(f"router: no MASQUERADE rule in POSTROUTING: {listed}")
    netconf.run("iptables", "-w", "-t", "nat", "-R", rule[0], str(number), *rule[1:])
    timeouts = (args.udp_timeout, args.udp_timeout) if args.command == "set" and args.udp_timeout else \
        sysctl_timeouts()
    set_udp_timeout(*timeouts)
    if args.command == "set":
        CHANGED.parent.mkdir(parents=True, exist_ok=True)
        CHANGED.write_text("changed\n")
    else:
        CHANGED.unlink(missing_ok=True)
    print(f"mapping={mapping} ports={ports} udp_timeout={timeouts[0]}/{timeouts[1]}")
    return 0


def main() -> int:
    if sys.argv[1:]:
        return reconfigure(sys.argv[1:])
    name = os.environ.get("ROUTER_NAME", "router")
    mapping, ports = os.environ.get(nb.ENV_MAPPING, nb.APDM), os.environ.get(nb.ENV_PORTS, "random")
    nat64 = start_nat64()
    lan, wan = configure(os.environ["LAN_SUBNET"], os.environ["INTERNET_SUBNET"],
                         os.environ["DATACENTER_SUBNET"], os.environ["SERVER_IP"], mapping, ports)
    attach_timeout_policy(lan)
    if os.environ.get("LAN_SUBNET6"):
        configure6(os.environ["LAN_SUBNET6"], os.environ["INTERNET_SUBNET6"], os.environ["DATACENTER_SUBNET6"],
                   os.environ["SERVER_IP6"])
    if nat64 is not None:
        lan6 = netconf.interface_in(os.environ["LAN_SUBNET6"])
        assert lan6 is not None  # configure6 found it
        for rule in nat64_rules6(lan6.name, nat64, os.environ["CLAT_PREFIX"]):
            netconf.run("ip6tables", "-w", *rule)
    emitter = Emitter("router", transport="udp")
    print(f"{name}: NAT {os.environ['LAN_SUBNET']} ({lan}) -> {wan}, {mapping} mapping, {ports} ports", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    events = subprocess.Popen(["conntrack", "-E", "-e", "NEW,DESTROY"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, bufsize=1)
    # Ready once every rule is in and the mapping reader runs (lab up waits for this file).
    READY.parent.mkdir(parents=True, exist_ok=True)
    READY.write_text("ready\n")
    assert events.stdout is not None
    for line in events.stdout:
        parsed = parse_conntrack_event(line)
        if parsed is None:
            continue
        change, proto, inside, outside = parsed
        if inside == outside:  # routed, not mapped: IPv6 (and the NAT64's IPv6 leg) keeps its address
            continue
        emitter.emit(NatMapping, router=name, inside=inside, outside=outside, change=change, transport=proto)
    return events.wait()


if __name__ == "__main__":
    sys.exit(main())
