"""The gap meter resolves every gap to 1 ms, and the noise floor separates the lab's noise from migrations."""

from __future__ import annotations

from lab.endpoints.shared.gaps import GapMeter
from lab.events import Action, DataGap, GapHistogram
from lab.observe.timeline import Timeline
from lab.report.metrics import noise_floor


def test_every_gap_is_counted_to_the_millisecond_and_long_ones_are_reported():
    meter = GapMeter(threshold_s=0.005)
    arrivals = [0.0, 0.0004, 0.0021, 0.0050, 0.0130, 0.0131]  # gaps 0.4, 1.7, 2.9, 8.0, 0.1 ms
    reported = [found for t in arrivals if (found := meter.arrival(t, 100 + t)) is not None]
    assert reported == [(100.005, 100.013, 8.0)]
    histogram = meter.histogram()
    assert histogram["counts"] == {"1": 1, "2": 1, "8": 1} and histogram["samples"] == 5
    assert histogram["max_ms"] == 8.0 and histogram["threshold_ms"] == 5.0


def _gap(start: float, ms: float) -> DataGap:
    return DataGap(ts=start + ms / 1000, role="client", start_ts=start, end_ts=start + ms / 1000, gap_ms=ms)


def _histogram(max_ms: float) -> GapHistogram:
    return GapHistogram(ts=20.0, role="client", counts={str(int(max_ms)): 1}, samples=100, max_ms=max_ms,
                        threshold_ms=5.0)


def test_the_noise_floor_leaves_out_the_gap_a_network_change_caused():
    change = Action(ts=10.0, role="controller", transport="", action="disconnect", target="home",
                    detail={"took_ms": 300})
    timeline = Timeline.from_streams([change, _gap(9.9, 700), _gap(4.0, 12), _gap(15.0, 30), _histogram(700)])
    assert noise_floor(timeline) == (30, False)  # the 700 ms disruption is not noise; 12 and 30 ms are


def test_without_a_change_the_histogram_gives_the_floor_and_below_threshold_is_a_bound():
    assert noise_floor(Timeline.from_streams([_histogram(3.2)])) == (3.2, False)
    change = Action(ts=10.0, role="controller", transport="", action="rebind", target="home-router",
                    detail={"took_ms": 50})
    assert noise_floor(Timeline.from_streams([change, _gap(10.01, 200), _histogram(200)])) == (5.0, True)
    assert noise_floor(Timeline()) == (None, False)
