"""QUIC-LB connection IDs, plaintext algorithm (draft-ietf-quic-load-balancers, "Plaintext CID Algorithm").

A routable CID is a first octet, then the server ID, then a nonce::

    first octet: 3 config-rotation bits | 5 bits: CID length - 1 (length self-encoding)
    server ID:   server_id_length octets, in the clear (readable by the balancer, and by anyone)
    nonce:       the rest, random (at least 4 octets)

A balancer that knows the config reads the server ID at a fixed offset and forwards to that
server, whatever the 4-tuple: a migrated or rebound client still reaches the server that holds its
connection. Config rotation 0b111 marks a CID as unroutable (the draft's fallback: the 4-tuple hash).
Pure functions: the server mints with :func:`mint`, the balancer's rules are built from the same
:class:`LbConfig` (``lab.endpoints.balancer.rules``), the judge decodes with :func:`server_id_of`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

UNROUTABLE = 0b111
MIN_NONCE = 4
MAX_CID = 20  # RFC 9000 §17.2


@dataclass(frozen=True)
class LbConfig:
    """One QUIC-LB configuration: its rotation codepoint and field lengths."""

    config_id: int = 0
    server_id_length: int = 1
    nonce_length: int = 6  # 1 + 1 + 6 = aioquic's default 8-byte CIDs

    def __post_init__(self) -> None:
        if not 0 <= self.config_id < UNROUTABLE:
            raise ValueError(f"config_id {self.config_id}: must be 0-6 (7 means unroutable)")
        if self.server_id_length < 1 or self.nonce_length < MIN_NONCE:
            raise ValueError("server_id_length must be >= 1 and nonce_length >= 4")
        if self.cid_length > MAX_CID:
            raise ValueError(f"a CID of {self.cid_length} octets exceeds {MAX_CID}")

    @property
    def cid_length(self) -> int:
        return 1 + self.server_id_length + self.nonce_length

    def first_octet(self) -> int:
        return (self.config_id << 5) | (self.cid_length - 1)


def encode(config: LbConfig, server_id: int, nonce: bytes) -> bytes:
    """The CID carrying ``server_id`` (big-endian, ``server_id_length`` octets) and ``nonce``."""
    if len(nonce) != config.nonce_length:
        raise ValueError(f"nonce of {len(nonce)} octets, the config needs {config.nonce_length}")
    if not 0 <= server_id < 256 ** config.server_id_length:
        raise ValueError(f"server ID {server_id} does not fit {config.server_id_length} octet(s)")
    return bytes([config.first_octet()]) + server_id.to_bytes(config.server_id_length, "big") + nonce


def mint(config: LbConfig, server_id: int, random: Callable[[int], bytes] = os.urandom) -> Callable[[], bytes]:
    """A CID factory for one server: each call is a new CID with a fresh random nonce."""
    encode(config, server_id, bytes(config.nonce_length))  # refuse a bad server ID now, not mid-connection
    return lambda: encode(config, server_id, random(config.nonce_length))


def server_id_of(config: LbConfig, cid: bytes) -> int | None:
    """The server ID a balancer with ``config`` reads from ``cid``; None when it cannot route it.

    Unroutable: another config rotation (including 0b111), or a CID too short to hold the ID.
    """
    if len(cid) < 1 + config.server_id_length or cid[0] >> 5 != config.config_id:
        return None
    return int.from_bytes(cid[1:1 + config.server_id_length], "big")
