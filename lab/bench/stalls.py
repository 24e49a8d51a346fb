"""Which event loop held the data (pure): the client's data gaps matched to the loops' long callbacks.

With ``LAB_LOOP_STALLS=<ms>`` in the endpoints' environment (tools/loop-stalls.compose.yaml), the
client and the server write every callback that held their loop at least that long beside their
qlog (``<odcid>_<role>.loop-stalls.json``, lab.endpoints.shared.gaps.LoopStallMeter). A data gap
at the client is put down to the stall that overlaps it most (the server's taken up to
``LEAD_S`` earlier, what its packets take to arrive); a stall whose thread had CPU for most of
it was the loop's own work, otherwise its schedstat tells where the time went (``how``). A gap
that no stall overlaps by ``MIN_OVERLAP_S`` is left unexplained by the loops.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lab.endpoints.shared.gaps import SOCKET_WAIT

LEAD_S = 0.002
MIN_OVERLAP_S = 0.001
OWN_WORK = 0.7  # CPU / length at or above which a stall was the loop's own work


@dataclass(frozen=True)
class Gap:
    start: float  # monotonic seconds
    end: float
    ms: float


def kind(callback: str) -> str:
    """A stall's callback in words: what the loop was running."""
    if callback.startswith("gc "):
        return "garbage collection"
    if "_read_ready" in callback:
        return "datagram read"
    if callback.startswith("woke late"):
        return callback
    if callback.startswith("<Task step "):
        return "task step " + callback[len("<Task step "):].rstrip(">")
    if "Task" in callback:
        return "task step"
    return callback.split("(")[0].strip("<> ")[:60] or "callback"


def cause(gap: Gap, stalls: dict[str, list[dict[str, Any]]]) -> str:
    """The cause of one gap: '<role> loop, own work|waited: <what>', or 'no loop stall'."""
    best: tuple[float, str, dict[str, Any]] | None = None
    for role, found in stalls.items():
        lead = LEAD_S if role == "server" else 0.0
        for stall in found:
            if stall["what"] == SOCKET_WAIT:  # a late read: arrivals are timed by the kernel, it makes no gap
                continue
            start, end = stall["start"], stall["start"] + stall["ms"] / 1000
            overlap = min(end, gap.end) - max(start, gap.start - lead)
            if overlap >= MIN_OVERLAP_S and (best is None or overlap > best[0]):
                best = (overlap, role, stall)
    if best is None:
        return "no loop stall"
    _, role, stall = best
    return f"{role} loop, {how(stall)}: {kind(stall['what'])}"


def how(stall: dict[str, Any]) -> str:
    """Where a stall's time went: the loop's own work, a run queue, the hypervisor, or a blocking call.

    The thread's CPU clock, its time on a run queue and its count of times put on a CPU
    (schedstat) account for every millisecond but two kinds: asleep in a call, and stolen -- the
    thread was on its CPU while the hypervisor ran another guest, which a guest's CPU clock leaves
    out. With no switch at all it cannot have slept, so the rest was stolen.
    """
    ms, cpu = stall["ms"], stall["cpu_ms"]
    if cpu >= OWN_WORK * ms:
        return "own work"
    queued, switches = stall.get("queued_ms"), stall.get("switches")
    if queued is None or switches is None:  # recorded without schedstat
        return "waited (a core or the GIL)"
    if queued >= (ms - cpu) / 2:
        return "waited for a core"
    if switches == 0:
        return "stolen by the hypervisor"
    return "slept in a call, or stolen"


def attribute(gaps: Iterable[Gap], stalls: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per cause: how many gaps and their total length (ms), the most frequent first."""
    counts: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for gap in gaps:
        found = cause(gap, stalls)
        counts[found] += 1
        total[found] += gap.ms
    return {name: {"gaps": n, "total_ms": round(total[name], 1)} for name, n in counts.most_common()}


def gaps_of(events: Iterable[dict[str, Any]]) -> list[Gap]:
    """The client's data_gap events as monotonic intervals (their wall times moved by the event's own offset)."""
    found = []
    for event in events:
        if event.get("type") == "data_gap" and event.get("role") == "client":
            offset = event["ts"] - event["mono"]
            found.append(Gap(event["start_ts"] - offset, event["end_ts"] - offset, event["gap_ms"]))
    return found
