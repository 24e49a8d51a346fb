"""The client's data-gap meter (pure): every inter-arrival gap of application data, to 1 ms.

A gap of ``threshold`` or more is reported on its own (a ``data_gap`` event with its start and
end), so that a migration's disruption is measured exactly; every gap of 1 ms or more also goes
into a histogram with 1 ms buckets (a ``gap_histogram`` event at the end), so that the lab's own
noise floor below the threshold can be seen too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

DOWNLOAD_THRESHOLD_S = 0.005  # data arrives every < 1 ms at the lab's rates: 5 ms is a stall
ECHO_THRESHOLD_S = 0.05  # echo replies arrive once per interval (20 ms by default)


@dataclass
class GapMeter:
    threshold_s: float = DOWNLOAD_THRESHOLD_S
    counts: Counter[int] = field(default_factory=Counter)  # floor(gap in ms) -> how many, for gaps >= 1 ms
    samples: int = 0  # arrivals measured
    max_ms: float = 0.0
    last_mono: float | None = None
    last_wall: float = 0.0

    def arrival(self, mono: float, wall: float) -> tuple[float, float, float] | None:
        """Record data arriving at ``mono``; ``(start_wall, end_wall, gap_ms)`` when it ends a reportable gap.

        An arrival earlier than the last one (timed by another clock, see ReceiveClock) is a gap of 0
        and leaves the last arrival where it is, so that no later gap is measured from before it.
        """
        found = None
        if self.last_mono is not None and mono < self.last_mono:
            self.samples += 1
            return None
        if self.last_mono is not None:
            gap = mono - self.last_mono
            self.samples += 1
            ms = gap * 1000.0
            self.max_ms = max(self.max_ms, ms)
            if ms >= 1.0:
                self.counts[int(ms)] += 1
            if gap >= self.threshold_s:
                found = (self.last_wall, wall, round(ms, 3))
        self.last_mono, self.last_wall = mono, wall
        return found

    def histogram(self) -> dict[str, object]:
        """The fields of a ``gap_histogram`` event."""
        return {"bucket_ms": 1, "counts": {str(ms): n for ms, n in sorted(self.counts.items())},
                "samples": self.samples, "max_ms": round(self.max_ms, 3),
                "threshold_ms": round(self.threshold_s * 1000, 3)}


SIOCGSTAMPNS = 0x8907  # linux/sockios.h: the receive time of the last datagram read from a socket
SOCKET_WAIT = "datagram waited in the socket"  # a LoopStall's ``what`` for ReceiveClock's waits


class ReceiveClock:
    """When the kernel received each datagram the client reads: the arrival, not the application's read.

    The client's loop reads a datagram some time after it arrived: when its thread is woken and
    given a core, and after the datagrams queued before it. On 2 shared cores that delay alone was
    3-7 ms at times (measured: LoopStallMeter.received), longer than the lab's whole noise target,
    and it is the client's own, not the network's. So the gap meter times application data by the
    kernel's receive time of the datagram that carried it (SIOCGSTAMPNS, CLOCK_REALTIME, moved onto
    the monotonic clock).

    The stamp is the last datagram read from *that* socket; during a migration the connection may
    still read from the old socket while ``attach`` has moved on to the new one, and then the stamp
    would be another datagram's. A stamp no newer than the last one taken is that case (or a socket
    without one yet): ``stamp`` returns None and the caller times the arrival by its own clock, which
    can only lengthen a gap, never hide one. The kernel turns stamps on in a work item after a
    process's first ioctl, so the first datagrams may arrive without one; the ioctl then gives the
    time of the read, which again can only lengthen a gap.
    """

    def __init__(self) -> None:
        import fcntl
        import struct
        import time

        # Bound once: stamp() runs for every datagram the client reads.
        self._ioctl, self._unpack = fcntl.ioctl, struct.Struct("qq").unpack  # struct timespec
        self._time, self._monotonic = time.time, time.monotonic
        self.fd = -1
        self.last = 0.0  # realtime seconds of the last stamp taken

    def attach(self, fd: int) -> None:
        """Time the datagrams of socket ``fd`` from now on (the first ioctl turns its stamps on)."""
        self.fd = fd
        self._read()

    def _read(self) -> float | None:
        try:
            sec, nsec = self._unpack(self._ioctl(self.fd, SIOCGSTAMPNS, bytes(16)))
        except OSError:  # ENOENT: nothing received yet; EBADF: no socket attached
            return None
        return sec + nsec / 1e9

    def stamp(self) -> tuple[float, float] | None:
        """``(monotonic, wall)`` of the datagram just read, or None where it cannot be known."""
        raw = self._read()
        wall, mono = self._time(), self._monotonic()
        if raw is None or not self.last < raw <= wall:
            return None
        self.last = raw
        return mono - (wall - raw), raw


def freeze_startup_objects() -> None:
    """Move every object alive now (modules, classes, configuration) out of the collector's sight.

    A full collection walks every tracked object; after start-up that is tens of thousands of
    objects that live as long as the process. Measured in the client container: full collections
    of 25-29 ms, each a stall of the data the lab measures. ``gc.freeze`` keeps them out of later
    passes; call it once, when start-up is done.
    """
    import gc

    gc.collect()
    gc.freeze()


LOOP_STALLS_ENV = "LAB_LOOP_STALLS"  # a threshold in ms: record every callback at least that long


@dataclass
class LoopStall:
    """One event-loop callback (or garbage collection) that held the loop for ``ms``."""

    start: float  # monotonic seconds (the host's clock: containers share the kernel's)
    ms: float
    what: str  # the callback's repr, or "gc generation N"
    cpu_ms: float  # CPU time of the loop's thread meanwhile: far less than ms = it waited (a core, the GIL)
    # From /proc/thread-self/schedstat, None where the kernel has none: how long the thread sat on a
    # run queue (waited for a core), and how many times it was put on a CPU. Neither run nor queued
    # nor switched out (0 switches): the time went to the hypervisor, which the guest cannot see
    # (steal time is left out of a thread's CPU clock, CONFIG_PARAVIRT_TIME_ACCOUNTING).
    queued_ms: float | None = None
    switches: int | None = None


class ThreadSchedstat:
    """This thread's (run ns, queued ns, times scheduled in), read from one descriptor kept open."""

    PATH = "/proc/thread-self/schedstat"

    def __init__(self) -> None:
        import os

        self._pread = os.pread
        try:
            self._fd: int | None = os.open(self.PATH, os.O_RDONLY)
        except OSError:
            self._fd = None

    def read(self) -> tuple[int, int, int] | None:
        if self._fd is None:
            return None
        run, queued, switches = self._pread(self._fd, 96, 0).split()[:3]
        return int(run), int(queued), int(switches)


@dataclass
class LoopStallMeter:
    """Diagnosis: which callbacks held an asyncio loop, how long, and on how much CPU.

    ``install`` wraps ``asyncio.Handle._run`` (every callback, selector reads and task steps
    included) and registers a ``gc.callbacks`` hook; a callback or a collection lasting at least
    ``threshold_s`` is kept with its thread's CPU time over the same span (``time.thread_time``),
    so that a stall is told apart: CPU close to its length = the loop's own work; far less = the
    thread was runnable but waited for a core, or waited for the GIL (another thread held it).
    The data gaps at the client are matched against these by time (lab.bench.stalls).
    """

    threshold_s: float = 0.003
    found: list[LoopStall] = field(default_factory=list)
    callbacks: int = 0
    _gc_started: tuple[float, float] | None = None

    def record(self, start: float, end: float, cpu_start: float, cpu_end: float, what: str,
               sched: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None) -> None:
        self.callbacks += 1
        if end - start >= self.threshold_s:
            queued = switches = None
            if sched is not None:
                (_, queued_before, switches_before), (_, queued_after, switches_after) = sched
                queued, switches = round((queued_after - queued_before) / 1e6, 3), switches_after - switches_before
            self.found.append(LoopStall(round(start, 6), round((end - start) * 1000, 3), what,
                                        round((cpu_end - cpu_start) * 1000, 3), queued, switches))

    def install(self) -> None:
        import asyncio
        import gc
        import time

        meter, original = self, asyncio.Handle._run
        schedstat = ThreadSchedstat()  # the loop's thread: install is called on it

        def timed_run(handle: asyncio.Handle) -> None:
            start, cpu, sched = time.monotonic(), time.thread_time(), schedstat.read()
            try:
                original(handle)
            finally:
                end = time.monotonic()
                if end - start >= meter.threshold_s:  # repr only when kept: it is not cheap
                    after = schedstat.read()
                    meter.record(start, end, cpu, time.thread_time(), describe(handle),
                                 (sched, after) if sched is not None and after is not None else None)
                else:
                    meter.callbacks += 1

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                meter._gc_started = (time.monotonic(), time.thread_time())
            elif meter._gc_started is not None:
                (start, cpu), meter._gc_started = meter._gc_started, None
                meter.record(start, time.monotonic(), cpu, time.thread_time(), f"gc generation {info['generation']}")

        asyncio.Handle._run = timed_run  # type: ignore[method-assign]
        gc.callbacks.append(on_gc)
        try:
            selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
        except (RuntimeError, AttributeError):
            return
        select = selector.select

        def timed_select(timeout: float | None = None) -> list[Any]:
            # Asleep past its timer: the loop asked to be woken at start + timeout and was not. The
            # callbacks' timing cannot see this (no callback ran), so a late wake-up is kept too.
            start, cpu, sched = time.monotonic(), time.thread_time(), schedstat.read()
            events = select(timeout)
            end = time.monotonic()
            if timeout is not None and end - start - timeout >= meter.threshold_s:
                after = schedstat.read()
                meter.record(start + timeout, end, cpu, time.thread_time(),
                             "woke late from its timer" if not events else "woke late, with I/O",
                             (sched, after) if sched is not None and after is not None else None)
            return events

        selector.select = timed_select

    def summary(self) -> dict[str, object]:
        return {"threshold_ms": round(self.threshold_s * 1000, 3), "callbacks": self.callbacks,
                "stalls": [vars(s) for s in self.found]}

    def received(self, stamp: float, now: float) -> None:
        """A datagram the kernel received at ``stamp`` was read at ``now`` (monotonic): a wait in the
        socket of at least the threshold is kept. No callback shows it when the loop was not woken,
        or not run, in time."""
        if now - stamp >= self.threshold_s:
            self.found.append(LoopStall(round(stamp, 6), round((now - stamp) * 1000, 3), SOCKET_WAIT, 0.0))


def describe(handle: Any) -> str:
    """A callback in words: a task step names its coroutine (a bare TaskStepMethWrapper names nothing)."""
    task = getattr(getattr(handle, "_callback", None), "__self__", None)
    coro = task.get_coro() if hasattr(task, "get_coro") else None
    if coro is not None:
        return f"<Task step {getattr(coro, '__qualname__', repr(coro))}>"[:200]
    return repr(handle)[:200]


def loop_stalls_from_env(environ: dict[str, str]) -> LoopStallMeter | None:
    """A meter when LAB_LOOP_STALLS holds a threshold in ms (e.g. "3"), else None (the default: off)."""
    text = environ.get(LOOP_STALLS_ENV, "").strip()
    if not text:
        return None
    try:
        return LoopStallMeter(float(text) / 1000)
    except ValueError:
        return None
