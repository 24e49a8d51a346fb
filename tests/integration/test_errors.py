"""User mistakes and broken machines give one-line errors, never tracebacks, and change nothing."""

from __future__ import annotations

import os
import subprocess
import sys

from lab.control.docker_api import client
from lab.topology.load import ROOT
from tests.integration.conftest import sh


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
    for env, fragment in (({"HOME_SUBNET": "999.1.1.0/24"}, "HOME_SUBNET='999.1.1.0/24' (from the environment)"),
                          ({"CELLULAR_SUBNET": home}, "overlap"),
                          # refused only once Compose has resolved compose.yaml: the real `docker compose config`
                          ({"SERVER_IP": "10.203.100.1"}, "(set by SERVER_IP) is internet's bridge's own address"),
                          ({"CLIENT_HOME_IP": "10.203.1.2"}, "10.203.1.2 on home is given to 2 hosts"),
                          ({"LAB_IMAGE": "Bad Image!"}, "LAB_IMAGE='Bad Image!'")):
        result = lab_cli("up", env=env)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert fragment in result.stderr
        assert {name: (c.id, c.status) for name, c in containers(lab).items()} == before
        assert {n.name for n in client().networks.list()} == networks


def router_state(ctr) -> dict[str, str]:
    """Every router's qdiscs and firewall rules (counters dropped), the client's routes: what impair and up change."""
    state = {}
    for name, container in sorted(ctr.items()):
        if name.endswith(("router", "nat")):
            state[name] = sh(container, "{ tc qdisc show; iptables-save; } | grep -v '^#' "
                                        "| sed 's/\\[[0-9]*:[0-9]*\\]//'")
    state["client"] = sh(ctr["client"], "ip rule; ip route show table all")
    return state


def test_a_refused_impair_or_run_changes_nothing(lab, ctr):
    before, runs = router_state(ctr), {p.name for p in (ROOT / "artifacts").glob("*/*")}
    for args, fragment in ((("impair", "set", "home", "--jitter", "5ms"), "--jitter '5ms': needs a delay"),
                           (("impair", "set", "home", "--delay=-5ms"), "--delay: must not be negative"),
                           (("impair", "set", "wifi", "--loss", "3%"), "NETWORK 'wifi' is not a client network"),
                           (("scenario", "run", "nat-rebinding", "--server-image", ""), "--server-image: empty"),
                           (("up", "--timeout", "0"), "--timeout 0: out of range")):
        result = lab_cli(*args)
        assert result.returncode == 2, (args, result.stdout + result.stderr)
        assert result.stderr.splitlines() == [result.stderr.strip()] and fragment in result.stderr, result.stderr
    assert router_state(ctr) == before
    assert {p.name for p in (ROOT / "artifacts").glob("*/*")} == runs, "a refused run left a run directory"
