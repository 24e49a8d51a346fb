"""What a caller heard: the call workload's freezes and one-way latencies, from its events (pure).

The client measured them live (:class:`lab.endpoints.shared.call.CallMeter`: a ``call_freeze`` per
gap from three intervals on, a ``call_stats`` at the end); here they are placed around the run's
network changes and judged against what a caller notices (150 ms one way, ITU-T G.114).
"""

from __future__ import annotations

from typing import Any

from lab.endpoints.shared.call import NOTICEABLE_MS
from lab.events import Action, CallFreeze, CallStats
from lab.observe.timeline import Timeline


def call_stats(timeline: Timeline) -> CallStats | None:
    stats = timeline.last(CallStats, "client")
    return stats if isinstance(stats, CallStats) else None


def longest_freeze(stats: CallStats) -> tuple[float, str]:
    """(ms, direction) of the longest time without an arrival, either way."""
    pairs = [(float(ms), direction) for direction, ms in stats.max_freeze_ms.items()]
    return max(pairs) if pairs else (0.0, "")


def freezes_by_change(timeline: Timeline, t0: float) -> list[dict[str, Any]]:
    """Each reported freeze with the network change it followed (the last one begun before it ended)."""
    actions = [a for a in timeline.actions(network_only=True) if isinstance(a, Action)]
    rows = []
    for freeze in timeline.of(CallFreeze, "client"):
        assert isinstance(freeze, CallFreeze)
        before = [a for a in actions if a.ts <= freeze.end_ts]
        cause = f"{before[-1].action} {before[-1].target}" if before else None
        rows.append({"direction": freeze.direction, "start_s": round(freeze.start_ts - t0, 3),
                     "end_s": round(freeze.end_ts - t0, 3), "ms": freeze.freeze_ms, "ongoing": freeze.ongoing,
                     "after": cause})
    return rows


def caller_figures(timeline: Timeline, t0: float) -> dict[str, Any] | None:
    stats = call_stats(timeline)
    if stats is None:
        return None
    ms, direction = longest_freeze(stats)
    return {"freeze_ms": ms, "freeze_direction": direction, "freezes": freezes_by_change(timeline, t0),
            "sent": stats.sent, "received": stats.received, "lost": stats.lost, "latency_ms": stats.latency_ms,
            "late": stats.late, "threshold_ms": stats.threshold_ms, "datagrams": stats.datagrams,
            "interval_ms": stats.interval_ms}


def caller_sentence(figures: dict[str, Any]) -> str:
    """One plain line: would a caller have noticed, with the numbers (figures as :func:`caller_figures`)."""
    threshold = figures.get("threshold_ms") or NOTICEABLE_MS
    ms = figures["freeze_ms"]
    p95 = {d: (figures["latency_ms"].get(d) or {}).get("p95") for d in ("up", "down")}
    latency = ", ".join(f"{d} {v:.0f} ms" for d, v in p95.items() if v is not None) or "none measured"
    lost = f"{figures['lost']} of {figures['sent']} messages lost"
    carried = "DATAGRAM frames" if figures.get("datagrams") else "a stream"
    tail = f"(p95 one-way latency {latency}; {lost}; over {carried})"
    if ms <= threshold:
        return f"no freeze a caller notices: the longest gap was {ms:.0f} ms (<= {threshold:g} ms) {tail}"
    worst = max(figures["freezes"], key=lambda f: f["ms"], default=None)
    where = f" after {worst['after']}" if worst and worst.get("after") else ""
    return (f"the caller heard a freeze: {ms:.0f} ms without audio {figures['freeze_direction']}stream{where} "
            f"(> {threshold:g} ms, ITU-T G.114) {tail}")
