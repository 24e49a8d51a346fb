"""One run at a time: the run lock names its holder, refuses a second run, and survives a killed holder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from lab.control.preflight import PreflightError, RunLock

HOLD = """
import sys, time
from pathlib import Path
from lab.control.preflight import RunLock
lock = RunLock(Path(sys.argv[1])).acquire("held-by-child")
print("held", flush=True)
time.sleep(60)
"""


def hold(path) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_the_lock_records_its_holder_and_is_released(tmp_path):
    path = tmp_path / "run.lock"
    lock = RunLock(path).acquire("baseline")
    holder = json.loads(path.read_text())
    assert holder["pid"] == os.getpid() and holder["scenario"] == "baseline"
    lock.release()
    assert path.read_text() == ""
    RunLock(path).acquire("again").release()


def test_a_second_run_is_refused_naming_the_holder(tmp_path):
    path = tmp_path / "run.lock"
    child = hold(path)
    try:
        expected = rf"another run holds the lab: pid {child.pid} \(scenario held-by-child"
        with pytest.raises(PreflightError, match=expected):
            RunLock(path).acquire("mine")
    finally:
        child.kill()
        child.wait()


def test_a_killed_holder_leaves_a_stale_lock_that_is_taken_over(tmp_path):
    path = tmp_path / "run.lock"
    child = hold(path)
    child.kill()  # SIGKILL: no chance to clean up, the file still names it
    child.wait()
    assert json.loads(path.read_text())["pid"] == child.pid
    time.sleep(0.05)
    lock = RunLock(path).acquire("mine")
    assert lock.stale is not None and lock.stale["pid"] == child.pid
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()
