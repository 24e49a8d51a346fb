"""The lab's topology, read from compose.yaml (the single source of truth)."""

from lab.topology.model import Network, Service, Topology, topology_from_config

__all__ = ["Network", "Service", "Topology", "topology_from_config"]
