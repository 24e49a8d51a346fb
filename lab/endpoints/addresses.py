"""Addresses as the endpoints write and read them: one parser, one v4-mapped form, one host extractor.

- ``parse_host_port``: a command-line ``host:port`` (``[v6]:port`` for IPv6; the port may be left
  to a default);
- ``v4_mapped``: every socket of the lab is a dual-stack AF_INET6 socket, and aioquic keys its paths
  by the exact address tuple, so an IPv4 host is always written ``::ffff:a.b.c.d`` (as aioquic's
  ``connect()`` does) and a 2-tuple becomes the 4-tuple ``(host, port, 0, 0)``;
- ``address_host``/``same_ip``: the IP of an address, from a tuple or from its text form
  (``lab.events.normalise_address``), to tell an IP change from a port-only change (RFC 9000 §9.4).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from lab.events import normalise_address


def parse_host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """'10.0.0.1:4433' -> ('10.0.0.1', 4433); '[::1]:443' -> ('::1', 443); '10.0.0.1' -> default port.

    A bare IPv6 address (more than one colon, no brackets) is a host without a port. ValueError when
    the port is missing and there is no default, or is not a number.
    """
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not port:
        if default_port is None:
            raise ValueError(f"missing port in {text!r}")
        return host, default_port
    return host, int(port)


def v4_mapped_host(host: str) -> str:
    """'10.0.0.1' -> '::ffff:10.0.0.1'; an IPv6 (or already mapped) host is unchanged."""
    return host if ":" in host else "::ffff:" + host


def v4_mapped(addr: tuple[Any, ...]) -> tuple[Any, ...]:
    """An address as a dual-stack socket reports it: a 2-tuple becomes (v4-mapped host, port, 0, 0).

    A 4-tuple is returned as it is.
    """
    if len(addr) == 2:
        return (v4_mapped_host(addr[0]), addr[1], 0, 0)
    return tuple(addr)


def address_host(addr: tuple[Any, ...] | str) -> str:
    """The IP part of an address with its port, IPv4-mapped IPv6 normalised to IPv4."""
    text = normalise_address(addr)
    host = text.rsplit(":", 1)[0]
    return host.strip("[]")


def same_ip(a: tuple[Any, ...] | str, b: tuple[Any, ...] | str) -> bool:
    """Whether two addresses (tuples or ``ip:port`` text) have the same IP, whatever their ports."""
    try:
        return ipaddress.ip_address(address_host(a)) == ipaddress.ip_address(address_host(b))
    except ValueError:
        return address_host(a) == address_host(b)
