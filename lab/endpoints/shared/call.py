"""The call workload: small messages at a fixed rate both ways, as a voice call or a game feels them.

The client sends one ``CALL_FRAME`` every ``interval`` (20 ms: 50 messages a second); the server
stamps the moment it received it and sends it straight back, so every message measures both
directions: up = server received - client sent, down = client received - server sent. The lab's
containers share one kernel clock (wall clock, nanoseconds), so the one-way figures are real;
on two machines they would include the clocks' offset.

A caller notices a *freeze*: a time in which nothing new arrived in a direction. :class:`CallMeter`
(pure) measures every gap between successive arrivals in each direction (upstream from the
server's stamps of the messages that came back), reports each one from ``report_s`` on (a
``call_freeze`` event) and, at the end, the latency percentiles and the longest freeze per
direction (``call_stats``). The threshold a caller notices is 150 ms one way (ITU-T G.114).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

CALL_FRAME = struct.Struct("!QqQ")  # sequence number, client send time (wall ns), server receive time (wall ns)
NOTICEABLE_MS = 150.0  # ITU-T G.114: one-way delay a caller starts to notice
DIRECTIONS = ("up", "down")


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (q in 0-100) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Freeze:
    direction: str  # up | down
    start_ts: float
    end_ts: float
    ongoing: bool = False  # nothing arrived again before the call ended

    @property
    def ms(self) -> float:
        return round((self.end_ts - self.start_ts) * 1000.0, 3)


@dataclass
class CallMeter:
    """Arrivals in, freezes and latency figures out. Times are wall-clock seconds."""

    interval_s: float = 0.02
    report_s: float | None = None  # a gap from this long on is a reported freeze; default 3 intervals
    start_ts: float | None = None  # when the call started (a freeze can begin before the first arrival)
    sent: int = 0
    received: int = 0
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: {d: [] for d in DIRECTIONS})
    last: dict[str, float | None] = field(default_factory=lambda: {d: None for d in DIRECTIONS})
    longest: dict[str, float] = field(default_factory=lambda: {d: 0.0 for d in DIRECTIONS})
    freezes: list[Freeze] = field(default_factory=list)

    @property
    def threshold_s(self) -> float:
        return self.report_s if self.report_s is not None else 3 * self.interval_s

    def _arrival(self, direction: str, ts: float) -> Freeze | None:
        previous = self.last[direction]
        if previous is None:
            previous = self.start_ts
        if previous is not None and ts <= previous:
            return None  # out of order (or the same instant): no new arrival
        self.last[direction] = ts
        if previous is None:
            return None
        self.longest[direction] = max(self.longest[direction], ts - previous)
        if ts - previous >= self.threshold_s:
            freeze = Freeze(direction, previous, ts)
            self.freezes.append(freeze)
            return freeze
        return None

    def reply(self, sent_ts: float, server_ts: float, received_ts: float) -> list[Freeze]:
        """One message came back; the freezes it ended (up, down)."""
        self.received += 1
        self.latency_ms["up"].append(round((server_ts - sent_ts) * 1000.0, 3))
        self.latency_ms["down"].append(round((received_ts - server_ts) * 1000.0, 3))
        found = [self._arrival("up", server_ts), self._arrival("down", received_ts)]
        return [f for f in found if f is not None]

    def finish(self, end_ts: float) -> list[Freeze]:
        """The call ended at ``end_ts`` (its last send plus one interval): a silence up to then is a freeze."""
        found = []
        for direction in DIRECTIONS:
            previous = self.last[direction] if self.last[direction] is not None else self.start_ts
            if previous is not None and end_ts - previous >= self.threshold_s:
                self.longest[direction] = max(self.longest[direction], end_ts - previous)
                freeze = Freeze(direction, previous, end_ts, ongoing=True)
                self.freezes.append(freeze)
                found.append(freeze)
        return found

    def stats(self) -> dict[str, object]:
        """The fields of a ``call_stats`` event."""
        latency = {d: {name: percentile(self.latency_ms[d], q) for name, q in (("p50", 50), ("p95", 95), ("p99", 99))}
                   | {"max": max(self.latency_ms[d], default=None)} for d in DIRECTIONS}
        return {"sent": self.sent, "received": self.received, "lost": max(0, self.sent - self.received),
                "interval_ms": round(self.interval_s * 1000.0, 3), "latency_ms": latency,
                "late": {d: sum(1 for v in self.latency_ms[d] if v > NOTICEABLE_MS) for d in DIRECTIONS},
                "max_freeze_ms": {d: round(self.longest[d] * 1000.0, 3) for d in DIRECTIONS},
                "threshold_ms": NOTICEABLE_MS}
