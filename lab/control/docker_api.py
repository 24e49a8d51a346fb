"""Docker access through docker-py, with one-line errors for what users get wrong."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

import docker
import docker.errors
from docker.models.containers import Container

from lab.errors import LabError
from lab.topology.model import Topology

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


class DockerUnavailable(LabError, RuntimeError):
    """The daemon does not answer, or a lab container is not running."""


class CommandFailed(LabError, RuntimeError):
    """A command run in a container exited non-zero; the message quotes the end of its output."""


@lru_cache(maxsize=1)
def client() -> docker.DockerClient:
    try:
        api = docker.from_env(version="auto", timeout=60)
        api.ping()
        return api
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(
            f"cannot reach the Docker daemon ({exc.__class__.__name__}): is it running, and may this user use it?"
        ) from None


def containers(topology: Topology, all_states: bool = False) -> dict[str, Container]:
    """The lab's containers by service name, found by the Compose project label."""
    found = client().containers.list(all=all_states, filters={"label": f"{PROJECT_LABEL}={topology.project}"})
    return {c.labels.get(SERVICE_LABEL, c.name): c for c in found}


def container(topology: Topology, service: str) -> Container:
    found = containers(topology).get(service)
    if found is None:
        raise DockerUnavailable(f"the {service} container is not running: run `make up`")
    return found


def subnet_conflicts(topology: Topology) -> list[str]:
    """Docker networks outside the lab whose subnets overlap the lab's (the lab could not start)."""
    ours = {n.docker_name for n in topology.networks.values()}
    conflicts = []
    for network in client().networks.list():
        if network.name in ours:
            continue
        for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
            subnet = config.get("Subnet")
            if not subnet:
                continue
            theirs = ipaddress.ip_network(subnet)
            for lab_net in topology.networks.values():
                for ours_subnet in (lab_net.subnet, lab_net.subnet6):
                    mine = ipaddress.ip_network(ours_subnet) if ours_subnet else None
                    if mine is not None and mine.version == theirs.version and mine.overlaps(theirs):
                        conflicts.append(f"{lab_net.name} {ours_subnet} overlaps Docker network {network.name} "
                                         f"{subnet}")
    return conflicts


def exec_checked(target: Container, command: list[str], timeout_hint: str = "") -> str:
    """Run a command in a container; raise :class:`CommandFailed` with its output when it fails."""
    code, output = target.exec_run(command, demux=False)
    text = output.decode(errors="replace") if output else ""
    if code != 0:
        raise CommandFailed(f"{target.name}: `{' '.join(command)}` failed ({code}): {text.strip()[-300:]}")
    return text
