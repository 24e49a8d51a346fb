"""What a viewer saw: the player's buffer replayed from a run's ``segment`` events (pure).

The buffer model is :func:`lab.endpoints.shared.player.play` (the live player asks the same model
when to fetch); this module feeds it the recorded segments of one transport's client and says in
one sentence whether the viewer saw a stall, from the measured buffer, never assumed.
"""

from __future__ import annotations

from typing import Any

from lab.endpoints.shared.player import Playback, SegmentTiming, Stall, play
from lab.events import Segment
from lab.observe.timeline import Timeline

__all__ = ["Playback", "SegmentTiming", "Stall", "play", "playback", "segments_of", "viewer_figures",
           "viewer_sentence"]


def segments_of(timeline: Timeline) -> list[Segment]:
    return [e for e in timeline.of(Segment, "client") if isinstance(e, Segment)]


def playback(timeline: Timeline) -> Playback | None:
    """The client's playback from its segment events; None when it fetched no segment.

    A video cut short (fewer segments than it has) is observed up to the end of the timeline (the
    runner's run_end): a buffer that ran dry before then is a stall still going on.
    """
    events = segments_of(timeline)
    if not events:
        return None
    first = events[0]
    timings = [SegmentTiming(e.index, e.requested_ts, e.received_ts, e.bytes, e.sha256_ok) for e in events]
    return play(timings, first.segment_s, first.startup_s, expected=first.count or None, until=timeline.end)


def viewer_figures(pb: Playback, t0: float, target_s: float | None = None) -> dict[str, Any]:
    """The playback's figures for report.json (times in seconds from ``t0``, the run's zero)."""
    shift = pb.t0 - t0
    return {
        "buffer_target_s": target_s, "segment_s": pb.segment_s, "startup_s": pb.startup_s,
        "startup_ms": pb.startup_ms, "rebuffer_events": pb.rebuffer_events, "rebuffer_ms": pb.rebuffer_ms,
        "max_rebuffer_ms": pb.max_rebuffer_ms, "rebuffer_ongoing": any(s.ongoing for s in pb.stalls),
        "segments": pb.segments, "segments_expected": pb.expected,
        "segment_ms": list(pb.download_ms), "min_buffer_s": pb.min_buffer_s,
        "stalls": [{"start_s": round(s.start - t0, 3), "end_s": round(s.end - t0, 3), "ms": s.ms, "ongoing": s.ongoing}
                   for s in pb.stalls],
        "buffer_series": [[round(t + shift, 3), round(level, 3)] for t, level in pb.buffer],
    }


def viewer_sentence(figures: dict[str, Any]) -> str:
    """One plain line: did the viewer see a stall, with the numbers (figures as :func:`viewer_figures`)."""
    buffer_s = figures.get("buffer_target_s")
    with_buffer = f" with a {buffer_s:g} s buffer" if buffer_s else ""
    segments = f"{figures['segments']} of {figures['segments_expected'] or '?'} segments verified"
    startup = figures.get("startup_ms")
    start = f"start-up {startup / 1000:.2f} s" if startup is not None else "playback never started"
    if not figures["rebuffer_events"]:
        margin = figures.get("min_buffer_s")
        low = f"; the buffer never fell below {margin:.2f} s" if margin is not None else ""
        return f"no stall{with_buffer}: 0 rebuffering events{low} ({start}; {segments})"
    ongoing = " (still stalled when the run ended: a lower bound)" if figures.get("rebuffer_ongoing") else ""
    return (f"the viewer saw a stall{with_buffer}: {figures['rebuffer_events']} rebuffering event(s), "
            f"{figures['rebuffer_ms'] / 1000:.2f} s in total, the longest {figures['max_rebuffer_ms'] / 1000:.2f} s"
            f"{ongoing} ({start}; {segments})")
