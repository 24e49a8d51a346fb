"""The server farm of compose.yaml's ``x-lab.farm`` (profile ``farm``): its address, balancer and replicas.

Pure, like :mod:`lab.topology.model`: read from the resolved config the topology keeps in
``extra["config"]``. ``docker compose config`` leaves out a profile's services and the networks
only they use, so every address the controller needs is in ``x-lab.farm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.endpoints.balancer.rules import Backend, Balancer
from lab.topology.model import Topology, TopologyError


@dataclass(frozen=True)
class Farm:
    address: str  # the farm's one public address: the balancer's on the internet network (the VIP)
    port: int
    balancer: str  # its service
    balancer_inside: str  # its address on the farm network: the replicas' route back
    replicas: tuple[Backend, ...]
    profile: str = "farm"
    preferred_port: int | None = None  # the port whose connections get the replica's unicast address

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address a client may reach the farm at: its own, then the replicas' unicast ones."""
        return (self.address, *(r.unicast for r in self.replicas if r.unicast))

    @property
    def services(self) -> tuple[str, ...]:
        return (self.balancer, *(r.name for r in self.replicas))

    def as_balancer(self) -> Balancer:
        return Balancer(self.address, self.port, self.replicas, preferred_port=self.preferred_port)

    def replica_at(self, address: str) -> Backend | None:
        """The replica with that farm-side or unicast address."""
        return next((r for r in self.replicas if address in (r.address, r.unicast)), None)


def farm_from_config(config: dict[str, Any]) -> Farm | None:
    """The farm of a resolved compose config; None when ``x-lab`` defines none."""
    spec = (config.get("x-lab") or {}).get("farm")
    if not spec:
        return None
    try:
        replicas = tuple(Backend(name, str(r["address"]), int(r["server_id"]), str(r.get("unicast") or ""))
                         for name, r in spec["replicas"].items())
        preferred = int(spec["preferred_port"]) if spec.get("preferred_port") else None
        farm = Farm(str(spec["address"]), int(spec["port"]), str(spec["balancer"]["service"]),
                    str(spec["balancer"]["address"]), replicas, preferred_port=preferred)
        farm.as_balancer()  # distinct server IDs, at least one replica
        return farm
    except (KeyError, TypeError, ValueError) as exc:
        raise TopologyError(f"compose.yaml: x-lab.farm: missing or malformed field {exc}") from None


def farm_of(topology: Topology) -> Farm | None:
    return farm_from_config(topology.extra.get("config") or {})
