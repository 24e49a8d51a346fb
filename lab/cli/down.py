"""`python -m lab down`: remove the lab's containers and networks; artifacts stay."""

from __future__ import annotations

import argparse
import contextlib
import subprocess

from lab.control import foreign, host6
from lab.errors import LabError
from lab.topology.farm import farm_of
from lab.topology.load import compose_command, load_topology

HELP = "remove the lab's containers and networks (artifacts are kept)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    profiles: list[str] = []
    project = "quic-lab"
    with contextlib.suppress(LabError):  # no daemon: compose says so below
        topology = load_topology()
        project = topology.project
        # The victim and the attacker of an interrupted adversary run are in a profile of their own.
        profiles = ["--profile", topology.adversary.profile] if topology.adversary else []
        # So are the balancer and the replicas of an interrupted farm run.
        farm = farm_of(topology)
        profiles += ["--profile", farm.profile] if farm else []
        # Foreign endpoints of an interrupted black-box run live in the lab's namespaces, outside Compose.
        foreign.remove_all(topology.project)
    result = subprocess.run([*compose_command(), *profiles, "down", "--remove-orphans", "-t", "2"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise LabError(f"docker compose down failed: {result.stderr.strip().splitlines()[-1:]}")
    print("==> lab removed (artifacts/ kept)")
    try:  # the host's IPv6 guard and forwarding (lab.control.host6), after the networks are gone
        note = host6.uninstall(host6.other_networks_with_ipv6(project))
    except (LabError, RuntimeError, OSError) as exc:
        note = f"note: the host's IPv6 guard was not removed: {exc}"
    if note:
        print(note)
    return 0
