"""Time series read from qlog (pure): goodput, RTT and congestion window over time.

Input: a qlog file as parsed JSON (qlog 0.3, as aioquic 1.7.2 writes it). aioquic stamps every
event with ``time.time() * 1000`` (epoch milliseconds, ``aioquic/quic/logger.py``), the clock the
lab's events use, so a qlog series and the run's events share one time axis: relative times here
are seconds from the same ``t0`` as the goodput plot of the events.

- goodput: the STREAM bytes a side received (``transport:packet_received`` frames), each byte
  counted once however often it was retransmitted, binned like :func:`lab.report.metrics.goodput_series`;
- RTT and cwnd: ``recovery:metrics_updated``, which logs only the fields that changed, so a
  field's series has one point per event that carries it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["QlogTrace", "bin_bytes", "metric_series", "qlog_traces", "received_stream_bytes", "stream_goodput"]

METRICS = "recovery:metrics_updated"
RECEIVED = "transport:packet_received"


@dataclass(frozen=True)
class QlogTrace:
    """One trace of a qlog file: whose view it is and its events (dicts, as written)."""

    source: str  # the file, relative to the run directory (client/qlog/x.qlog)
    vantage: str  # client | server (qlog's vantage_point.type)
    events: tuple[Mapping[str, Any], ...]


def qlog_traces(document: Mapping[str, Any], source: str) -> list[QlogTrace]:
    """The traces of one parsed qlog file; a malformed trace is left out (the judge reports the file)."""
    traces = []
    for trace in document.get("traces", []) if isinstance(document, Mapping) else []:
        if not isinstance(trace, Mapping):
            continue
        vantage = str((trace.get("vantage_point") or {}).get("type", "")) or source.split("/")[0]
        events = tuple(e for e in trace.get("events", []) if isinstance(e, Mapping))
        traces.append(QlogTrace(source, vantage, events))
    return traces


def _seconds(event: Mapping[str, Any]) -> float | None:
    try:
        return float(event["time"]) / 1000.0
    except (KeyError, TypeError, ValueError):
        return None


def metric_series(events: Iterable[Mapping[str, Any]], key: str, t0: float, scale: float = 1.0
                  ) -> list[tuple[float, float]]:
    """``[(s from t0, value * scale), ...]`` for one field of ``recovery:metrics_updated``."""
    points = []
    for event in events:
        if event.get("name") != METRICS:
            continue
        value = (event.get("data") or {}).get(key)
        ts = _seconds(event)
        if ts is None or not isinstance(value, int | float):
            continue
        points.append((ts - t0, float(value) * scale))
    return points


def _add_interval(intervals: list[list[int]], start: int, end: int) -> int:
    """Merge [start, end) into sorted disjoint ``intervals``; returns how many bytes were new."""
    if end <= start:
        return 0
    new = end - start
    merged = [start, end]
    keep: list[list[int]] = []
    for low, high in intervals:
        if high < merged[0] or low > merged[1]:
            keep.append([low, high])
            continue
        new -= max(0, min(high, end) - max(low, start))
        merged = [min(merged[0], low), max(merged[1], high)]
    keep.append(merged)
    keep.sort()
    intervals[:] = keep
    return max(new, 0)


def received_stream_bytes(events: Iterable[Mapping[str, Any]]) -> list[tuple[float, int]]:
    """``[(epoch s, new STREAM bytes), ...]`` per received packet that brought stream data not seen before.

    Overlapping ranges (retransmissions) are counted once, per stream, by offset.
    """
    seen: dict[Any, list[list[int]]] = {}
    samples: list[tuple[float, int]] = []
    for event in events:
        if event.get("name") != RECEIVED:
            continue
        ts = _seconds(event)
        if ts is None:
            continue
        new = 0
        for frame in (event.get("data") or {}).get("frames", []) or []:
            if not isinstance(frame, Mapping) or frame.get("frame_type") != "stream":
                continue
            try:
                offset, length = int(frame.get("offset", 0)), int(frame.get("length", 0))
            except (TypeError, ValueError):
                continue
            new += _add_interval(seen.setdefault(frame.get("stream_id"), []), offset, offset + length)
        if new:
            samples.append((ts, new))
    return samples


def bin_bytes(samples: Iterable[tuple[float, int]], t0: float, bin_ms: int = 100) -> list[tuple[float, float]]:
    """Bytes at epoch times -> ``[(bin start, s from t0), Mbit/s)]``, empty bins between the first and last as 0."""
    if bin_ms <= 0:
        raise ValueError("bin_ms must be positive")
    width = bin_ms / 1000.0
    bins: dict[int, int] = {}
    for ts, count in samples:
        index = math.floor(round((ts - t0) / width, 4))  # as goodput_series: a bin edge stays in its bin
        bins[index] = bins.get(index, 0) + count
    if not bins:
        return []
    first, last = min(bins), max(bins)
    return [(round(i * width, 6), bins.get(i, 0) * 8 / width / 1e6) for i in range(first, last + 1)]


def stream_goodput(events: Iterable[Mapping[str, Any]], t0: float, bin_ms: int = 100) -> list[tuple[float, float]]:
    """Goodput a side received, from its qlog: new STREAM bytes per bin, in Mbit/s."""
    return bin_bytes(received_stream_bytes(events), t0, bin_ms)
