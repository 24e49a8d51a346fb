"""The machine's own floor, beside the lab's: how long a busy thread goes unserved with no lab load.

A thread that only reads the clock should see every gap of the machine itself: kernel threads
that hold its core, and, on a virtual machine, the hypervisor running another guest instead of
this vCPU (steal). One such thread per busy core, pinned, for a few seconds, while the lab is up
and idle; every gap of 1 ms or more is kept with the thread's CPU time and schedstat over it, so
that a gap is told apart as queued (another task had the core) or stolen (never switched out, CPU
clock still). Measured with 1 busy core, then every core busy: the lab's endpoints need more than
one core at 2 MB/s, and a guest whose every vCPU is busy is the one a hypervisor takes turns from.

A thread that sleeps shows what a busy one cannot: how late the machine wakes it. The lab's
server sleeps between the pieces it paces out (PACING_TICK_S), so a wake-up w ms late is a gap of
up to w plus the tick in the client's data, whatever the lab does. ``wakeups`` measures it as
cyclictest does: sleep 1 ms, again and again, and keep every oversleep of 1 ms or more with the
time the woken thread then waited on a run queue.

The same sleepers, one pinned to each core, can run beside the lab while it is measured (the
``Witness``): a data gap during which a witness was due to wake and the machine did not wake it
(late, and not because another task had its core) is, for that span, the machine's and not the
lab's. ``machine_share`` says how much of each gap that is; ``lab_floor`` what is left of a run.

``summarise``, ``summarise_wakeups``, ``steal_ms``, ``machine_share`` and ``lab_floor`` are pure;
``measure``, ``wakeups`` and ``Witness`` start the processes.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

from lab.bench.figures import NOISE_LIMIT_MS
from lab.bench.stalls import Gap
from lab.endpoints.shared.gaps import ThreadSchedstat
from lab.endpoints.shared.workload import PACING_TICK_S

GAP_S = 0.001
SLEEP_S = 0.001  # the sleeper's period: the server's pacing tick is of this order
STEAL_EVERY = 100  # a witness reads its core's steal once per this many sleeps (about 0.1 s)


@dataclass(frozen=True)
class Hiccup:
    ms: float  # wall time between two reads of the clock
    cpu_ms: float  # the thread's CPU clock over it
    queued_ms: float  # on a run queue meanwhile
    switches: int  # times put on a CPU meanwhile (0 = it never left its CPU)

    @property
    def stolen(self) -> bool:
        return self.switches == 0 and self.ms - self.cpu_ms >= GAP_S * 1000


def summarise(busy_cores: int, seconds: float, found: list[list[Hiccup]]) -> dict[str, Any]:
    """One measurement: every thread's gaps -> the longest, how many reached the lab's limit, steal."""
    gaps = [g for per_thread in found for g in per_thread]
    stolen = [g for g in gaps if g.stolen]
    return {
        "busy_cores": busy_cores, "seconds": seconds,
        "longest_gap_ms": round(max((g.ms for g in gaps), default=0.0), 3),
        "gaps_at_limit": sum(1 for g in gaps if g.ms >= NOISE_LIMIT_MS),
        "gaps_1ms": len(gaps),
        "stolen_gaps": len(stolen), "stolen_ms": round(sum(g.ms - g.cpu_ms for g in stolen), 3),
        "longest_stolen_ms": round(max((g.ms for g in stolen), default=0.0), 3),
        "queued_ms": round(sum(g.queued_ms for g in gaps), 3),
    }


@dataclass(frozen=True)
class Oversleep:
    ms: float  # woken this much later than asked
    queued_ms: float  # of which on a run queue (woken, not yet given a core)
    due: float = 0.0  # monotonic seconds: when the sleeper should have woken
    cpu: int = -1  # the core it was pinned to (-1: not pinned)

    @property
    def held(self) -> tuple[float, float]:
        """The span the machine itself held the sleeper: from when it was due until it was woken,
        less its wait on a run queue (the run queue is the lab's or another task's, not the machine's)."""
        return self.due, self.due + max(self.ms - self.queued_ms, 0.0) / 1000


def summarise_wakeups(seconds: float, sleeps: int, late: list[Oversleep]) -> dict[str, Any]:
    """One sleeper's measurement -> its worst wake-up, how often it was 3 ms late, and what a sender
    paced every PACING_TICK_S could at best see as its longest gap here."""
    worst = max(late, key=lambda o: o.ms, default=Oversleep(0.0, 0.0))
    return {
        "seconds": seconds, "period_ms": SLEEP_S * 1000, "sleeps": sleeps,
        "late_1ms": len(late), "late_3ms": sum(1 for o in late if o.ms >= 3.0),
        "worst_ms": worst.ms, "worst_queued_ms": worst.queued_ms,
        "tick_ms": PACING_TICK_S * 1000, "paced_floor_ms": round(worst.ms + PACING_TICK_S * 1000, 3),
    }


def steal_ms(proc_stat: str, user_hz: int = 100, cpu: int = -1) -> float | None:
    """Steal time so far (ms) of the machine, or of core ``cpu``, from /proc/stat (10 ms steps); None if absent."""
    name = "cpu" if cpu < 0 else f"cpu{cpu}"
    for line in proc_stat.splitlines():
        fields = line.split()
        if fields and fields[0] == name and len(fields) > 8:
            return int(fields[8]) * 1000 / user_hz
    return None


def steal_between(samples: list[list[tuple[float, float]]], start: float, end: float) -> float | None:
    """Steal (ms) of every core from ``start`` to ``end`` (monotonic), from each core's (mono, steal ms)
    samples: the last sample at or before ``start`` to the first at or after ``end``, so the figure
    covers the span and a little more (one sampling interval at most). None unless every core has both."""
    total = 0.0
    for core in samples:
        before = [steal for mono, steal in core if mono <= start]
        after = [steal for mono, steal in core if mono >= end]
        if not core or not before or not after:
            return None
        total += after[0] - before[-1]
    return round(total, 1)


def read_steal_ms(cpu: int = -1) -> float | None:
    """``steal_ms`` of the machine, or of core ``cpu``, now."""
    try:
        with open("/proc/stat") as stat:
            return steal_ms(stat.read(), os.sysconf("SC_CLK_TCK"), cpu)
    except (OSError, ValueError):
        return None


def _spin(cpu: int, seconds: float, queue: Any) -> None:
    os.sched_setaffinity(0, {cpu})
    schedstat = ThreadSchedstat()
    if schedstat.read() is None:
        raise OSError(f"{ThreadSchedstat.PATH} is unreadable: the machine's floor needs it")
    sched = schedstat.read
    clock, cpu_clock = time.monotonic, time.thread_time
    found: list[Hiccup] = []
    last, last_cpu, last_sched = clock(), cpu_clock(), sched()
    end = last + seconds
    while last < end:
        now = clock()
        if now - last >= GAP_S:
            cpu_now, sched_now = cpu_clock(), sched()
            found.append(Hiccup(round((now - last) * 1000, 3), round((cpu_now - last_cpu) * 1000, 3),
                                round((sched_now[1] - last_sched[1]) / 1e6, 3),  # type: ignore[index]
                                sched_now[2] - last_sched[2]))  # type: ignore[index]
        last, last_cpu, last_sched = now, cpu_clock(), sched()
    queue.put(found)


def _start(target: Any, arguments: list[tuple[Any, ...]]) -> tuple[list[Any], Any]:
    """``target(*args, queue)`` in one forked process per ``args``, all at once."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=target, args=(*args, queue), daemon=True) for args in arguments]
    for worker in workers:
        worker.start()
    return workers, queue


def _collect(workers: list[Any], queue: Any, timeout: float) -> list[Any]:
    """What each of ``workers`` put on the queue, once it has."""
    found = [queue.get(timeout=timeout) for _ in workers]
    for worker in workers:
        worker.join()
    return found


def _in_processes(target: Any, arguments: list[tuple[Any, ...]], seconds: float) -> list[Any]:
    """``target(*args, queue)`` in one forked process per ``args``, all at once; what each put on the queue."""
    return _collect(*_start(target, arguments), timeout=seconds + 30)


def measure(busy_cores: int, seconds: float) -> dict[str, Any]:
    """``busy_cores`` clock readers, each pinned to one of this process's cores, for ``seconds``."""
    cores = sorted(os.sched_getaffinity(0))[:busy_cores]
    return summarise(busy_cores, seconds, _in_processes(_spin, [(cpu, seconds) for cpu in cores], seconds))


def machine_floor(seconds: float = 10.0) -> list[dict[str, Any]]:
    """The machine with 1 busy core, then with every core busy (when it has more than one)."""
    cores = len(os.sched_getaffinity(0))
    return [measure(n, seconds) for n in sorted({1, cores})]


def _sleep(seconds: float, queue: Any, cpu: int = -1, stop: Any = None) -> None:
    """Sleep SLEEP_S again and again for ``seconds`` (or until ``stop`` is set); put (sleeps, oversleeps,
    steal samples): a witness (``stop`` given) also samples its core's steal every STEAL_EVERY sleeps."""
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    schedstat = ThreadSchedstat()
    clock, late, sleeps = time.monotonic, [], 0
    samples: list[tuple[float, float]] = []
    end = clock() + seconds
    while clock() < end:
        if stop is not None and sleeps % STEAL_EVERY == 0:
            steal = read_steal_ms(cpu)
            if steal is not None:
                samples.append((clock(), steal))
            if stop.is_set():
                break
        before, queued = clock(), schedstat.read()
        time.sleep(SLEEP_S)
        over = clock() - before - SLEEP_S
        sleeps += 1
        if over >= GAP_S:
            after = schedstat.read()
            waited = (after[1] - queued[1]) / 1e6 if after is not None and queued is not None else 0.0
            late.append(Oversleep(round(over * 1000, 3), round(waited, 3), round(before + SLEEP_S, 6), cpu))
    queue.put((sleeps, late, samples))


def wakeups(seconds: float) -> dict[str, Any]:
    """A thread sleeping SLEEP_S at a time for ``seconds``, in its own process: how late it is woken."""
    [(sleeps, late, _)] = _in_processes(_sleep, [(seconds,)], seconds)
    return summarise_wakeups(seconds, sleeps, late)


def _witness(cpu: int, stop: Any, limit_s: float, queue: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the bench's to handle: it stops us
    _sleep(limit_s, queue, cpu, stop)


class Witness:
    """One sleeper pinned to each core while the lab is measured (``with Witness() as w: ...``).

    Its own cost is a wake-up per core per SLEEP_S. ``late`` holds every oversleep of 1 ms or more,
    each with when it was due and its core; ``sleeps`` how many sleeps there were in all;
    ``steal`` each core's (mono, steal ms) samples, for ``steal_between``.
    """

    def __init__(self, limit_s: float = 3600.0) -> None:
        self.limit_s = limit_s  # a bound, should the bench die without stopping it
        self.cores = sorted(os.sched_getaffinity(0))
        self.late: list[Oversleep] = []
        self.sleeps = 0
        self.steal: list[list[tuple[float, float]]] = []
        self._stop: Any = None
        self._started: tuple[list[Any], Any] | None = None

    def __enter__(self) -> Witness:
        self._stop = multiprocessing.get_context("fork").Event()
        self._started = _start(_witness, [(cpu, self._stop, self.limit_s) for cpu in self.cores])
        return self

    @property
    def alive(self) -> bool:
        """Whether any sleeper is still running."""
        return self._started is not None and any(worker.is_alive() for worker in self._started[0])

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self._stop.set()
        assert self._started is not None
        if exc_type is not None:  # the bench failed or was interrupted: nothing to measure, stop at once
            for worker in self._started[0]:
                worker.terminate()
                worker.join()
            return
        for sleeps, late, samples in _collect(*self._started, timeout=30):
            self.sleeps += sleeps
            self.late += late
            self.steal.append(samples)
        self.late.sort(key=lambda o: o.due)


def machine_share(gaps: list[Gap], late: list[Oversleep]) -> list[tuple[Gap, float]]:
    """Each gap with the ms of it during which the machine held a witness (its longest overlap with
    one witness's held span: a stalled core holds every thread on it at once, so spans of the same
    moment are not added up)."""
    found = []
    for gap in gaps:
        share = 0.0
        for oversleep in late:
            start, end = oversleep.held
            share = max(share, min(end, gap.end) - max(start, gap.start))
        found.append((gap, round(min(max(share, 0.0) * 1000, gap.ms), 3)))
    return found


def lab_floor(shares: list[tuple[Gap, float]], counts: dict[str, int], threshold_ms: float,
              max_ms: float) -> float:
    """One run's longest gap less the machine's share of it: the longest reported gap (>= the meter's
    threshold) net of its share, or, below the threshold, the histogram's longest bucket's upper end.

    ``counts``, ``threshold_ms`` and ``max_ms`` are the run's gap histogram (a ``gap_histogram`` event)."""
    if not shares:
        return max_ms
    below = [int(ms) + 1.0 for ms in counts if int(ms) + 1.0 <= threshold_ms]
    return round(max([gap.ms - share for gap, share in shares] + below), 3)
