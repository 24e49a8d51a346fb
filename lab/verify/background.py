"""Judging finished runs in the background while the next run plays (`scenario run A B C`).

The lab measures gaps of milliseconds on a machine of two cores, so the judge must take only
what the playing run leaves: it runs in worker processes in the SCHED_IDLE class (allowed
unprivileged; a runnable normal task always goes first), and its tshark containers run under
``chrt -i 0`` with the smallest CPU weight (:mod:`lab.verify.tshark`, ``LAB_JUDGE_IDLE``).

The worker hands back the verdict without its decoded packets and timeline (the printed table and
the summary need neither; the reports written in the run directory have them).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from lab.observe.timeline import Timeline
from lab.verify.judge import Verdict, judge_and_report
from lab.verify.tshark import IDLE_ENV

PIPELINE_ENV = "LAB_PIPELINE"  # "1": as --pipeline


def pipelining(runs: int, asked: bool = False) -> bool:
    """Whether a batch of ``runs`` is judged in the background: only when asked (``--pipeline`` or
    LAB_PIPELINE=1). Not by default: measured, it disturbs the playing run despite the lowest priority
    (the baseline's noise floor, 4 runs x 2 batches each: median 18 ms alone, 40 ms while another
    run was judged; README "Catalogue time")."""
    return runs > 1 and (asked or os.environ.get(PIPELINE_ENV) == "1")


def _lowest_priority() -> None:
    """The worker's initializer: SCHED_IDLE for itself, and for the tshark containers it starts."""
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    os.environ[IDLE_ENV] = "1"


def judged(run_dir: Path, strict: bool) -> Verdict:
    """Judge and report one run (in the worker); the verdict without what the CLI does not print."""
    verdict = judge_and_report(run_dir, strict=strict)
    verdict.decoded = None
    verdict.timeline = Timeline()
    return verdict


WORKERS = 2  # one per core: the runs still unjudged when the last one has played are judged two at a time


class BackgroundJudge:
    """Worker processes that judge run directories, taken in the order they are given."""

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        # fork while the controller has no thread yet (cheap: the judge is imported already), else spawn.
        method = "fork" if threading.active_count() == 1 else "spawn"
        self._pool = ProcessPoolExecutor(max_workers=WORKERS, mp_context=multiprocessing.get_context(method),
                                         initializer=_lowest_priority)
        for _ in range(WORKERS):  # start the workers now, before the first run plays
            self._pool.submit(os.getpid)

    def submit(self, run_dir: Path) -> Future[Verdict]:
        return self._pool.submit(judged, Path(run_dir), self.strict)

    def result(self, future: Future[Verdict], run_dir: Path) -> Verdict:
        """The worker's verdict; judged here instead when the worker died (its reports are then rewritten)."""
        try:
            return future.result()
        except BrokenProcessPool:
            return judged(Path(run_dir), self.strict)

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)
