"""Server preferred address (RFC 9000 §9.6, §18.2) on top of aioquic 1.7.2.

aioquic's client follows a server's preferred_address since 1.7.0, but its server cannot
advertise one: ``_serialize_transport_parameters`` never sets it and QuicConfiguration has no
field for it. ``advertise_preferred_address`` adds it to one connection, before that
connection answers its first datagram:

- the transport parameter, by re-encoding what ``_serialize_transport_parameters`` returns;
- the connection ID it carries, with sequence number 1, added to the host CIDs (marked as
  sent, as it travels in the handshake rather than in a NEW_CONNECTION_ID frame), so that the
  CIDs issued later continue at 2;
- that CID registered in the server's routing table (``QuicServer._protocols``), which
  otherwise only learns CIDs from ConnectionIdIssued events.

The aioquic internals involved are reached through ``lab.endpoints.quic.aioquic_seam``.

The other half -- a socket listening on the preferred address and replies sent from the socket
the client moved to -- lives in ``lab.endpoints.quic.server``, because aioquic connections
have no notion of their own local address.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable

from aioquic.buffer import Buffer
from aioquic.quic.connection import QuicConnection, QuicConnectionId
from aioquic.quic.packet import (
    QuicPreferredAddress,
    pull_quic_transport_parameters,
    push_quic_transport_parameters,
)

from lab.endpoints.quic import aioquic_seam as seam


def make_preferred_address(host: str, port: int, connection_id: bytes, token: bytes) -> QuicPreferredAddress:
    ip = ipaddress.ip_address(host)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.version == 4:
        return QuicPreferredAddress(ipv4_address=(str(ip), port), ipv6_address=None,
                                    connection_id=connection_id, stateless_reset_token=token)
    return QuicPreferredAddress(ipv4_address=None, ipv6_address=(str(ip), port),
                                connection_id=connection_id, stateless_reset_token=token)


def advertise_preferred_address(quic: QuicConnection, host: str, port: int,
                                register_cid: Callable[[bytes], None]) -> bytes:
    """Make ``quic`` (a server connection, before its first datagram) advertise host:port.

    ``register_cid`` is called with the new CID so that the server routes it. Returns the CID.
    """
    if quic.configuration.is_client:
        raise ValueError("only a server advertises a preferred address")
    if seam.next_host_cid_sequence(quic) != 1:
        raise RuntimeError("the connection already issued connection IDs")
    cid = QuicConnectionId(cid=os.urandom(quic.configuration.connection_id_length), sequence_number=1,
                           stateless_reset_token=os.urandom(16), was_sent=True)
    seam.add_host_cid(quic, cid)
    register_cid(cid.cid)
    preferred = make_preferred_address(host, port, cid.cid, cid.stateless_reset_token)

    def with_preferred_address(encoded: bytes) -> bytes:
        params = pull_quic_transport_parameters(Buffer(data=encoded))
        params.preferred_address = preferred
        buf = Buffer(capacity=3 * seam.max_datagram_size(quic))
        push_quic_transport_parameters(buf, params)
        trace = seam.qlog_trace(quic)
        if trace is not None:
            trace.log_event(category="transport", event="parameters_set", data={
                "owner": "local",
                "preferred_address": {
                    "ip_v4": preferred.ipv4_address[0] if preferred.ipv4_address else None,
                    "port_v4": preferred.ipv4_address[1] if preferred.ipv4_address else None,
                    "ip_v6": preferred.ipv6_address[0] if preferred.ipv6_address else None,
                    "port_v6": preferred.ipv6_address[1] if preferred.ipv6_address else None,
                    "connection_id": cid.cid.hex(),
                    "stateless_reset_token": cid.stateless_reset_token.hex(),
                },
            })
        return buf.data

    seam.rewrite_transport_parameters(quic, with_preferred_address)
    return cid.cid
