"""Fixtures for integration tests: the real lab, brought up once per session.

The session starts the lab when it is not running (as `make up` does), and at the end takes it
down and proves that `down` leaves no lab container or network behind, unless LAB_KEEP=1.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lab.control.docker_api import PROJECT_LABEL, client, containers
from lab.topology.load import ROOT, load_topology


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def run_lab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="session")
def topology():
    return load_topology()


@pytest.fixture(scope="session")
def lab(topology):
    result = run_lab("up")
    assert result.returncode == 0, result.stderr
    yield topology
    if os.environ.get("LAB_KEEP") == "1":
        return
    result = run_lab("down")
    assert result.returncode == 0, result.stderr
    api = client()
    left = api.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={topology.project}"})
    nets = api.networks.list(filters={"label": f"{PROJECT_LABEL}={topology.project}"})
    assert not left and not nets, f"`lab down` left {left} {nets}"


@pytest.fixture
def ctr(lab):
    """Service name -> running container, looked up for each test: a fault test's `lab up` recreates
    the containers it killed, so handles from an earlier test may name containers that are gone."""
    return containers(lab)


def sh(container, command: str) -> str:
    code, output = container.exec_run(["sh", "-c", command])
    text = output.decode(errors="replace")
    assert code == 0, f"{container.name}: {command}: {text}"
    return text
