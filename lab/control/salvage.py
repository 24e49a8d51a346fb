"""After a fault, restore what survives of the lab, so that `make up` (which only starts what is
missing) leaves it in its initial state.

`Lab.reset` stops at the first container that is gone. Here each part is restored on its own:
every surviving router loses its impairments, blackhole, captures and conntrack entries, and a
client container that is not running is put back on its start networks (the Engine keeps a
stopped container's attachments and restores them when it starts again).
"""

from __future__ import annotations

import contextlib

import docker.errors

from lab.control import impair
from lab.control.actions import Lab
from lab.control.docker_api import client
from lab.topology.model import CLIENT


def restore(lab: Lab) -> list[str]:
    """Restore the surviving parts of the lab; returns the parts that could not be (one line each)."""
    failed = []
    for network in lab.topology.gateways:
        try:
            impair.reset(lab, network)
        except Exception as exc:  # a gone router or interface: docker-py's errors as well as ActionError
            failed.append(f"{network}: {str(exc).strip()[:120] or exc.__class__.__name__}")
    for router in lab.topology.routers:
        with contextlib.suppress(Exception):
            lab.ctr(router).exec_run(["sh", "-c", "pkill tcpdump; conntrack -F >/dev/null 2>&1; true"])
    with contextlib.suppress(Exception):
        reattach_stopped_client(lab)
    return failed


def reattach_stopped_client(lab: Lab) -> bool:
    """A client container that is not running goes back on its start networks; True when it was moved."""
    try:
        target = client().containers.get(lab.ctr(CLIENT).id)
    except docker.errors.NotFound:
        return False
    if target.status == "running":
        return False  # a running client is the business of Lab.reset
    topology = lab.topology
    start = set(topology.client_start_networks)
    by_docker_name = {n.docker_name: n.name for n in topology.networks.values()}
    attached = {by_docker_name.get(name, name) for name in target.attrs["NetworkSettings"]["Networks"]}
    for network in attached - start:
        docker_name = topology.networks[network].docker_name if network in topology.networks else network
        with contextlib.suppress(docker.errors.APIError):
            client().api.disconnect_container_from_network(target.id, docker_name, force=True)
    for network in start - attached:
        client().api.connect_container_to_network(target.id, topology.networks[network].docker_name,
                                                  ipv4_address=topology.client_addresses[network],
                                                  ipv6_address=topology.client_addresses6.get(network))
    return attached != start
