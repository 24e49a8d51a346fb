"""The report's charts over time (pure): goodput, RTT and congestion window, with the network
actions marked and each transport's disruption window shaded, and the goodput series as CSV.

Sources, each named in the chart's legend and in goodput.csv:

- QUIC goodput: the client's qlog (STREAM bytes received, :func:`lab.report.qlog.stream_goodput`);
  without a client qlog, the client's ``progress`` events, as goodput.svg draws them;
- TCP goodput: the TCP client's ``progress`` events (TCP has no qlog);
- RTT and cwnd: ``recovery:metrics_updated`` of both sides' qlog (the server is the sender of a
  download, so its cwnd is the one that moves);
- the disruption window: the largest gap in the client's data after the first network action, as
  the ``disruption_ms`` metric measures it (:meth:`Timeline.largest_gap`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lab.observe.timeline import Timeline
from lab.report.metrics import goodput_series, network_events
from lab.report.plot import Series, Window, timeseries_svg
from lab.report.qlog import QlogTrace, metric_series, stream_goodput

__all__ = ["BIN_MS", "Charts", "GoodputRow", "build_charts", "goodput_csv", "time_zero"]

BIN_MS = 100
TRANSPORT_COLOURS = {"quic": "#1f77b4", "tcp": "#d62728"}
SIDE_COLOURS = {"server": "#ff7f0e", "client": "#1f77b4"}


@dataclass(frozen=True)
class GoodputRow:
    t_s: float
    transport: str
    source: str  # "client qlog" | "client progress events"
    mbps: float


@dataclass(frozen=True)
class Charts:
    svgs: tuple[str, ...]
    goodput: tuple[GoodputRow, ...]
    notes: tuple[str, ...]  # what a chart could not show, and why


def time_zero(timeline: Timeline) -> float:
    """The zero of the report's time axes: 0.2 s before the client's first event (as goodput.svg)."""
    client = [e.ts for e in timeline if e.role == "client"]
    return min(client) - 0.2 if client else (timeline.start or 0.0)


def _windows(timeline: Timeline, transports: Sequence[str], t0: float) -> list[Window]:
    windows = []
    for transport in transports:
        view = timeline.for_transport(transport)
        action = view.first_network_action()
        gap = view.largest_gap(action.ts) if action is not None else None
        if gap is None or gap.gap_ms <= 0:
            continue
        ongoing = ", ongoing at the end" if gap.ongoing else ""
        windows.append(Window(gap.start_ts - t0, gap.end_ts - t0,
                              f"{transport} disruption {gap.gap_ms:.0f} ms ({gap.source}{ongoing})",
                              TRANSPORT_COLOURS.get(transport, "#2ca02c")))
    return windows


def build_charts(timeline: Timeline, transports: Sequence[str], qlogs: Sequence[QlogTrace], t0: float,
                 width: int = 1100) -> Charts:
    markers = [m for m in network_events(timeline, t0) if m.network_changing and m.t >= 0]
    windows = _windows(timeline, transports, t0)
    notes: list[str] = []
    rows: list[GoodputRow] = []
    goodput: list[Series] = []
    client_qlogs = [q for q in qlogs if q.vantage == "client"]
    for transport in transports:
        colour = TRANSPORT_COLOURS.get(transport, "#2ca02c")
        points: list[tuple[float, float]] = []
        source = "client progress events"
        if transport == "quic" and client_qlogs:
            source = "client qlog"
            for trace in client_qlogs:
                points += stream_goodput(trace.events, t0, BIN_MS)
            if len(client_qlogs) > 1:
                notes.append(f"{len(client_qlogs)} client qlog files: their goodput bins are drawn together")
        else:
            if transport == "quic":
                notes.append("no client qlog: QUIC goodput from the client's progress events")
            points = goodput_series(timeline, BIN_MS, t0, transport)
        rows += [GoodputRow(t, transport, source, v) for t, v in points]
        goodput.append(Series(f"{transport} ({source})", tuple(points), colour, step=True))
    rtt: list[Series] = []
    cwnd: list[Series] = []
    for trace in qlogs:
        colour = SIDE_COLOURS.get(trace.vantage, "#2ca02c")
        label = trace.vantage or trace.source
        rtt.append(Series(f"{label} smoothed_rtt", tuple(metric_series(trace.events, "smoothed_rtt", t0)), colour))
        latest = tuple(metric_series(trace.events, "latest_rtt", t0))
        if latest:
            rtt.append(Series(f"{label} latest_rtt", latest, colour, dashed=True))
        cwnd.append(Series(f"{label} cwnd", tuple(metric_series(trace.events, "cwnd", t0, 1 / 1000)), colour,
                           step=True))
        flight = tuple(metric_series(trace.events, "bytes_in_flight", t0, 1 / 1000))
        if flight:
            cwnd.append(Series(f"{label} bytes_in_flight", flight, colour, dashed=True, step=True))
    if not qlogs:
        notes.append("no qlog: RTT and cwnd are not plotted")
    everything = [p for s in goodput + rtt + cwnd for p in s.points]
    t_max = max([t for t, _ in everything] + [m.t for m in markers] + [w.end for w in windows] + [1.0])
    svgs = [timeseries_svg("Goodput", "Mbit/s", goodput, markers, windows, t_max, width)]
    if rtt:
        svgs.append(timeseries_svg("RTT (qlog recovery:metrics_updated)", "ms", rtt, markers, windows, t_max, width))
    if cwnd:
        svgs.append(timeseries_svg("Congestion window (qlog recovery:metrics_updated)", "kB", cwnd, markers, windows,
                                   t_max, width))
    return Charts(tuple(svgs), tuple(rows), tuple(notes))


def goodput_csv(rows: Sequence[GoodputRow]) -> str:
    """``t_s,transport,source,goodput_mbps``: one row per bin of BIN_MS (t_s: the bin's start, s from t0)."""
    lines = ["t_s,transport,source,goodput_mbps"]
    lines += [f"{r.t_s:.3f},{r.transport},{r.source},{r.mbps:.6f}" for r in rows]
    return "\n".join(lines) + "\n"
