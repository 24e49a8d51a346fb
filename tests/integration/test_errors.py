"""User mistakes and broken machines give one-line errors, never tracebacks, and change nothing."""

from __future__ import annotations

import os
import subprocess
import sys

from lab.control.docker_api import client
from lab.topology.load import ROOT


def lab_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_docker_daemon_unreachable_is_one_line():
    result = lab_cli("status", env={"DOCKER_HOST": "unix:///tmp/no-docker-here.sock"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "cannot reach the Docker daemon" in result.stderr


def test_subnet_already_taken_is_refused_before_anything_changes(lab):
    clash = client().networks.create("quic-lab-test-clash", driver="bridge",
                                     ipam={"Config": [{"Subnet": "10.250.1.0/24"}]})
    try:
        before = {n.name for n in client().networks.list()}
        result = lab_cli("up", env={"HOME_SUBNET": "10.250.1.0/24", "HOME_ROUTER_LAN_IP": "10.250.1.2",
                                    "CLIENT_HOME_IP": "10.250.1.10"})
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert "subnet already taken" in result.stderr and "10.250.1.0/24" in result.stderr
        assert {n.name for n in client().networks.list()} == before
    finally:
        clash.remove()


def test_unknown_scenario_names_the_known_ones():
    result = lab_cli("scenario", "run", "wifi-to-satellite")
    assert result.returncode == 2
    assert "no scenario named 'wifi-to-satellite'; known:" in result.stderr
    assert "wifi-to-cellular" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_topology_override_leaves_the_running_lab_as_it_was(lab):
    from lab.control.docker_api import containers

    before = {name: (c.id, c.status) for name, c in containers(lab).items()}
    networks = {n.name for n in client().networks.list()}
    home = lab.networks["home"].subnet
    for env, fragment in (({"HOME_SUBNET": "999.1.1.0/24"}, "subnet '999.1.1.0/24' is not valid"),
                          ({"CELLULAR_SUBNET": home}, "overlap")):
        result = lab_cli("up", env=env)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert fragment in result.stderr
        assert {name: (c.id, c.status) for name, c in containers(lab).items()} == before
        assert {n.name for n in client().networks.list()} == networks
