"""A goodput-over-time chart as a self-contained SVG, with the network events marked (pure).

SVG by hand rather than a plotting library: one chart type, no heavy dependency in the venv.
"""

from __future__ import annotations

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
