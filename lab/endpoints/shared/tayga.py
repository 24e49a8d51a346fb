"""tayga (Debian's userspace stateless NAT64, RFC 7915 on a TUN device): its configuration for the
lab's two translators of 464XLAT (RFC 6877), the carrier's NAT64 and the client's CLAT.

Pure: ``plat`` and ``clat`` return what to run (the config file's text and the shell that makes the
TUN device, its addresses and routes, then starts tayga); the endpoints run it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class Translator:
    config: str  # tayga.conf
    setup: list[str]  # shell commands, in order (the last starts tayga)
    device: str


def _config(device: str, ipv4: str, prefix: str, extra: list[str]) -> str:
    return "\n".join([f"tun-device {device}", f"ipv4-addr {ipv4}", f"prefix {prefix}", *extra]) + "\n"


def _start(device: str, conf: str) -> list[str]:
    return [f"ip link show {device} >/dev/null 2>&1 || tayga --config {conf} --mktun >/dev/null",
            f"ip link set {device} up"]


def plat(pool: str, prefix: str, clat_prefix: str, clat_via: str, directory: str = "/run/lab/tayga",
         device: str = "nat64") -> Translator:
    """The carrier's NAT64 (the PLAT): IPv6 to ``prefix`` becomes IPv4 from ``pool`` (the kernel's
    NAT then maps the pool to the router's WAN address, as a LAN). The TUN device holds the pool's
    first host, tayga the second; tayga gives its clients the upper half. The CLAT's delegated /64
    is routed via the client's address."""
    net = ipaddress.ip_network(pool)
    dynamic = list(net.subnets(prefixlen_diff=1))[1]
    conf, pidfile = f"{directory}/{device}.conf", f"{directory}/{device}.pid"
    setup = [f"mkdir -p {directory}", *_start(device, conf),
             f"ip addr replace {net.network_address + 1}/{net.prefixlen} dev {device}",
             f"ip -6 route replace {prefix} dev {device}",
             f"ip -6 route replace {clat_prefix} via {clat_via}",
             f"tayga --config {conf} --pidfile {pidfile}"]
    config = _config(device, str(net.network_address + 2), prefix, [f"dynamic-pool {dynamic}", f"data-dir {directory}"])
    return Translator(config, setup, device)


def clat(prefix: str, clat_prefix: str, ipv4: str = "192.0.0.1", directory: str = "/run/lab/clat",
         device: str = "clat") -> Translator:
    """The client's CLAT: its IPv4 address ``ipv4`` (RFC 7335's 192.0.0.1) maps to the first host of
    the delegated /64, every other IPv4 address to ``prefix`` (stateless, one to one)."""
    address6 = str(ipaddress.ip_network(clat_prefix).network_address + 1)
    own = str(ipaddress.IPv4Address(ipv4) + 1)  # tayga's own IPv4 address, beside the host's
    conf, pidfile = f"{directory}/{device}.conf", f"{directory}/{device}.pid"
    setup = [f"mkdir -p {directory}", *_start(device, conf),
             f"ip addr replace {ipv4}/29 dev {device}",
             f"ip -6 route replace {clat_prefix} dev {device}",
             f"test -s {pidfile} && kill -0 $(cat {pidfile}) 2>/dev/null || tayga --config {conf} --pidfile {pidfile}"]
    return Translator(_config(device, own, prefix, [f"map {ipv4} {address6}"]), setup, device)
