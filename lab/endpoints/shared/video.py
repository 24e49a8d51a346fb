"""The video workload: segments a DASH/HLS player fetches, one request per segment, one connection.

A segment is a deterministic byte string both ends generate from its index and size (the same
generator as the download, seeded per segment), so the client verifies every segment's sha256
without trusting the server. Its path names both: ``/lab/video/<index>-<bytes>.m4s``. The QUIC
server serves it over HTTP/3, the TCP baseline over HTTP/1.1 (keep-alive).

:func:`run_player` is the player: it requests segment after segment, but only while its buffer
(the pure model of :mod:`lab.endpoints.shared.player`, asked live) is below ``buffer_s``, and
emits one ``segment`` event per segment. The transport's ``fetch`` does the request (and, for
TCP, any reconnect). Nothing is rendered: a viewer's experience is replayed from the events.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lab.endpoints.shared.player import SegmentTiming, play
from lab.endpoints.shared.workload import expected_sha256, stream_bytes
from lab.events import Segment

SEGMENT_SEED = 10_000  # segment i is the deterministic stream of seed SEGMENT_SEED + i
MAX_SEGMENT_BYTES = 64_000_000
SEGMENT_PATH = re.compile(r"^/lab/video/(\d{1,6})-(\d{1,9})\.m4s$")
WAIT_STEP_S = 0.05  # how often an idle player looks at its buffer again (at most)


@dataclass(frozen=True)
class VideoPlan:
    """What the player plays: ``count`` segments of ``segment_s`` seconds at ``bitrate`` bits/s."""

    bitrate: int = 2_500_000
    segment_s: float = 2.0
    count: int = 10
    startup_s: float = 2.0  # buffered video before the first frame (and before resuming after a stall)
    buffer_s: float = 4.0  # the player requests the next segment only while its buffer is below this

    @property
    def segment_bytes(self) -> int:
        return max(1, int(self.bitrate * self.segment_s / 8))


def segment_path(index: int, size: int) -> str:
    return f"/lab/video/{index}-{size}.m4s"


def parse_segment_path(path: str) -> tuple[int, int] | None:
    """``/lab/video/3-625000.m4s`` -> (3, 625000); None for anything else (or a size over 64 MB)."""
    match = SEGMENT_PATH.match(path.split("?", 1)[0])
    if not match:
        return None
    index, size = int(match.group(1)), int(match.group(2))
    return (index, size) if 0 < size <= MAX_SEGMENT_BYTES else None


def segment_body(index: int, size: int) -> bytes:
    return b"".join(stream_bytes(size, 0, SEGMENT_SEED + index))


def segment_sha256(index: int, size: int) -> str:
    return expected_sha256(size, SEGMENT_SEED + index)


# A transport's request: GET that path, return the body (None: the connection is gone for good).
Fetch = Callable[[int, str], Awaitable[bytes | None]]


@dataclass
class PlayerResult:
    ok: bool = False
    bytes: int = 0
    segments: list[SegmentTiming] = field(default_factory=list)
    sha256: str = ""  # sha256 over the segments' sha256 digests, in order
    expected_sha256: str = ""  # the same over the digests the segments must have


async def run_player(plan: VideoPlan, fetch: Fetch, emit: Callable[..., Any]) -> PlayerResult:
    """Fetch ``plan.count`` segments as a player does; ``emit(Segment, **fields)`` for each one."""
    result = PlayerResult()
    got, want = hashlib.sha256(), hashlib.sha256()
    size = plan.segment_bytes
    for index in range(plan.count):
        while True:  # a full buffer: wait until playback has drained it below buffer_s
            state = play(result.segments, plan.segment_s, plan.startup_s, expected=plan.count, now=time.time())
            if not state.playing or state.level < plan.buffer_s:
                break
            await asyncio.sleep(min(WAIT_STEP_S, state.level - plan.buffer_s + 0.001))
        requested = time.time()
        body = await fetch(index, segment_path(index, size))
        received = time.time()
        if body is None:
            break
        digest, expected = hashlib.sha256(body).hexdigest(), segment_sha256(index, size)
        ok = len(body) == size and digest == expected
        got.update(bytes.fromhex(digest))
        want.update(bytes.fromhex(expected))
        timing = SegmentTiming(index, requested, received, len(body), ok)
        result.segments.append(timing)
        result.bytes += len(body)
        level = play(result.segments, plan.segment_s, plan.startup_s, expected=plan.count, now=received).level
        emit(Segment, index=index, bytes=len(body), requested_ts=requested, received_ts=received,
             download_ms=timing.download_ms, sha256_ok=ok, segment_s=plan.segment_s, startup_s=plan.startup_s,
             count=plan.count, bitrate=plan.bitrate, buffer_s=round(level, 3),
             target_s=plan.buffer_s)
        if not ok:
            break
    for index in range(len(result.segments), plan.count):
        want.update(bytes.fromhex(segment_sha256(index, size)))
    result.sha256, result.expected_sha256 = got.hexdigest(), want.hexdigest()
    result.ok = len(result.segments) == plan.count and all(s.ok for s in result.segments)
    return result
