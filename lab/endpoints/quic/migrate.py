"""Client-side active migration (RFC 9000 §9.2): swap the UDP socket under a live connection.

aioquic has no local-address API. Its ``connect()`` binds one unconnected dual-stack socket and
the connection only knows peer addresses, so a migration is done from the outside, as
aioquic's ``examples/interop.py`` does it (and as its maintainer recommends in issue #185):

1. bind a new socket to the new local address (same address and a new port = a rebinding);
2. ``create_datagram_endpoint(lambda: protocol, sock=new)``: ``connection_made`` re-points the
   protocol's transport, then close the old transport;
3. optionally switch to a fresh peer connection ID (``change_connection_id``), so that the two
   paths cannot be linked by an observer (RFC 9000 §9.5);
4. send a non-probing frame (PING) at once, which makes the server migrate and validate the
   new path (the client never validates its own new path in aioquic: no probe-before-migrate).

Also here: the local addresses of the host, for ``--watch-interfaces``.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import socket
import struct
from pathlib import Path
from typing import Any

from lab.addresses import v4_mapped_host
from lab.endpoints.quic import aioquic_seam as seam
from lab.events import normalise_address

SIOCGIFADDR = 0x8915


# Socket buffers as QUIC stacks ask for (quic-go wants 7 MB): the kernel default of 208 KB holds
# about 90 datagrams, 50 ms at 2 MB/s, and a client that paused that long lost packets to
# RcvbufErrors (269 in 3 baseline runs, measured in /proc/net/snmp), each loss a recovery stall.
# The kernel caps the request at net.core.rmem_max / wmem_max (4 MB on the build machine).
SOCKET_BUFFER = 4 * 1024 * 1024


def bind_udp(host: str | None, port: int = 0, reuse_address: bool = False) -> socket.socket:
    """A dual-stack AF_INET6 UDP socket bound to ``host`` (None, "", "::" or "0.0.0.0" = wildcard;
    IPv4 given as such or v4-mapped).

    The format matches aioquic's ``connect()``, which addresses IPv4 peers as ::ffff:a.b.c.d.
    """
    host = "::" if not host or host in ("::", "0.0.0.0") else v4_mapped_host(host)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if reuse_address:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        sock.bind((host, port, 0, 0))
    except OSError:
        sock.close()
        raise
    return sock


def bind_client_socket(local: str | None = None, port: int = 0) -> socket.socket:
    """The client's socket: bound to ``local`` (None = wildcard, so the kernel picks the source)."""
    return bind_udp(local, port)


def socket_local(transport: Any) -> str:
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return normalise_address(sockname) if sockname else ""


async def swap_socket(protocol: Any, local: str | None, port: int = 0) -> tuple[str, str]:
    """Move ``protocol`` (a QuicConnectionProtocol) to a new socket; returns (old, new) local."""
    loop = asyncio.get_running_loop()
    old_transport = seam.protocol_transport(protocol)
    old_local = socket_local(old_transport)
    sock = bind_client_socket(local, port)
    await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
    new_transport = seam.protocol_transport(protocol)
    if old_transport is not None and old_transport is not new_transport:
        old_transport.close()
    return old_local, socket_local(new_transport)


def send_non_probing(protocol: Any) -> None:
    """Queue a PING (a non-probing, ack-eliciting frame) and transmit it now."""
    seam.protocol_connection(protocol).send_ping(0)
    protocol.transmit()


def local_addresses() -> set[str]:
    """The host's IP addresses (IPv4: each interface's primary address; IPv6: all)."""
    found: set[str] = set()
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
            found.add(socket.inet_ntoa(packed[20:24]))
    finally:
        probe.close()
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            raw = line.split()[0]
            found.add(str(ipaddress.IPv6Address(bytes.fromhex(raw))))
    except (OSError, ValueError, IndexError):
        pass
    return found


def candidate_addresses(addresses: set[str], family: int) -> list[str]:
    """Addresses a client could migrate to: same family as the server, not loopback/link-local."""
    result = []
    for text in sorted(addresses):
        ip = ipaddress.ip_address(text)
        if ip.is_loopback or ip.is_link_local or (ip.version == 4) != (family == socket.AF_INET):
            continue
        result.append(text)
    return result
