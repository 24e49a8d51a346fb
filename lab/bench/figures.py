"""Benchmark figures (pure): distributions with their run counts, and ratios to stated limits.

A figure without its run count and method is not a figure, so every value here carries both.
The limits are the physical floors of docs/references.md ("Physical limits of migration"):
what a perfect stack on the lab's network could reach, given the path's RTT ``r``, the client's
detection delay and the lab's own noise floor.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

NOISE_LIMIT_MS = 5.0  # the noise floor the lab must stay under (issue: "a measurement floor")


@dataclass(frozen=True)
class Distribution:
    """Values of one figure over repeated runs."""

    runs: int
    median: float | None
    p95: float | None
    minimum: float | None
    maximum: float | None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Distribution:
        found = sorted(v for v in values if v is not None)
        if not found:
            return cls(0, None, None, None, None)
        p95 = found[min(len(found) - 1, math.ceil(0.95 * len(found)) - 1)]
        return cls(len(found), statistics.median(found), p95, found[0], found[-1])

    def text(self, unit: str = "ms", digits: int = 0) -> str:
        if not self.runs:
            return "not observed"
        return (f"median {self.median:.{digits}f} [{self.minimum:.{digits}f}-{self.maximum:.{digits}f}] {unit}, "
                f"{self.runs} run(s)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Limit:
    """What a scenario's figure can reach at best, as a function of the path and the client."""

    figure: str  # the metric compared: disruption_ms or recovery_ms
    rule: str  # the limit in words, as in docs/references.md
    value: Callable[[float, float, float], float]  # (r_ms, detection_ms, noise_ms) -> limit in ms


LIMITS: dict[str, Limit] = {
    "make-before-break": Limit("disruption_ms", "<= 1 r + 5 ms", lambda r, d, n: r + 5.0),
    "preferred-address": Limit("disruption_ms", "no gap beyond the noise floor", lambda r, d, n: n),
    "break-before-make": Limit("recovery_ms", "recovery <= 1.5 r + the client's detection delay",
                               lambda r, d, n: 1.5 * r + d),
    "rebinding": Limit("disruption_ms", "<= detection delay + 1.5 r", lambda r, d, n: d + 1.5 * r),
}


def limit_for(tags: Iterable[str], migration: str) -> tuple[str, Limit] | None:
    """Which limit applies to a scenario, from its tags and migration mode."""
    tags = set(tags)
    if migration == "preferred":
        return "preferred-address", LIMITS["preferred-address"]
    if "make-before-break" in tags:
        return "make-before-break", LIMITS["make-before-break"]
    if "rebinding" in tags:
        return "rebinding", LIMITS["rebinding"]
    if "break-before-make" in tags:
        return "break-before-make", LIMITS["break-before-make"]
    return None


def ratio(measured: float | None, limit: float | None) -> float | None:
    """measured / limit (1.0 = at the limit; < 1 would beat physics and means a wrong measurement)."""
    if measured is None or limit is None or limit <= 0:
        return None
    return measured / limit


def histogram_svg(noise: dict[str, Any], width: int = 720, height: int = 260) -> str:
    """The noise floor's gap histogram as a bar chart (log count), the limit marked. Self-contained SVG."""
    counts = {int(k): v for k, v in noise.get("gap_histogram_ms", {}).items()}
    left, right, top, bottom = 50, 20, 30, 40
    w, h = width - left - right, height - top - bottom
    top_ms = max([int(NOISE_LIMIT_MS) * 2, *counts]) + 1
    peak = math.log10(max(counts.values(), default=1) + 1) or 1.0
    bar = w / top_ms
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11"><rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="18" font-size="13">gaps between data arrivals at the client, '
             f'{noise.get("runs", 0)} baseline runs (count, log scale)</text>']
    for ms, count in sorted(counts.items()):
        bh = h * math.log10(count + 1) / peak
        colour = "#1f77b4" if ms < NOISE_LIMIT_MS else "#d62728"
        parts.append(f'<rect x="{left + ms * bar:.1f}" y="{top + h - bh:.1f}" width="{max(bar - 1, 1):.1f}" '
                     f'height="{bh:.1f}" fill="{colour}"><title>{ms} ms: {count}</title></rect>')
    x = left + NOISE_LIMIT_MS * bar
    parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + h}" stroke="#555" stroke-dasharray="4 3"/>'
                 f'<text x="{x + 3:.1f}" y="{top + 12}">limit {NOISE_LIMIT_MS:g} ms</text>')
    parts.append(f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="black"/>')
    for tick in range(0, top_ms + 1, max(1, top_ms // 10)):
        parts.append(f'<text x="{left + tick * bar:.1f}" y="{top + h + 14}" text-anchor="middle">{tick}</text>')
    parts.append(f'<text x="{left + w / 2}" y="{height - 6}" text-anchor="middle">gap (ms, 1 ms buckets)</text></svg>')
    return "\n".join(parts)


GOODPUT_LIMIT = 0.8  # unpaced goodput through the NAT path, as a share of the same endpoints on loopback


def goodput_mbit(bytes_received: int | None, duration_ms: float | None) -> float | None:
    """Application goodput of one download in Mbit/s (None when it did not complete)."""
    if not bytes_received or not duration_ms:
        return None
    return bytes_received * 8 / (duration_ms / 1000) / 1e6


def goodput_figures(nat: Iterable[float | None], loopback: Iterable[float | None]) -> dict[str, Any]:
    """The NAT path against loopback: both distributions and the ratio of their medians to the limit."""
    through, local = Distribution.of(nat), Distribution.of(loopback)
    share = ratio(through.median, local.median)
    return {"nat_mbit": through.to_dict(), "loopback_mbit": local.to_dict(), "ratio_of_medians": share,
            "limit": GOODPUT_LIMIT, "within_limit": share is not None and share >= GOODPUT_LIMIT}
