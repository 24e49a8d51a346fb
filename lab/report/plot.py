"""Charts as self-contained SVG (pure): goodput over time with the network events marked (goodput.svg),
and the time series of the HTML report (goodput, RTT, cwnd) with the disruption window shaded.

SVG by hand rather than a plotting library: line charts on one time axis are all the lab draws, the
output must be inline text that opens with no network, and the venv stays free of a heavy dependency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from lab.report.metrics import NetworkMarker

COLOURS = {"quic": "#1f77b4", "tcp": "#d62728"}


def goodput_svg(series: dict[str, list[tuple[float, float]]], markers: list[NetworkMarker], title: str,
                width: int = 900, height: int = 360) -> str:
    left, right, top, bottom = 60, 20, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    points = [p for values in series.values() for p in values]
    t_max = max([p[0] for p in points] + [m.t for m in markers] + [1.0])
    y_max = max([p[1] for p in points] + [1.0]) * 1.1

    def x(t: float) -> float:
        return left + plot_w * max(t, 0.0) / t_max

    def y(v: float) -> float:
        return top + plot_h * (1 - v / y_max)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>']
    for i in range(6):  # grid and axis labels
        v = y_max * i / 5
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>')
    for i in range(11):
        t = t_max * i / 10
        parts.append(f'<text x="{x(t):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{t:.1f}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">time since the client '
                 'started (s)</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2}" transform="rotate(-90 14 {top + plot_h / 2})" '
                 'text-anchor="middle">goodput (Mbit/s)</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    for marker in markers:
        if not marker.network_changing:
            continue
        parts.append(f'<line x1="{x(marker.t):.1f}" x2="{x(marker.t):.1f}" y1="{top}" y2="{top + plot_h}" '
                     'stroke="#9467bd" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x(marker.t) + 3:.1f}" y="{top + 12}" fill="#9467bd" '
                     f'transform="rotate(90 {x(marker.t) + 3:.1f} {top + 12})">'
                     f'{escape(marker.action)} {escape(marker.target)}</text>')
    for index, (name, values) in enumerate(series.items()):
        colour = COLOURS.get(name, "#2ca02c")
        if values:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in values)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        parts.append(f'<text x="{left + plot_w - 60}" y="{top + 16 + 14 * index}" fill="{colour}">{escape(name)}'
                     '</text>')
    parts.append("</svg>")
    return "\n".join(parts)


# --- time series for the HTML report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One line of a chart: ``points`` are ``(s, value)``; ``step``: the value holds until the next point."""

    name: str
    points: tuple[tuple[float, float], ...]
    colour: str = "#1f77b4"
    dashed: bool = False
    step: bool = False


@dataclass(frozen=True)
class Window:
    """A shaded stretch of the time axis, e.g. a transport's disruption (the largest data gap)."""

    start: float
    end: float
    label: str
    colour: str = "#d62728"


def thin(points: Sequence[tuple[float, float]], columns: int, t_max: float) -> list[tuple[float, float]]:
    """At most four points per pixel column (first, min, max, last): the drawn line is the same, the SVG smaller."""
    if len(points) <= 4 * columns or t_max <= 0:
        return list(points)
    buckets: dict[int, list[tuple[float, float]]] = {}
    for point in points:
        buckets.setdefault(int(columns * max(point[0], 0.0) / t_max), []).append(point)
    out: list[tuple[float, float]] = []
    for column in sorted(buckets):
        group = buckets[column]
        chosen = {0, len(group) - 1, min(range(len(group)), key=lambda i: group[i][1]),
                  max(range(len(group)), key=lambda i: group[i][1])}
        out.extend(group[i] for i in sorted(chosen))
    return out


def _ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 up to about ``top``."""
    if top <= 0:
        return [0.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(int(top / step) + 1)]


def _fmt_tick(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:g}"


def timeseries_svg(title: str, y_label: str, series: Sequence[Series], markers: Sequence[NetworkMarker],
                   windows: Sequence[Window], t_max: float, width: int = 1100, height: int = 260,
                   standalone: bool = False) -> str:
    """A line chart over the run's time axis (s from t0) with network actions marked and windows shaded.

    ``standalone`` adds the SVG namespace (for a file of its own); inline in HTML it is not needed.
    """
    left, right, top, bottom = 70, 240, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    t_max = max(t_max, 1e-3)
    values = [v for s in series for _, v in s.points]
    y_top = max(values + [0.0]) * 1.1 or 1.0

    def x(t: float) -> float:
        return left + plot_w * min(max(t, 0.0), t_max) / t_max

    def y(v: float) -> float:
        return top + plot_h * (1 - v / y_top)

    namespace = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    parts = [f'<svg{namespace} class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11" role="img" aria-label="{escape(title)}">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>']
    for window in windows:
        x0, x1 = x(window.start), x(window.end)
        parts.append(f'<rect class="window" x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 1.5):.1f}" height="{plot_h}" '
                     f'fill="{window.colour}" fill-opacity="0.12"><title>{escape(window.label)}</title></rect>')
    for tick in _ticks(y_top / 1.1):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{_fmt_tick(tick)}</text>')
    for tick in _ticks(t_max, 10):
        parts.append(f'<text x="{x(tick):.1f}" y="{top + plot_h + 15}" text-anchor="middle">{_fmt_tick(tick)}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">s since the client started'
                 '</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2}" transform="rotate(-90 14 {top + plot_h / 2})" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    for index, marker in enumerate(markers):
        label_y = top + 11 + 11 * (index % 3)  # actions close together: labels on three rows
        parts.append(f'<line class="marker" x1="{x(marker.t):.1f}" x2="{x(marker.t):.1f}" y1="{top}" '
                     f'y2="{top + plot_h}" stroke="#9467bd" stroke-dasharray="4 3"><title>{escape(marker.action)} '
                     f'{escape(marker.target)} at {marker.t:.3f} s</title></line>')
        parts.append(f'<text x="{x(marker.t) + 3:.1f}" y="{label_y}" fill="#9467bd" font-size="10">'
                     f'{escape(marker.action)} {escape(marker.target)}</text>')
    for index, item in enumerate(series):
        dash = ' stroke-dasharray="5 3"' if item.dashed else ""
        points = thin(item.points, plot_w, t_max)
        if item.step:
            stepped: list[tuple[float, float]] = []
            for i, point in enumerate(points):
                if i:
                    stepped.append((point[0], points[i - 1][1]))
                stepped.append(point)
            points = stepped
        if points:
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
            parts.append(f'<polyline class="series" data-series="{escape(item.name)}" points="{path}" fill="none" '
                         f'stroke="{item.colour}" stroke-width="1.5"{dash}/>')
        legend_y = top + 12 + 16 * index
        parts.append(f'<line x1="{left + plot_w + 10}" x2="{left + plot_w + 30}" y1="{legend_y - 4}" '
                     f'y2="{legend_y - 4}" stroke="{item.colour}" stroke-width="2"{dash}/>')
        parts.append(f'<text x="{left + plot_w + 34}" y="{legend_y}">{escape(item.name)}'
                     f'{"" if item.points else " (none)"}</text>')
    for index, window in enumerate(windows):
        legend_y = top + 12 + 16 * (len(series) + index)
        parts.append(f'<rect x="{left + plot_w + 10}" y="{legend_y - 9}" width="20" height="10" '
                     f'fill="{window.colour}" fill-opacity="0.25"/>')
        parts.append(f'<text x="{left + plot_w + 34}" y="{legend_y}">{escape(window.label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
