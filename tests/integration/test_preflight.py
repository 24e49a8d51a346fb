"""Failures before or around a run are named in one line (exit 2), not dressed up as failed checks.

A run checks the daemon, every container's health and the run lock before it touches anything.
Faults during a run (a container killed, restarted, a bridge removed) are in test_faults.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from lab.control import readiness
from lab.control.docker_api import containers
from lab.topology.load import ROOT

LOCK = ROOT / "artifacts" / ".runtime" / "run.lock"


def lab_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def one_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    assert "Traceback" not in result.stderr and "run_completed" not in result.stdout  # no report table
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def wait_healthy(topology, timeout: float = 60) -> None:
    """Every service running again and ready (its compose.yaml readiness command succeeds)."""
    readiness.wait_ready(topology, timeout)


def wait_for_lock(pid: int, timeout: float = 30) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            holder = json.loads(LOCK.read_text() or "{}")
        except (OSError, json.JSONDecodeError):
            holder = {}
        if holder.get("pid") == pid:
            return holder
        time.sleep(0.1)
    raise AssertionError(f"pid {pid} never took the run lock")


def test_an_unreachable_daemon_is_one_line_before_any_run():
    result = lab_cli("scenario", "run", "baseline", env={"DOCKER_HOST": "unix:///tmp/no-docker-here.sock"})
    one_line(result, "cannot reach the Docker daemon")


def test_a_stopped_router_is_named_and_nothing_is_touched(lab):
    router = containers(lab)["carrier-nat"]
    client_before = containers(lab)["client"].attrs["NetworkSettings"]["Networks"].keys()
    router.stop(timeout=2)
    try:
        result = lab_cli("scenario", "run", "baseline")
        one_line(result, "the carrier-nat container is exited", "make up")
        assert containers(lab)["client"].attrs["NetworkSettings"]["Networks"].keys() == client_before
    finally:
        router.start()
        wait_healthy(lab)


def test_a_second_run_is_refused_while_one_holds_the_lab(lab):
    first = subprocess.Popen([sys.executable, "-m", "lab", "scenario", "run", "baseline"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        holder = wait_for_lock(first.pid)
        assert holder["scenario"] == "baseline"
        second = lab_cli("scenario", "run", "nat-rebinding")
        one_line(second, f"another run holds the lab: pid {first.pid} (scenario baseline")
        out, err = first.communicate(timeout=180)
        assert first.returncode == 0, out[-2000:] + err  # the first run was not disturbed
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
