"""The server farm on the live lab: start and remove it, switch the balancer's mode, read its flows.

The balancer and the replicas run only for what needs them (compose profile ``farm``, as the
adversaries do): :func:`ensure_up`, then :func:`remove`. :func:`set_mode` replaces the
balancer's rules (``lab.endpoints.balancer.lb --apply``) and forgets its flows. :func:`flows`
is the balancer's conntrack table, parsed: which client tuple the kernel sent to which replica,
the evidence of where each new flow landed.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from lab.control.base import ActionError
from lab.control.docker_api import container, containers, exec_checked
from lab.topology.farm import Farm, farm_of
from lab.topology.model import Topology

_ENTRY = re.compile(r"src=(?P<src>\S+) dst=(?P<dst>\S+) sport=(?P<sport>\d+) dport=(?P<dport>\d+)"
                    r".*?src=(?P<rsrc>\S+) dst=\S+ sport=\d+ dport=\d+")


@dataclass(frozen=True)
class Flow:
    client: str  # the client's tuple as the balancer sees it (post-NAT), "ip:port"
    replica: str  # the replica's address the flow was DNATed to


def parse_flows(conntrack_list: str, farm: Farm) -> list[Flow]:
    """``conntrack -L -p udp`` of the balancer -> the flows to the farm's address (pure)."""
    found = []
    for line in conntrack_list.splitlines():
        m = _ENTRY.search(line)
        if m and m["dst"] == farm.address and int(m["dport"]) == farm.port:
            found.append(Flow(f"{m['src']}:{m['sport']}", m["rsrc"]))
    return found


def require(topology: Topology) -> Farm:
    farm = farm_of(topology)
    if farm is None:
        raise ActionError("compose.yaml defines no farm (x-lab.farm)")
    return farm


def _compose(*args: str) -> subprocess.CompletedProcess:
    from lab.topology.load import compose_command

    return subprocess.run([*compose_command(), *args], capture_output=True, text=True, timeout=180)


def running(topology: Topology) -> bool:
    farm = farm_of(topology)
    return farm is not None and all(name in containers(topology) for name in farm.services)


def ensure_up(topology: Topology) -> Farm:
    """Start the balancer and the replicas and wait until they are healthy."""
    farm = require(topology)
    if not running(topology):
        result = _compose("--profile", farm.profile, "up", "-d", "--wait", "--no-deps", *farm.services)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
            raise ActionError(f"starting the farm (profile {farm.profile}): {last}")
    return farm


def remove(topology: Topology) -> None:
    farm = farm_of(topology)
    if farm is not None:
        _compose("--profile", farm.profile, "rm", "-s", "-f", *farm.services)


def set_mode(topology: Topology, mode: str) -> None:
    """Install ``hash`` or ``cid`` on the balancer and forget every flow."""
    farm = require(topology)
    exec_checked(container(topology, farm.balancer), ["python", "-m", "lab.endpoints.balancer.lb", "--apply", mode])


def flows(topology: Topology) -> list[Flow]:
    farm = require(topology)
    return parse_flows(exec_checked(container(topology, farm.balancer), ["conntrack", "-L", "-p", "udp"]), farm)
