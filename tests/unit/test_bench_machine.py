"""The machine's own floor (lab.bench.machine): gaps told apart, steal read, a real measurement."""

import os
import time

from lab.bench.machine import (
    Hiccup,
    Oversleep,
    Witness,
    lab_floor,
    machine_share,
    measure,
    steal_between,
    steal_ms,
    summarise,
    summarise_wakeups,
    wakeups,
)
from lab.bench.stalls import Gap


def test_a_gap_never_switched_out_with_the_cpu_clock_still_is_stolen() -> None:
    assert Hiccup(6.0, 0.2, 0.0, 0).stolen
    assert not Hiccup(6.0, 0.2, 5.5, 1).stolen  # queued: another task had the core
    assert not Hiccup(6.0, 5.9, 0.0, 0).stolen  # its own CPU (an interrupt counted to it)


def test_the_summary_counts_the_longest_the_limit_and_the_steal() -> None:
    found = [[Hiccup(1.2, 0.1, 1.0, 1), Hiccup(7.5, 0.5, 0.0, 0)], [Hiccup(4.0, 0.1, 3.8, 1)]]
    s = summarise(2, 10.0, found)
    assert (s["longest_gap_ms"], s["gaps_at_limit"], s["gaps_1ms"]) == (7.5, 1, 3)
    assert (s["stolen_gaps"], s["stolen_ms"], s["longest_stolen_ms"]) == (1, 7.0, 7.5)
    assert s["queued_ms"] == 4.8


def test_steal_is_the_eighth_field_of_the_cpu_line_in_clock_ticks() -> None:
    text = "cpu  26565 0 14061 117700 995 0 481 44 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"
    assert steal_ms(text) == 440.0
    assert steal_ms(text, cpu=0) == 80.0  # one core's line
    assert steal_ms(text, cpu=1) is None and steal_ms("intr 1 2 3\n") is None


def test_steal_over_a_span_runs_from_each_cores_sample_before_it_to_the_one_after() -> None:
    core0 = [(1.0, 100.0), (1.1, 110.0), (1.2, 150.0), (1.3, 150.0)]
    core1 = [(1.05, 0.0), (1.25, 20.0)]
    assert steal_between([core0, core1], 1.1, 1.2) == 40.0 + 20.0
    assert steal_between([core0], 1.15, 1.25) == 40.0  # 1.1 to 1.3: a little more than the span
    assert steal_between([core0, core1], 1.1, 1.3) is None  # core 1 has no sample after 1.3
    assert steal_between([[]], 1.0, 1.1) is None


def test_a_real_measurement_on_this_machine() -> None:
    s = measure(1, 0.3)
    assert s["busy_cores"] == 1 and s["seconds"] == 0.3
    assert s["longest_gap_ms"] >= 0 and s["gaps_1ms"] >= s["stolen_gaps"] >= 0


def test_the_wakeup_summary_gives_the_worst_and_what_a_paced_sender_could_see() -> None:
    found = summarise_wakeups(10.0, 9000, [Oversleep(1.2, 0.1), Oversleep(4.5, 3.9), Oversleep(3.0, 0.0)])
    assert found["worst_ms"] == 4.5 and found["worst_queued_ms"] == 3.9
    assert found["late_1ms"] == 3 and found["late_3ms"] == 2 and found["sleeps"] == 9000
    assert found["paced_floor_ms"] == 4.5 + found["tick_ms"]
    assert summarise_wakeups(1.0, 900, [])["worst_ms"] == 0.0


def test_a_real_sleeper_on_this_machine() -> None:
    found = wakeups(0.3)
    assert found["sleeps"] > 50  # 1 ms sleeps for 0.3 s, each a little late
    assert 0.0 <= found["worst_ms"] < 300 and found["late_1ms"] <= found["sleeps"]


def test_the_machine_held_a_sleeper_from_when_it_was_due_until_woken_less_its_run_queue_wait() -> None:
    assert Oversleep(4.0, 1.0, due=10.0).held == (10.0, 10.003)
    assert Oversleep(2.0, 2.5, due=10.0).held == (10.0, 10.0)  # all of it queued: none of it the machine's


def test_a_gap_is_the_machines_for_as_long_as_a_held_span_overlaps_it() -> None:
    gap = Gap(100.0, 100.007, 7.0)
    late = [Oversleep(4.0, 0.0, due=100.002, cpu=0),  # 4 ms inside the gap
            Oversleep(3.0, 0.0, due=100.0015, cpu=1),  # the same moment on the other core: not added
            Oversleep(9.0, 0.0, due=200.0, cpu=0)]  # another time
    [(same, share)] = machine_share([gap], late)
    assert same is gap and share == 4.0
    assert machine_share([gap], [Oversleep(4.0, 3.5, due=100.002)]) == [(gap, 0.5)]  # queued: the lab's
    assert machine_share([gap], [Oversleep(30.0, 0.0, due=99.99)]) == [(gap, 7.0)]  # never more than the gap
    assert machine_share([gap], []) == [(gap, 0.0)]  # no witness: all of it the lab's


def test_the_lab_floor_is_the_longest_gap_less_the_machines_share() -> None:
    shares = [(Gap(1.0, 1.007, 7.0), 4.0), (Gap(2.0, 2.006, 6.0), 0.0)]
    assert lab_floor(shares, {"2": 10, "4": 1, "6": 1, "7": 1}, 5.0, 7.0) == 6.0  # the unshared 6 ms gap
    assert lab_floor(shares[:1], {"2": 10, "4": 1, "7": 1}, 5.0, 7.0) == 5.0  # the 4 ms bucket's upper end
    assert lab_floor([], {"3": 2}, 5.0, 3.4) == 3.4  # nothing reported: the histogram's longest


def test_a_real_witness_watches_every_core_until_told_to_stop() -> None:
    start = time.monotonic()
    with Witness() as witness:
        time.sleep(0.5)
        assert witness.alive
    assert time.monotonic() - start < 5
    assert witness.cores == sorted(os.sched_getaffinity(0))
    assert witness.sleeps > 100 * len(witness.cores)  # 1 ms sleeps on each core for 0.5 s
    assert all(o.cpu in witness.cores and start <= o.due <= start + 5 for o in witness.late)
    assert len(witness.steal) == len(witness.cores)  # each core's steal, sampled about every 0.1 s
    assert all(len(samples) >= 2 and samples[-1][1] >= samples[0][1] for samples in witness.steal)
    assert steal_between(witness.steal, start + 0.1, start + 0.3) is not None


def test_a_witness_left_by_an_error_or_ctrl_c_stops_at_once_and_measures_nothing() -> None:
    start = time.monotonic()
    try:
        with Witness() as witness:
            time.sleep(0.2)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert time.monotonic() - start < 5
    assert witness.sleeps == 0 and witness.late == []
    assert not witness.alive
