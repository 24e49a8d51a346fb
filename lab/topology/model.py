"""The topology model: networks, services and addresses, built from Compose's resolved config.

Pure: `topology_from_config` takes the dict that `docker compose config --format json` prints
(with every ${VAR:-default} already resolved by Compose itself), so tests need no Docker.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
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
    subnet6: str | None = None  # the network's IPv6 ULA (enable_ipv6); None: IPv4 only
    gateway6: str | None = None  # the bridge's own IPv6 address; None: the subnet's first host (::1)

    def contains(self, address: str) -> bool:
        parsed = ipaddress.ip_address(address)
        return any(parsed in ipaddress.ip_network(subnet) for subnet in (self.subnet, self.subnet6) if subnet)

    @property
    def bridge_address6(self) -> str | None:
        """The host's own IPv6 address on this bridge (Docker's IPv6 gateway)."""
        if not self.subnet6:
            return None
        return self.gateway6 or str(ipaddress.ip_network(self.subnet6).network_address + 1)


@dataclass(frozen=True)
class Service:
    name: str
    addresses: dict[str, str]  # network name -> IPv4 address
    addresses6: dict[str, str] = field(default_factory=dict)  # network name -> IPv6 address (given ones)
    role: str = ""
    cap_add: tuple[str, ...] = ()
    privileged: bool = False


@dataclass(frozen=True)
class Gateway:
    network: str
    router: str
    address: str
    address6: str | None = None  # the router's IPv6 address on the client network (the client's IPv6 gateway)
    ipv6_only: bool = False  # the client flushes its IPv4 address there and reaches IPv4 through its CLAT


@dataclass(frozen=True)
class Nat64:
    """464XLAT (RFC 6877) of an IPv6-only client network: the router's NAT64 and the client's CLAT."""

    router: str
    prefix: str  # the NAT64's /96 (RFC 6052): an IPv4 host a.b.c.d is prefix::a.b.c.d
    pool: str  # the NAT64's IPv4 pool, NATed out of the router's WAN
    clat_prefix: str  # the /64 delegated to the client's CLAT (RFC 6877 §6.3)
    clat_ipv4: str = "192.0.0.1"  # RFC 7335: the host's IPv4 address behind its CLAT
    clat_device: str = "clat"

    @property
    def clat_address6(self) -> str:
        """The CLAT's IPv6 address: the delegated /64's first host."""
        return str(ipaddress.ip_network(self.clat_prefix).network_address + 1)

    def synthesize(self, ipv4: str) -> str:
        """prefix::a.b.c.d for an IPv4 host (RFC 6052 §2.2, a /96)."""
        base = int(ipaddress.ip_network(self.prefix).network_address)
        return str(ipaddress.IPv6Address(base + int(ipaddress.IPv4Address(ipv4))))


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
    client_addresses6: dict[str, str] = field(default_factory=dict)  # network -> the client's IPv6 address
    server_address6: str | None = None
    server_preferred_address6: str | None = None
    nat64: Nat64 | None = None

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

    def router_public_address6(self, router: str) -> str | None:
        return self.services[router].addresses6.get("internet")

    def network_of(self, address: str) -> str | None:
        for network in self.networks.values():
            if network.contains(address):
                return network.name
        return None

    def address_on(self, network: str, host: int, version: int = 4) -> str:
        """The address with host number `host` in `network` (for renumbering)."""
        net = self.networks[network]
        subnet = ipaddress.ip_network(net.subnet if version == 4 else net.subnet6 or "")
        return str(subnet.network_address + host)


class TopologyError(LabError, ValueError):
    """compose.yaml lacks what the lab needs (a field, a network)."""


def _where(variable: str | None) -> str:
    return f" (set by {variable})" if variable else ""


def _overlaps(subnets: dict[str, Any], set_by: Callable[[str], str], family: str) -> list[str]:
    """One line per pair of lab subnets that overlap; ``set_by`` names the variable behind a network's."""
    names = sorted(subnets)
    return [f"networks {a} ({subnets[a]}{set_by(a)}) and {b} ({subnets[b]}{set_by(b)}) overlap{family}: "
            "every lab network needs a subnet of its own"
            for i, a in enumerate(names) for b in names[i + 1:] if subnets[a].overlaps(subnets[b])]


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
    problems += _overlaps(subnets, lambda n: _where(variable(f"networks.{n}.ipam.config.0.subnet")), "")

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
    return problems + validate6(topology)


def _pool6_path(topology: Topology, network: str) -> str:
    """The dotted path of a network's IPv6 pool in compose.yaml (the entry after the IPv4 one)."""
    pools = (topology.extra.get("config") or {}).get("networks", {}).get(network, {}).get("ipam", {}).get("config", [])
    index = next((i for i, p in enumerate(pools) if ":" in str(p.get("subnet", ""))), 1)
    return f"networks.{network}.ipam.config.{index}.subnet"


def validate6(topology: Topology) -> list[str]:
    """The IPv6 half of ``validate``: ULA subnets that do not overlap, and every IPv6 address a host
    of its network's /64 other than the subnet-router anycast (::) and the bridge's own (Docker's
    gateway, ::1 by default), given to one host only."""
    problems: list[str] = []
    variable = topology.variables.get
    subnets: dict[str, ipaddress.IPv6Network] = {}
    for network in topology.networks.values():
        if network.subnet6 is None:
            continue
        path = _pool6_path(topology, network.name)
        reason = KINDS["subnet6"].check(network.subnet6)
        if reason:
            problems.append(f"network {network.name}: IPv6 subnet {network.subnet6!r}{_where(variable(path))}: "
                            f"{reason}; allowed: {KINDS['subnet6'].allowed}")
        else:
            subnets[network.name] = ipaddress.IPv6Network(network.subnet6)
    problems += _overlaps(subnets, lambda n: _where(variable(_pool6_path(topology, n))), " (IPv6)")
    owners: dict[tuple[str, str], dict[str, str]] = {}

    def inside(what: str, network: str, address: str, path: str, owner: str) -> None:
        where = _where(variable(path))
        if network not in topology.networks:
            problems.append(f"{what}: unknown network {network!r} (networks: {', '.join(sorted(topology.networks))})")
            return
        reason = KINDS["address6"].check(address)
        if reason:
            problems.append(f"{what}: {address!r}{where}: {reason}; allowed: {KINDS['address6'].allowed}")
            return
        if topology.networks[network].subnet6 is None:
            problems.append(f"{what}: {address}{where}: network {network} has no IPv6 subnet (enable_ipv6 and a "
                            "second ipam.config entry)")
            return
        subnet = subnets.get(network)
        if subnet is None:
            return
        parsed = ipaddress.IPv6Address(address)
        gateway = ipaddress.IPv6Address(topology.networks[network].bridge_address6 or subnet.network_address + 1)
        if parsed not in subnet:
            problems.append(f"{what}: {address}{where} is not inside {network}'s IPv6 subnet {subnet}")
        elif parsed in (subnet.network_address, gateway):
            role = "subnet-router anycast address" if parsed == subnet.network_address else \
                "bridge's own address (Docker's gateway)"
            problems.append(f"{what}: {address}{where} is {network}'s {role}; allowed: a host of {subnet} other "
                            f"than {subnet.network_address} and {gateway}")
        else:
            owners.setdefault((network, str(parsed)), {}).setdefault(owner, f"{what}{where}")

    for service in topology.services.values():
        for network, address in service.addresses6.items():
            inside(f"service {service.name} on {network}", network, address,
                   f"services.{service.name}.networks.{network}.ipv6_address", service.name)
    for network, address in topology.client_addresses6.items():
        inside(f"x-lab.client_addresses6.{network}", network, address, f"x-lab.client_addresses6.{network}", CLIENT)
    for gateway in topology.gateways.values():
        if gateway.address6:
            inside(f"x-lab.gateways.{gateway.network}.address6 (router {gateway.router})", gateway.network,
                   gateway.address6, f"x-lab.gateways.{gateway.network}.address6", gateway.router)
    server = topology.services.get(SERVER, Service(SERVER, {}))
    for label, address in (("server.address6", topology.server_address6),
                           ("server.preferred_address6", topology.server_preferred_address6)):
        if address and address not in server.addresses6.values():
            problems.append(f"x-lab.{label}: {address}{_where(variable(f'x-lab.{label}'))} is none of the "
                            "server's IPv6 addresses")
    for (network, address), by in owners.items():
        if len(by) > 1:
            problems.append(f"{address} on {network} is given to {len(by)} hosts: {'; '.join(by.values())}; "
                            "every host needs an address of its own")
    if topology.nat64 is not None:
        problems += _nat64_problems(topology, subnets)
    return problems


def _nat64_problems(topology: Topology, subnets6: dict[str, ipaddress.IPv6Network]) -> list[str]:
    """The NAT64's prefix a /96, its pool an IPv4 network and the CLAT's /64 an IPv6 one, none
    overlapping a lab network."""
    xlat, variable = topology.nat64, topology.variables.get
    assert xlat is not None
    problems = []
    wanted = (("prefix", xlat.prefix, 6, (96, 96)), ("pool", xlat.pool, 4, (16, 29)),
              ("clat_prefix", xlat.clat_prefix, 6, (48, 64)))
    for label, value, version, (low, high) in wanted:
        where = _where(variable(f"x-lab.nat64.{label}"))
        try:
            net = ipaddress.ip_network(value)
        except ValueError:
            problems.append(f"x-lab.nat64.{label}: {value!r}{where}: not a network with its host bits zero; "
                            f"allowed: an IPv{version} network, /{low}" + (f" to /{high}" if high != low else ""))
            continue
        if net.version != version or not low <= net.prefixlen <= high:
            problems.append(f"x-lab.nat64.{label}: {value}{where}: allowed: an IPv{version} network, /{low}"
                            + (f" to /{high}" if high != low else ""))
            continue
        lab_nets = [ipaddress.ip_network(n.subnet) for n in topology.networks.values()] if version == 4 else \
            list(subnets6.values())
        clash = next((str(n) for n in lab_nets if n.overlaps(net)), None)
        if clash:
            problems.append(f"x-lab.nat64.{label}: {value}{where} overlaps the lab network {clash}")
    if xlat.router not in topology.routers:
        problems.append(f"x-lab.nat64.router: {xlat.router!r} is no router of x-lab.gateways")
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
            pools = spec["ipam"]["config"]
            v6 = next((p for p in pools[1:] if spec.get("enable_ipv6")), {})  # the ULA beside the IPv4 pool
            networks[name] = Network(
                name=name,
                docker_name=spec.get("name", f"{project}_{name}"),
                subnet=pools[0]["subnet"],
                gateway=pools[0].get("gateway"),
                bridge=options.get("com.docker.network.bridge.name"),
                masquerade=options.get("com.docker.network.bridge.enable_ip_masquerade", "true") != "false",
                subnet6=v6.get("subnet"), gateway6=v6.get("gateway"),
            )
        services = {}
        for name, spec in config["services"].items():
            attached = (spec.get("networks") or {}).items()
            addresses = {net: (attach or {}).get("ipv4_address", "") for net, attach in attached}
            addresses6 = {net: attach["ipv6_address"] for net, attach in attached
                          if (attach or {}).get("ipv6_address")}
            services[name] = Service(
                name=name, addresses=addresses, addresses6=addresses6,
                role=(spec.get("environment") or {}).get("LAB_ROLE", ""),
                cap_add=tuple(spec.get("cap_add") or ()), privileged=bool(spec.get("privileged", False)),
            )
        gateways = {net: Gateway(net, g["router"], g["address"], g.get("address6"), bool(g.get("ipv6_only", False)))
                    for net, g in lab["gateways"].items()}
        xlat = lab.get("nat64")
        nat64 = None if not xlat else Nat64(str(xlat["router"]), str(xlat["prefix"]), str(xlat["pool"]),
                                            str(xlat["clat_prefix"]))
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
            client_addresses6=dict(lab.get("client_addresses6") or {}),
            server_address6=server.get("address6"), server_preferred_address6=server.get("preferred_address6"),
            nat64=nat64,
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise TopologyError(f"compose.yaml: missing or malformed field {exc}") from None
