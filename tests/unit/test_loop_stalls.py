"""The loop-stall meter: a callback that holds the loop is reported with its length, its name and
whether it used the CPU (its own work) or not (it waited: a core, the GIL, here a sleep)."""

import asyncio
import gc
import time
from collections.abc import Iterator

import pytest

from lab.endpoints.shared.gaps import LoopStallMeter, loop_stalls_from_env


def busy(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def blocked(seconds: float) -> None:
    time.sleep(seconds)


@pytest.fixture
def meter(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopStallMeter]:
    monkeypatch.setattr(asyncio.Handle, "_run", asyncio.Handle._run)  # restored after the test
    before = list(gc.callbacks)
    found = LoopStallMeter(threshold_s=0.01)
    found.install()
    yield found
    gc.callbacks[:] = before


def test_an_injected_stall_is_reported_with_its_length_name_and_cpu(meter: LoopStallMeter) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(busy, 0.03)
        loop.call_soon(blocked, 0.03)
        for _ in range(20):
            loop.call_soon(lambda: None)  # short ones: counted, not kept
        await asyncio.sleep(0.05)

    asyncio.run(main())
    by_name = {("busy" if "busy" in s.what else "blocked" if "blocked" in s.what else s.what): s for s in meter.found}
    assert set(by_name) == {"busy", "blocked"}, meter.found
    assert 29 <= by_name["busy"].ms < 200 and by_name["busy"].cpu_ms >= 25  # its own work
    assert 29 <= by_name["blocked"].ms < 200 and by_name["blocked"].cpu_ms < 10  # it waited
    assert meter.callbacks >= 22
    assert meter.summary()["stalls"][0]["ms"] >= 29


def test_a_garbage_collection_is_a_stall_too(meter: LoopStallMeter) -> None:
    meter.threshold_s = 0.0
    gc.collect()
    assert any(s.what == "gc generation 2" for s in meter.found)


def test_off_unless_the_environment_names_a_threshold() -> None:
    assert loop_stalls_from_env({}) is None
    assert loop_stalls_from_env({"LAB_LOOP_STALLS": "nonsense"}) is None
    meter = loop_stalls_from_env({"LAB_LOOP_STALLS": "3"})
    assert meter is not None and meter.threshold_s == pytest.approx(0.003)


def test_a_stall_carries_the_threads_run_queue_time_and_switches(meter: LoopStallMeter) -> None:
    async def main() -> None:
        asyncio.get_running_loop().call_soon(blocked, 0.03)
        await asyncio.sleep(0.05)

    asyncio.run(main())
    (found,) = [s for s in meter.found if "blocked" in s.what]
    # a sleep leaves its CPU at least once and is not queued for most of its length
    assert found.switches is not None and found.switches >= 1
    assert found.queued_ms is not None and found.queued_ms < found.ms / 2


def test_a_loop_woken_late_from_its_timer_is_a_stall_though_no_callback_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asyncio.Handle, "_run", asyncio.Handle._run)
    before = list(gc.callbacks)
    meter = LoopStallMeter(threshold_s=0.01)

    async def main() -> None:
        selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
        select = selector.select

        def late(timeout: float | None = None) -> list:
            if timeout:  # asleep 30 ms past the timer, as when the woken thread waits for a core
                time.sleep(timeout + 0.03)
                return []
            return select(timeout)

        selector.select = late
        meter.install()
        await asyncio.sleep(0.02)

    try:
        asyncio.run(main())
    finally:
        gc.callbacks[:] = before
    late_ones = [s for s in meter.found if s.what == "woke late from its timer"]
    assert late_ones and all(29 <= s.ms < 200 for s in late_ones), meter.found


def test_a_task_step_is_named_by_its_coroutine(meter: LoopStallMeter) -> None:
    async def hog() -> None:
        busy(0.02)

    async def main() -> None:
        await asyncio.ensure_future(hog())

    asyncio.run(main())
    assert any("Task step" in s.what and "hog" in s.what for s in meter.found), meter.found
