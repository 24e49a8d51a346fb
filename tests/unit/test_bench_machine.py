"""The machine's own floor (lab.bench.machine): gaps told apart, steal read, a real measurement."""

from lab.bench.machine import Hiccup, Oversleep, measure, steal_ms, summarise, summarise_wakeups, wakeups


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
    assert steal_ms("intr 1 2 3\n") is None


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
