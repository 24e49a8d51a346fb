"""Workloads shared by the QUIC and TCP endpoints: a deterministic download and an echo.

The download is a byte stream that both ends can generate independently, so the client can
verify what it received (sha256) without trusting the server's word for it. A request is one
JSON line; the reply is raw bytes (download) or echoed frames (echo).
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass

CHUNK = 64 * 1024
# A paced download leaves the server in pieces of PACING_TICK_S worth of data. A stall of s ms at
# the server shows at the client as a gap of up to s + the tick: at 2 ms ticks the baseline's
# longest gap was median 5.0-5.2 ms over 3 benches of 5 runs, at 1 ms 3.9-5.0 over 4 (bench noise).
PACING_TICK_S = 0.001
ECHO_FRAME = struct.Struct("!QQ")  # sequence number, sender's monotonic time in ns
ALPN_LAB = "quic-lab"

def _chunk(seed: int, index: int) -> bytes:
    return random.Random(seed * 1_000_003 + index).randbytes(CHUNK)


def stream_bytes(size: int, offset: int = 0, seed: int = 1) -> Iterator[bytes]:
    """Yield bytes [offset, size) of the deterministic stream, in pieces of at most CHUNK."""
    position = offset
    while position < size:
        index, skip = divmod(position, CHUNK)
        piece = _chunk(seed, index)[skip: skip + min(CHUNK - skip, size - position)]
        yield piece
        position += len(piece)


def expected_sha256(size: int, seed: int = 1) -> str:
    digest = hashlib.sha256()
    for piece in stream_bytes(size, 0, seed):
        digest.update(piece)
    return digest.hexdigest()


@dataclass(frozen=True)
class Request:
    op: str  # download | echo | call
    size: int = 0
    offset: int = 0
    seed: int = 1
    rate: int = 0  # bytes per second the server paces the download at; 0 = as fast as possible

    def encode(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode()

    @classmethod
    def decode(cls, line: bytes) -> Request:
        data = json.loads(line.decode())
        request = cls(**data)
        if request.op not in ("download", "echo", "call"):
            raise ValueError(f"unknown op {request.op!r}")
        return request
