"""Data gaps put down to the loop stalls that overlap them (recorded shapes, no Docker)."""

from lab.bench.stalls import Gap, attribute, cause, gaps_of


def stall(start: float, ms: float, cpu_ms: float, what: str) -> dict:
    return {"start": start, "ms": ms, "cpu_ms": cpu_ms, "what": what}


READ = "<Handle _SelectorDatagramTransport._read_ready()>"
STEP = "<Handle Task.task_wakeup(<Future finished result=None>)>"


def test_a_gap_goes_to_the_stall_that_overlaps_it_most() -> None:
    stalls = {"client": [stall(10.000, 4.0, 1.0, READ)], "server": [stall(9.990, 30.0, 28.0, STEP)]}
    assert cause(Gap(10.000, 10.012, 12.0), stalls) == "server loop, own work: task step"


def test_cpu_well_below_the_length_means_the_loop_waited() -> None:
    stalls = {"client": [stall(10.000, 9.0, 3.0, READ)], "server": []}
    assert cause(Gap(10.000, 10.009, 9.0), stalls) == "client loop, waited (a core or the GIL): datagram read"


def test_the_servers_stall_may_precede_the_gap_by_the_lead() -> None:
    stalls = {"client": [], "server": [stall(9.9965, 5.0, 5.0, "gc generation 2")]}  # ends 1.5 ms into the gap
    assert cause(Gap(10.000, 10.006, 6.0), stalls) == "server loop, own work: garbage collection"
    assert cause(Gap(10.010, 10.016, 6.0), stalls) == "no loop stall"


def test_attribution_counts_gaps_and_their_length_per_cause() -> None:
    stalls = {"client": [stall(1.0, 8.0, 8.0, READ)], "server": []}
    found = attribute([Gap(1.0, 1.008, 8.0), Gap(5.0, 5.006, 6.0), Gap(1.001, 1.007, 6.0)], stalls)
    assert found == {"client loop, own work: datagram read": {"gaps": 2, "total_ms": 14.0},
                     "no loop stall": {"gaps": 1, "total_ms": 6.0}}


def test_gaps_are_read_from_the_clients_events_on_the_monotonic_clock() -> None:
    events = [{"type": "data_gap", "role": "client", "ts": 1000.5, "mono": 10.5, "start_ts": 1000.0,
               "end_ts": 1000.4, "gap_ms": 400.0},
              {"type": "data_gap", "role": "server", "ts": 1.0, "mono": 1.0, "start_ts": 0, "end_ts": 1, "gap_ms": 1},
              {"type": "progress", "role": "client"}]
    (gap,) = gaps_of(events)
    assert (round(gap.start, 6), round(gap.end, 6), gap.ms) == (10.0, 10.4, 400.0)


def sched(start: float, ms: float, cpu_ms: float, queued_ms: float, switches: int) -> dict:
    return {**stall(start, ms, cpu_ms, READ), "queued_ms": queued_ms, "switches": switches}


def test_schedstat_tells_a_run_queue_from_the_hypervisor_from_a_blocking_call() -> None:
    gap = Gap(10.000, 10.006, 6.0)
    assert cause(gap, {"client": [sched(10.0, 6.0, 0.5, 5.0, 1)]}) == "client loop, waited for a core: datagram read"
    # never switched out, CPU clock still: the vCPU did not run (steal is left out of the CPU clock)
    assert cause(gap, {"client": [sched(10.0, 6.0, 0.3, 0.0, 0)]}) == \
        "client loop, stolen by the hypervisor: datagram read"
    assert cause(gap, {"client": [sched(10.0, 6.0, 0.3, 0.1, 1)]}) == \
        "client loop, slept in a call, or stolen: datagram read"
    assert cause(gap, {"client": [sched(10.0, 6.0, 5.0, 0.0, 0)]}) == "client loop, own work: datagram read"


def test_a_late_read_makes_no_gap_and_a_late_wake_up_or_a_named_task_does() -> None:
    from lab.endpoints.shared.gaps import SOCKET_WAIT

    waited = {"start": 10.0, "ms": 8.0, "cpu_ms": 0.2, "what": "woke late from its timer", "queued_ms": 7.5,
              "switches": 1}
    stalls = {"client": [stall(10.000, 9.0, 0.0, SOCKET_WAIT)], "server": [waited]}
    assert cause(Gap(10.000, 10.009, 9.0), stalls) == "server loop, waited for a core: woke late from its timer"
    assert cause(Gap(10.000, 10.009, 9.0), {"client": stalls["client"], "server": []}) == "no loop stall"
    named = {"client": [], "server": [stall(10.0, 9.0, 9.0, "<Task step Download._run>")]}
    assert cause(Gap(10.000, 10.009, 9.0), named) == "server loop, own work: task step Download._run"
