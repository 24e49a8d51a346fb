"""Addresses, parsed and compared in one place (a leaf: only ``lab.events`` below it).

The endpoints inside the containers and the controller's judge both use it:

- ``parse_host_port``: a command-line ``host:port`` (``[v6]:port`` for IPv6; the port may be left
  to a default);
- ``v4_mapped``: every socket of the lab is a dual-stack AF_INET6 socket, and aioquic keys its paths
  by the exact address tuple, so an IPv4 host is always written ``::ffff:a.b.c.d`` (as aioquic's
  ``connect()`` does) and a 2-tuple becomes the 4-tuple ``(host, port, 0, 0)``;
- ``host_of``/``same_ip``: the IP of an address, from a socket tuple or from its text form
  (``lab.events.normalise_address``), to tell an IP change from a port-only change (RFC 9000 §9.4);
- ``host_number_or_ipv4`` and ``ip_or_ip_port``: the addresses a scenario file may write (a step's
  ``address``, the argument of ``migrated_to_preferred``).
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


def host_of(address: tuple[Any, ...] | str) -> str:
    """The IP of an address, without its port.

    ``"10.0.0.5:443"`` -> ``"10.0.0.5"``; ``"[fd00::1]:443"`` -> ``"fd00::1"``; a bare IP passes
    through; a socket tuple such as ``("::ffff:10.0.0.5", 443, 0, 0)`` -> ``"10.0.0.5"``.
    """
    text = normalise_address(address)
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:
        return text.rsplit(":", 1)[0]
    return text


def same_ip(a: tuple[Any, ...] | str, b: tuple[Any, ...] | str) -> bool:
    """Whether two addresses (tuples or ``ip[:port]`` text) have the same IP, whatever their ports."""
    try:
        return ipaddress.ip_address(host_of(a)) == ipaddress.ip_address(host_of(b))
    except ValueError:
        return host_of(a) == host_of(b)


def host_number_or_ipv4(value: Any) -> int | str:
    """A host number within a network (2-254) or a full IPv4 address (a scenario step's ``address``)."""
    if isinstance(value, bool):
        raise ValueError(f"not an address: {value!r}")
    if isinstance(value, int):
        if not 2 <= value <= 254:
            raise ValueError(f"host number must be from 2 to 254, got {value}")
        return value
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise ValueError(f"not an address: {value!r}; give a host number (2-254) or an IPv4 address") from None


def ip_or_ip_port(value: Any) -> str:
    """An IP, or an IP with a port (``10.9.0.2``, ``10.9.0.2:4443``, ``[fd00::2]:4443``), as written."""
    problem = f"needs an address such as '10.9.0.2' or '10.9.0.2:4443' (got {value!r})"
    if not isinstance(value, str):
        raise ValueError(problem)
    try:
        host, port = parse_host_port(value, default_port=0)
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(problem) from None
    if not 0 <= port <= 65535:
        raise ValueError(problem)
    return value


__all__ = ["host_number_or_ipv4", "host_of", "ip_or_ip_port", "parse_host_port", "same_ip", "v4_mapped",
           "v4_mapped_host"]
