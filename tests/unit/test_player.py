"""The player's buffer model and the call meter, pure, on recorded timings and on their mutations.

``tests/data/player/*.jsonl`` are the segment events of real loopback runs of the lab's client
(``python -m lab.endpoints.client --workload video --segments 6``, QUIC/HTTP/3 and TCP/HTTP/1.1,
2 s segments, 2.5 Mbit/s, 2 s start-up, 4 s buffer). As recorded, no viewer saw a stall; each
mutation (a late segment, a corrupted one, a video cut short) must show what the viewer would see.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from lab.endpoints.shared.call import CallMeter, percentile
from lab.events import Action, CallStats, HandshakeCompleted, Segment
from lab.observe.timeline import Timeline, read_jsonl
from lab.report.call import caller_figures, caller_sentence
from lab.report.player import SegmentTiming, play, playback, viewer_figures, viewer_sentence
from lab.verify.checks import run_check

DATA = Path(__file__).resolve().parents[1] / "data" / "player"
RECORDED = sorted(DATA.glob("*.jsonl"))


def timings(path: Path) -> tuple[list[SegmentTiming], Segment]:
    events = [e for e in read_jsonl(path) if isinstance(e, Segment)]
    return [SegmentTiming(e.index, e.requested_ts, e.received_ts, e.bytes, e.sha256_ok) for e in events], events[0]


def delayed(segments: list[SegmentTiming], index: int, seconds: float) -> list[SegmentTiming]:
    """Segment ``index`` arrives ``seconds`` late; as a player behind on its buffer does, each later
    segment is then asked for as soon as the one before arrived, and takes as long as it did."""
    out: list[SegmentTiming] = []
    for s in segments:
        if s.index < index:
            out.append(s)
        elif s.index == index:
            out.append(replace(s, received=s.received + seconds))
        else:
            start = out[-1].received
            out.append(replace(s, requested=start, received=start + (s.received - s.requested)))
    return out


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_recorded_runs_play_without_a_stall(path: Path) -> None:
    segments, first = timings(path)
    pb = play(segments, first.segment_s, first.startup_s, expected=first.count)
    assert pb.complete and pb.segments == first.count == 6
    assert pb.rebuffer_events == 0 and pb.rebuffer_ms == 0
    assert pb.startup_ms is not None and 0 < pb.startup_ms < 2000
    assert pb.min_buffer_s is not None and pb.min_buffer_s > 0
    assert len(pb.download_ms) == 6 and all(ms > 0 for ms in pb.download_ms)


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_a_late_segment_causes_a_rebuffer(path: Path) -> None:
    segments, first = timings(path)
    baseline = play(segments, first.segment_s, first.startup_s, expected=first.count)
    late = delayed(segments, 3, 8.0)  # longer than any buffer the player had
    pb = play(late, first.segment_s, first.startup_s, expected=first.count)
    assert pb.rebuffer_events == 1
    stall = pb.stalls[0]
    # The stall ends when segment 3 arrives, and lasts the delay less the buffer the player had left.
    assert stall.end == pytest.approx(late[3].received)
    assert 8000 - 4000 - 2000 <= stall.ms <= 8000
    assert pb.rebuffer_ms == stall.ms and pb.max_rebuffer_ms == stall.ms
    assert baseline.rebuffer_events == 0


def test_a_delay_within_the_buffer_is_absorbed() -> None:
    segments, first = timings(RECORDED[0])
    pb = play(segments, first.segment_s, first.startup_s, expected=first.count)
    margin = pb.min_buffer_s or 0.0
    absorbed = play(delayed(segments, 4, margin * 0.5), first.segment_s, first.startup_s, expected=first.count)
    assert absorbed.rebuffer_events == 0


def test_a_corrupted_segment_never_plays() -> None:
    segments, first = timings(RECORDED[0])
    segments[2] = replace(segments[2], ok=False)
    end = segments[-1].received + 20
    pb = play(segments, first.segment_s, first.startup_s, expected=first.count, until=end)
    assert pb.segments == 2 and not pb.complete
    assert pb.rebuffer_events == 1 and pb.stalls[0].ongoing and pb.stalls[0].end == pytest.approx(end)


def test_a_video_cut_short_is_an_ongoing_stall() -> None:
    segments, first = timings(RECORDED[0])
    end = segments[3].received + 30
    pb = play(segments[:4], first.segment_s, first.startup_s, expected=first.count, until=end)
    assert pb.rebuffer_events == 1 and pb.stalls[0].ongoing
    assert pb.stalls[0].start == pytest.approx(pb.t0 + pb.buffer[-2][0])


def test_startup_waits_for_the_threshold() -> None:
    segments = [SegmentTiming(i, 10.0 + i, 10.5 + i) for i in range(4)]
    assert play(segments, 1.0, 2.0, expected=4).startup_ms == pytest.approx(1500)  # two 1 s segments
    assert play(segments, 2.0, 2.0, expected=4).startup_ms == pytest.approx(500)
    assert play(segments[:1], 1.0, 2.0, expected=1).startup_ms == pytest.approx(500)  # all there is
    assert play([], 2.0, 2.0).startup_ms is None


def test_live_level_is_what_the_player_asks() -> None:
    segments = [SegmentTiming(i, 10.0 + 2 * i, 10.1 + 2 * i) for i in range(3)]
    now = play(segments, 2.0, 2.0, expected=10, now=12.6)
    assert now.playing and now.level == pytest.approx(2.0 + 2.0 - 2.5)


def test_out_of_order_arrival_waits_for_the_earlier_segment() -> None:
    segments = [SegmentTiming(0, 0.0, 0.1), SegmentTiming(1, 0.1, 5.0), SegmentTiming(2, 0.1, 0.3)]
    pb = play(segments, 2.0, 2.0, expected=3)
    assert pb.rebuffer_events == 1 and pb.stalls[0].start == pytest.approx(2.1)
    assert pb.stalls[0].end == pytest.approx(5.0)


def segment_timeline(segments: list[SegmentTiming], end: float) -> Timeline:
    events = [Segment(ts=s.received, role="client", index=s.index, bytes=s.bytes, requested_ts=s.requested,
                      received_ts=s.received, download_ms=s.download_ms, sha256_ok=s.ok, segment_s=2.0,
                      startup_s=2.0, count=6, target_s=4.0) for s in segments]
    return Timeline((*events, Action(ts=end, role="controller", action="run_end", target="x")))


def test_checks_judge_the_measured_buffer() -> None:
    segments, _ = timings(RECORDED[0])
    clean = segment_timeline(segments, segments[-1].received + 1)
    assert run_check(clean, "rebuffer_events", 0).passed
    assert run_check(clean, "max_rebuffer_ms", 0).passed
    assert run_check(clean, "startup_ms", 2000).passed
    late = segment_timeline(delayed(segments, 3, 8.0), segments[-1].received + 10)
    result = run_check(late, "rebuffer_events", 0)
    assert not result.passed and result.verified and "1 stall(s)" in str(result.observed)
    assert not run_check(late, "max_rebuffer_ms", 1000).passed
    assert run_check(late, "max_rebuffer_ms", 8000).passed
    cut = segment_timeline(segments[:3], segments[2].received + 30)
    assert not run_check(cut, "max_rebuffer_ms", 60_000).passed  # still stalled: a lower bound fails
    nothing = Timeline((HandshakeCompleted(ts=1.0, role="client"),))
    assert run_check(nothing, "rebuffer_events", 0).status == "not verified"


def test_viewer_sentence_states_the_stall_or_its_absence() -> None:
    segments, first = timings(RECORDED[0])
    pb = play(segments, 2.0, 2.0, expected=6)
    text = viewer_sentence(viewer_figures(pb, pb.t0, 4.0))
    assert text.startswith("no stall with a 4 s buffer: 0 rebuffering events")
    late = play(delayed(segments, 3, 8.0), 2.0, 2.0, expected=6)
    text = viewer_sentence(viewer_figures(late, late.t0, 4.0))
    assert text.startswith("the viewer saw a stall with a 4 s buffer: 1 rebuffering event(s)")


# --- the call meter --------------------------------------------------------------------------


def steady_call(meter: CallMeter, start: float, count: int, skip: range = range(0)) -> None:
    for seq in range(count):
        meter.sent += 1
        if seq in skip:
            continue
        sent = start + seq * 0.02
        meter.reply(sent, sent + 0.005, sent + 0.010)


def test_call_meter_steady_and_with_a_freeze() -> None:
    meter = CallMeter(interval_s=0.02, start_ts=100.0)
    steady_call(meter, 100.0, 100)
    stats = meter.stats()
    assert stats["lost"] == 0 and stats["max_freeze_ms"]["down"] == pytest.approx(20, abs=0.5)
    latency = stats["latency_ms"]
    assert latency["up"]["p50"] == pytest.approx(5) and latency["down"]["p99"] == pytest.approx(5)
    assert not meter.freezes
    lossy = CallMeter(interval_s=0.02, start_ts=100.0)
    steady_call(lossy, 100.0, 100, skip=range(40, 50))  # 10 messages lost: 220 ms without audio
    assert lossy.stats()["lost"] == 10
    assert [round(f.ms) for f in lossy.freezes] == [220, 220]
    assert lossy.stats()["max_freeze_ms"]["down"] == pytest.approx(220, abs=0.5)


def test_call_meter_trailing_silence_is_an_ongoing_freeze() -> None:
    meter = CallMeter(interval_s=0.02, start_ts=100.0)
    steady_call(meter, 100.0, 50, skip=range(30, 50))
    found = meter.finish(100.0 + 50 * 0.02)
    assert found and all(f.ongoing for f in found) and found[0].ms >= 400


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0 and percentile([5.0], 99) == 5.0
    assert percentile(list(map(float, range(1, 101))), 95) == 95.0


def test_freeze_check_and_caller_sentence() -> None:
    stats = CallStats(ts=5.0, role="client", sent=500, received=490, lost=10,
                      latency_ms={"up": {"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 4.0},
                                  "down": {"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 9.0}},
                      late={"up": 0, "down": 0}, max_freeze_ms={"up": 40.0, "down": 220.0}, datagrams=True)
    timeline = Timeline((stats,))
    result = run_check(timeline, "freeze_ms", "<= 150")
    assert not result.passed and "220 ms downstream" in str(result.observed)
    assert run_check(timeline, "freeze_ms", 300).passed
    assert run_check(Timeline((HandshakeCompleted(ts=1.0, role="client"),)), "freeze_ms", 150).status == "not verified"
    text = caller_sentence(caller_figures(timeline, 0.0) or {})
    assert text.startswith("the caller heard a freeze: 220 ms") and "10 of 500 messages lost" in text


def test_playback_from_a_timeline_uses_the_run_end() -> None:
    segments, _ = timings(RECORDED[0])
    pb = playback(segment_timeline(segments[:2], segments[1].received + 12))
    assert pb is not None and pb.stalls and pb.stalls[-1].ongoing
