"""A DASH/HLS player's buffer model (pure): segments arrive, playback drains, stalls are counted.

``play(segments, segment_s, startup_s)`` replays recorded segment arrivals against the clock a
viewer watches: playback starts once ``startup_s`` of video is buffered (the start-up delay is
measured from the first request), drains one second of video per second, and stalls (a
rebuffering event) when the buffer runs dry while segments are still to come; it resumes once
``startup_s`` is buffered again (or the rest of the video is there). Segments count in index order
from 0: a segment is playable once it and every earlier one have arrived, so an arrival out of
order waits for the one before it. A segment whose bytes did not verify (sha256) never counts.

The live player (``lab.endpoints.shared.video``) asks the same model how full its buffer is when
it decides to request the next segment, and the report (``lab.report.player``) replays the
``segment`` events through it, so the client's decisions and the report's figures are one model.
Times are seconds on any one clock (the events' wall clock).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SegmentTiming:
    """One segment as the player saw it: requested and received times (seconds), bytes, sha256 ok."""

    index: int
    requested: float
    received: float
    bytes: int = 0
    ok: bool = True

    @property
    def download_ms(self) -> float:
        return round((self.received - self.requested) * 1000.0, 3)


@dataclass(frozen=True)
class Stall:
    """A rebuffering event: playback stopped at ``start`` and resumed at ``end`` (seconds)."""

    start: float
    end: float
    ongoing: bool = False  # playback had not resumed when the observation ended: a lower bound

    @property
    def ms(self) -> float:
        return round((self.end - self.start) * 1000.0, 3)


@dataclass(frozen=True)
class Playback:
    """What the viewer saw. Times in seconds from ``t0``, the first request."""

    t0: float
    segment_s: float
    startup_s: float
    segments: int  # segments that arrived and verified, counted in order from 0
    expected: int | None  # segments the video has (None: unknown)
    startup_ms: float | None  # first request to the first frame; None: playback never started
    stalls: tuple[Stall, ...] = ()
    buffer: tuple[tuple[float, float], ...] = ()  # (t, seconds of video buffered) at each change of slope
    download_ms: tuple[float, ...] = field(default=())  # per segment, in index order
    last_arrival: float | None = None  # seconds from t0: the last playable segment's arrival
    level: float = 0.0  # seconds buffered at ``now`` (or at the end of the observation)
    playing: bool = False  # at ``now``

    @property
    def rebuffer_events(self) -> int:
        return len(self.stalls)

    @property
    def rebuffer_ms(self) -> float:
        return round(sum(s.ms for s in self.stalls), 3)

    @property
    def max_rebuffer_ms(self) -> float:
        return max((s.ms for s in self.stalls), default=0.0)

    @property
    def complete(self) -> bool:
        return self.expected is not None and self.segments >= self.expected

    @property
    def min_buffer_s(self) -> float | None:
        """The lowest buffer level while playing and segments were still to come (after start-up,
        up to the last segment's arrival): the margin the viewer had left."""
        if self.startup_ms is None or self.last_arrival is None:
            return None
        start = self.startup_ms / 1000.0
        levels = [level for t, level in self.buffer if start <= t <= self.last_arrival]
        return min(levels) if levels else None


def play(segments: Iterable[SegmentTiming], segment_s: float, startup_s: float, *,
         expected: int | None = None, until: float | None = None, now: float | None = None) -> Playback:
    """Replay the arrivals; see the module docstring.

    ``expected``: how many segments the video has; when fewer arrived, playback that runs dry
    after the last one is a stall lasting to ``until`` (the end of the observation), ``ongoing``.
    ``now``: stop the replay there (the live player's question, "how full is my buffer now?").
    """
    if segment_s <= 0:
        raise ValueError("segment_s must be positive")
    ordered = sorted(segments, key=lambda s: s.index)
    if not ordered:
        return Playback(0.0, segment_s, startup_s, 0, expected, None)
    t0 = min(s.requested for s in ordered)
    usable: list[SegmentTiming] = []
    for position, segment in enumerate(ordered):  # a contiguous, verified run from index 0
        if segment.index != position or not segment.ok:
            break
        usable.append(segment)
    arrivals, latest = [], float("-inf")
    for segment in usable:
        latest = max(latest, segment.received)
        arrivals.append(latest - t0)
    stop = None if now is None else now - t0
    end = None if until is None else until - t0
    more_to_come = expected is None or len(usable) < expected

    clock, level, playing = 0.0, 0.0, False
    startup: float | None = None
    stall_start: float | None = None
    stalls: list[Stall] = []
    series: list[tuple[float, float]] = [(0.0, 0.0)]

    def drain_to(t: float, last: bool) -> None:
        """Play from ``clock`` to ``t``; the buffer running dry is a stall unless the video is over."""
        nonlocal clock, level, playing, stall_start
        if playing and t > clock:
            if level >= t - clock - 1e-9:
                level = max(0.0, level - (t - clock))
                series.append((round(t, 6), round(level, 6)))
            else:
                dry = clock + level
                level, playing = 0.0, False
                series.append((round(dry, 6), 0.0))
                if not last:
                    stall_start = dry
        clock = max(clock, t)

    for number, arrival in enumerate(arrivals, start=1):
        if stop is not None and arrival > stop:
            break
        drain_to(arrival, last=False)
        level += segment_s
        series.append((round(clock, 6), round(level, 6)))
        all_there = expected is not None and number >= expected
        if not playing and (level >= startup_s - 1e-9 or all_there):
            playing = True
            if startup is None:
                startup = clock
            elif stall_start is not None:
                stalls.append(Stall(stall_start + t0, clock + t0))
                stall_start = None
    if stop is not None:
        drain_to(stop, last=False)
        series.append((round(clock, 6), round(level, 6)))
    elif end is not None and more_to_come:  # the video was cut short: a dry buffer is a stall to the end
        drain_to(end, last=False)
        series.append((round(clock, 6), round(level, 6)))
    else:  # everything there is has arrived: it plays to its end
        drain_to(clock + level if playing else clock, last=True)
    if stop is None and stall_start is not None:
        stalls.append(Stall(stall_start + t0, clock + t0, ongoing=True))
    return Playback(t0=t0, segment_s=segment_s, startup_s=startup_s, segments=len(usable), expected=expected,
                    startup_ms=None if startup is None else round(startup * 1000.0, 3), stalls=tuple(stalls),
                    buffer=tuple(_dedupe(series)), download_ms=tuple(s.download_ms for s in ordered),
                    last_arrival=round(arrivals[-1], 6) if arrivals else None, level=round(level, 6),
                    playing=playing)


def _dedupe(series: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for point in series:
        if not out or out[-1] != point:
            out.append(point)
    return out
