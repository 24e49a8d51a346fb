"""The topology model: networks, services and addresses, built from Compose's resolved config.

Pure: `topology_from_config` takes the dict that `docker compose config --format json` prints
(with every ${VAR:-default} already resolved by Compose itself), so tests need no Docker.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from lab import nat_behaviour
from lab.errors import LabError
from lab.nat_behaviour import NatBehaviour
from lab.topology.overrides import KINDS

CLIENT = "client"
SERVER = "server"


@dataclass(frozen=True)
class Network:
    name: str  # the name in compose.yaml (home, cellular, ...)
    docker_name: str  # the engine's name (project_name)
    subnet: str
    bridge: str | None = None
    masquerade: bool = True
    gateway: str | None = None  # the bridge's own address; None: Docker's default, the subnet's first host

    def contains(self, address: str) -> bool:
        return ipaddress.ip_address(address) in ipaddress.ip_network(self.subnet)


@dataclass(frozen=True)
class Service:
    name: str
    addresses: dict[str, str]  # network name -> IPv4 address
    role: str = ""
    cap_add: tuple[str, ...] = ()
    privileged: bool = False


@dataclass(frozen=True)
class Gateway:
    network: str
    router: str
    address: str


@dataclass(frozen=True)
class Adversary:
    """The victim and attacker hosts of the adversary scenarios (compose profile ``adversary``)."""

    victim: str
    attacker: str
    tunnel_port: int
    network: str = "internet"
    profile: str = "adversary"
    services: tuple[str, ...] = ("victim", "attacker")


@dataclass(frozen=True)
class Topology:
    project: str
    networks: dict[str, Network]
    services: dict[str, Service]
    gateways: dict[str, Gateway]  # client network -> its router
    client_addresses: dict[str, str]  # network -> the client's address when it joins it
    server_address: str
    server_preferred_address: str
    server_port: int
    server_preferred_port: int
    extra: dict[str, Any] = field(default_factory=dict)
    adversary: Adversary | None = None  # None: compose.yaml defines no attacker
    variables: dict[str, str] = field(default_factory=dict)  # field path -> the compose variable setting it
    # router -> its NAT behaviour (its service's NAT_* environment and conntrack sysctls); a router
    # whose values are wrong has the default here and a problem in validate.
    nat: dict[str, NatBehaviour] = field(default_factory=dict)

    @property
    def client_networks(self) -> list[str]:
        return list(self.gateways)

    @property
    def client_start_networks(self) -> tuple[str, ...]:
        """The client networks the client is attached to in compose.yaml (where a run starts by default)."""
        return tuple(n for n in self.services[CLIENT].addresses if n in self.gateways)

    @property
    def routers(self) -> list[str]:
        return [g.router for g in self.gateways.values()]

    def router_public_address(self, router: str) -> str:
        return self.services[router].addresses["internet"]

    def network_of(self, address: str) -> str | None:
        for network in self.networks.values():
            if network.contains(address):
                return network.name
        return None

    def address_on(self, network: str, host: int) -> str:
        """The address with host number `host` in `network` (for renumbering)."""
        subnet = ipaddress.ip_network(self.networks[network].subnet)
        return str(subnet.network_address + host)


class TopologyError(LabError, ValueError):
    """compose.yaml lacks what the lab needs (a field, a network)."""


def _where(variable: str | None) -> str:
    return f" (set by {variable})" if variable else ""


def validate(topology: Topology) -> list[str]:
    """Everything wrong with a topology, one line each, before anything is created (pure).

    Subnets must be IPv4 networks Docker can create, and no two lab subnets may overlap. Every
    address (services, the client's per-network addresses, gateways, the server's, the adversary's)
    must be a host of its network other than the bridge's own address, and no two hosts may share
    one. A problem names the variable that sets the field when compose.yaml has one
    (``topology.variables``).
    """
    problems: list[str] = []
    variable = topology.variables.get
    subnets: dict[str, ipaddress.IPv4Network] = {}
    for network in topology.networks.values():
        field_path = f"networks.{network.name}.ipam.config.0.subnet"
        reason = KINDS["subnet"].check(network.subnet)
        if reason:
            problems.append(f"network {network.name}: subnet {network.subnet!r}{_where(variable(field_path))}: "
                            f"{reason}; allowed: {KINDS['subnet'].allowed}")
        else:
            subnets[network.name] = ipaddress.IPv4Network(network.subnet)
    names = sorted(subnets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if subnets[a].overlaps(subnets[b]):
                set_by = [_where(variable(f"networks.{n}.ipam.config.0.subnet")) for n in (a, b)]
                problems.append(f"networks {a} ({subnets[a]}{set_by[0]}) and {b} ({subnets[b]}{set_by[1]}) overlap: "
                                "every lab network needs a subnet of its own")

    owners: dict[tuple[str, str], dict[str, str]] = {}  # (network, address) -> owner -> what, for duplicates

    def inside(what: str, network: str, address: str, field_path: str, owner: str) -> None:
        where = _where(variable(field_path))
        if network not in topology.networks:
            problems.append(f"{what}: unknown network {network!r} (networks: {', '.join(sorted(topology.networks))})")
            return
        reason = KINDS["address"].check(address)
        if reason:
            problems.append(f"{what}: {address!r}{where}: {reason}; allowed: {KINDS['address'].allowed}")
            return
        subnet = subnets.get(network)
        if subnet is None:
            return
        parsed = ipaddress.IPv4Address(address)
        gateway = ipaddress.IPv4Address(topology.networks[network].gateway or subnet.network_address + 1)
        if parsed not in subnet:
            problems.append(f"{what}: {address}{where} is not inside {network}'s subnet {subnet}")
        elif parsed in (subnet.network_address, subnet.broadcast_address, gateway):
            role = {subnet.network_address: "network address", subnet.broadcast_address: "broadcast address",
                    gateway: "bridge's own address (Docker's gateway)"}[parsed]
            problems.append(f"{what}: {address}{where} is {network}'s {role}; allowed: a host of {subnet} "
                            f"other than {subnet.network_address}, {gateway} and {subnet.broadcast_address}")
        else:
            owners.setdefault((network, address), {}).setdefault(owner, f"{what}{where}")

    for service in topology.services.values():
        for network, address in service.addresses.items():
            if address:
                inside(f"service {service.name} on {network}", network, address,
                       f"services.{service.name}.networks.{network}.ipv4_address", service.name)
    for network, address in topology.client_addresses.items():
        inside(f"x-lab.client_addresses.{network}", network, address, f"x-lab.client_addresses.{network}", CLIENT)
    for gateway in topology.gateways.values():
        inside(f"x-lab.gateways.{gateway.network} (router {gateway.router})", gateway.network, gateway.address,
               f"x-lab.gateways.{gateway.network}.address", gateway.router)
    for label, address in (("server.address", topology.server_address),
                           ("server.preferred_address", topology.server_preferred_address)):
        network = next((n for n, a in topology.services.get(SERVER, Service(SERVER, {})).addresses.items()
                        if a == address), None)
        if network is None:
            problems.append(f"x-lab.{label}: {address}{_where(variable(f'x-lab.{label}'))} is none of the "
                            "server's addresses")
    if topology.adversary is not None:
        for label, address in (("victim", topology.adversary.victim), ("attacker", topology.adversary.attacker)):
            inside(f"x-lab.adversary.{label}", topology.adversary.network, address, f"x-lab.adversary.{label}",
                   label)
    for router, error in _nat_problems(topology.extra.get("config") or {}, topology.routers).items():
        problems.append(f"services.{router}.{error}{_where(variable(f'services.{router}.{error.field}'))}")
    farm = (topology.extra.get("config") or {}).get("x-lab", {}).get("farm")
    if farm:  # its own network is left out of the config with its profile; its address is on internet's
        inside("x-lab.farm.address", "internet", str(farm.get("address", "")), "x-lab.farm.address", "balancer")
        for name, replica in (farm.get("replicas") or {}).items():
            if isinstance(replica, dict) and replica.get("unicast"):
                inside(f"x-lab.farm.replicas.{name}.unicast", "internet", str(replica["unicast"]),
                       f"x-lab.farm.replicas.{name}.unicast", name)
    for (network, address), by in owners.items():
        if len(by) > 1:
            problems.append(f"{address} on {network} is given to {len(by)} hosts: {'; '.join(by.values())}; "
                            "every host needs an address of its own")
    return problems


def _router_nat(config: dict[str, Any], router: str) -> NatBehaviour:
    spec = config["services"][router]
    return nat_behaviour.from_compose(spec.get("environment") or {}, spec.get("sysctls") or {})


def _nat_problems(config: dict[str, Any], routers: list[str]) -> dict[str, nat_behaviour.ComposeValueError]:
    problems = {}
    for router in routers:
        try:
            _router_nat(config, router)
        except nat_behaviour.ComposeValueError as exc:
            problems[router] = exc
    return problems


def topology_from_config(config: dict[str, Any], variables: dict[str, str] | None = None) -> Topology:
    """The topology of a resolved compose config; ``variables`` (field path -> variable) names the
    overrides in validate's problems (``lab.topology.overrides.field_variables``)."""
    try:
        lab = config["x-lab"]
        project = config["name"]
        networks = {}
        for name, spec in config["networks"].items():
            options = spec.get("driver_opts") or {}
            networks[name] = Network(
                name=name,
                docker_name=spec.get("name", f"{project}_{name}"),
                subnet=spec["ipam"]["config"][0]["subnet"],
                gateway=spec["ipam"]["config"][0].get("gateway"),
                bridge=options.get("com.docker.network.bridge.name"),
                masquerade=options.get("com.docker.network.bridge.enable_ip_masquerade", "true") != "false",
            )
        services = {}
        for name, spec in config["services"].items():
            addresses = {net: (attach or {}).get("ipv4_address", "") for net, attach in
                         (spec.get("networks") or {}).items()}
            services[name] = Service(
                name=name, addresses=addresses, role=(spec.get("environment") or {}).get("LAB_ROLE", ""),
                cap_add=tuple(spec.get("cap_add") or ()), privileged=bool(spec.get("privileged", False)),
            )
        gateways = {net: Gateway(net, g["router"], g["address"]) for net, g in lab["gateways"].items()}
        server = lab["server"]
        hostile = lab.get("adversary")
        adversary = None if not hostile else Adversary(str(hostile["victim"]), str(hostile["attacker"]),
                                                       int(hostile["tunnel_port"]))
        nat = {g.router: NatBehaviour() if g.router in _nat_problems(config, [g.router]) else
               _router_nat(config, g.router) for g in gateways.values()}
        return Topology(
            project=project, networks=networks, services=services, gateways=gateways, nat=nat,
            client_addresses=dict(lab["client_addresses"]),
            server_address=server["address"], server_preferred_address=server["preferred_address"],
            server_port=int(server["port"]), server_preferred_port=int(server["preferred_port"]),
            extra={"config": config}, adversary=adversary, variables=dict(variables or {}),
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise TopologyError(f"compose.yaml: missing or malformed field {exc}") from None
