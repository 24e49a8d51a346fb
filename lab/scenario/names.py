"""The names a scenario may use, taken from the topology (pure: no Docker)."""

from __future__ import annotations

from lab.scenario.schema import TopologyNames
from lab.topology.model import Topology


def topology_names(topology: Topology) -> TopologyNames:
    from lab.control.impair import PROFILES

    initial = topology.client_start_networks
    return TopologyNames(
        networks=frozenset(topology.networks), client_networks=frozenset(topology.gateways),
        routers=frozenset(topology.routers), default_network=initial[0] if initial else None,
        port=topology.server_port, preferred_port=topology.server_preferred_port,
        profiles=frozenset(PROFILES),
    )
