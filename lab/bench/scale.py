"""`bench scale`: N concurrent QUIC connections through one network change, judged per connection (pure).

The edge (:mod:`lab.bench.scale_run`) starts N lab clients in the client container, each writing
its events to a file of its own, applies one change to the lab while every connection is moving
data, and hands the events here. A connection counts only on its own evidence: one handshake, its
transfer complete with the sha256 it expected, and its longest gap in data arrivals that began
at or after the change (its ``data_gap`` events; the client meters gaps from 5 ms).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lab import events as ev
from lab.bench.figures import Distribution

COUNTS = (1, 10, 50, 100)
CHANGES = ("handoff", "rebinding")  # break-before-make home -> cellular; the home NAT forgets every mapping
PER_CONNECTION_RATE = 200_000  # B/s asked of the server per connection
TOTAL_RATE = 2_000_000  # B/s for all connections together: what 2 cores carry with the lab's Python endpoints
TRANSFER_S = 5.0  # each connection's download lasts this long at its rate


def rate_for(count: int) -> int:
    """Each connection's pacing: 200 kB/s, or an equal share of the total the machine can carry."""
    return min(PER_CONNECTION_RATE, TOTAL_RATE // max(1, count))


def size_for(count: int) -> int:
    return int(rate_for(count) * TRANSFER_S)


def gap_floor_ms(rate: int, datagram: int = 1200) -> float:
    """The time between two full datagrams at the pacing rate: no gap below it means anything."""
    return datagram / rate * 1000


@dataclass(frozen=True)
class Connection:
    """What one client's events show."""

    index: int
    handshakes: int
    complete: bool
    sha256_ok: bool
    disruption_ms: float | None  # the longest data gap starting at or after the change; None: no gap metered
    error: str = ""

    @property
    def survived(self) -> bool:
        return self.handshakes == 1 and self.complete and self.sha256_ok and not self.error


def connection(index: int, events: Iterable[ev.Event], change_ts: float) -> Connection:
    handshakes, complete, sha_ok, longest, error = 0, False, False, None, ""
    for e in events:
        if isinstance(e, ev.HandshakeCompleted) and e.role == "client":
            handshakes += 1
        elif isinstance(e, ev.TransferComplete) and e.role == "client":
            complete, sha_ok = True, bool(e.ok) and bool(e.sha256) and e.sha256 == e.expected_sha256
        elif isinstance(e, ev.DataGap) and e.end_ts >= change_ts:
            gap = e.gap_ms if e.start_ts >= change_ts else (e.end_ts - change_ts) * 1000
            longest = gap if longest is None else max(longest, gap)
        elif isinstance(e, ev.Error):
            error = error or e.message
    return Connection(index, handshakes, complete, sha_ok, None if longest is None else round(longest, 1), error)


@dataclass(frozen=True)
class Round:
    """One N through one change."""

    change: str
    count: int
    rate: int
    connections: tuple[Connection, ...]
    server_cpu_s: float | None  # the server container's CPU time over the round
    duration_s: float

    @property
    def survived(self) -> int:
        return sum(c.survived for c in self.connections)

    def disruption(self) -> Distribution:
        return Distribution.of(c.disruption_ms for c in self.connections)

    def summary(self) -> dict[str, Any]:
        d = self.disruption()
        cpu = None if self.server_cpu_s is None else round(self.server_cpu_s / max(1, self.count) * 1000, 1)
        return {"change": self.change, "connections": self.count, "rate_per_connection": self.rate,
                "gap_floor_ms": round(gap_floor_ms(self.rate), 1), "survived": self.survived,
                "disruption_ms": {"p50": d.median, "p95": d.p95, "max": d.maximum, "runs": d.runs},
                "server_cpu_ms_per_connection": cpu, "server_cpu_s": self.server_cpu_s,
                "duration_s": round(self.duration_s, 2),
                "failed": [asdict(c) for c in self.connections if not c.survived]}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table(rounds: Sequence[Round]) -> list[str]:
    """The figures, one line per round, with how they were measured."""
    lines = ["connections through one change (lab clients in one container, paced by the server); disruption = "
             "each connection's longest data gap from the change on (client gap meter, from 5 ms)"]
    for r in rounds:
        s = r.summary()
        d = s["disruption_ms"]
        cpu = s["server_cpu_ms_per_connection"]
        lines.append(f"  {r.change:<9} N={r.count:<3} at {r.rate / 1000:g} kB/s each: {r.survived}/{r.count} "
                     f"survived (one handshake, sha256), disruption p50 {_ms(d['p50'])} p95 {_ms(d['p95'])} "
                     f"max {_ms(d['max'])} ms over {d['runs']} gapped connection(s) (floor "
                     f"{s['gap_floor_ms']:g} ms between datagrams), server CPU "
                     f"{'-' if cpu is None else f'{cpu:g}'} ms per connection")
    return lines
