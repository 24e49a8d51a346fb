"""Actions on the live lab through docker-py: the controller's hands.

Each action changes the lab, checks that the change took effect, and returns an `ActionResult`
(which becomes an `action` event in the run's timeline). Docker re-picks the client's default
gateway on every connect and disconnect, so every topology change ends by re-asserting the
client's routes.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import re
import secrets
import shlex
import subprocess
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker.errors
from docker.models.containers import Container

from lab import nat_behaviour
from lab.control import adversary, foreign, impair
from lab.control.base import BLACKHOLE_TAG, ActionError, ActionResult, interface_in
from lab.control.docker_api import client, container, exec_checked
from lab.endpoints.shared.netconf import route_script, source_table
from lab.topology.model import CLIENT, SERVER, Topology

CAPTURE_DIR = "/tmp/lab-capture"
CLAT_DIR = "/run/lab/clat"  # the CLAT's pid file's directory (lab.endpoints.shared.tayga.clat)
CAPTURE_FILTER = "udp port 443 or udp port 4443 or tcp port 443"
_CT_ENTRY = re.compile(
    r"src=(?P<src>\S+) dst=(?P<dst>\S+) sport=(?P<sport>\d+) dport=(?P<dport>\d+).*?"
    r"src=(?P<rsrc>\S+) dst=(?P<rdst>\S+) sport=(?P<rsport>\d+) dport=(?P<rdport>\d+)"
)


def parse_conntrack_list(text: str) -> list[tuple[str, str]]:
    """`conntrack -L` output -> [(inside "ip:port", outside "ip:port")] (outside = the NAT's side)."""
    found = []
    for line in text.splitlines():
        match = _CT_ENTRY.search(line)
        if match:
            found.append((f"{match['src']}:{match['sport']}", f"{match['rdst']}:{match['rdport']}"))
    return found


class Lab:
    """The running lab: topology facts plus docker-py handles."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.route_network: str | None = None
        self._containers: dict[str, Container] = {}

    # --- facts -----------------------------------------------------------------------------

    def ctr(self, service: str) -> Container:
        # Looked up once per controller: a container list per action costs more than the action.
        if service not in self._containers:
            self._containers[service] = container(self.topology, service)
        return self._containers[service]

    def forget(self, *services: str) -> None:
        """Drop cached handles of containers that were removed (the adversary hosts after their run)."""
        for service in services:
            self._containers.pop(service, None)

    def client_attachments(self) -> dict[str, str]:
        """Client network -> the client's address there, as the Engine reports it now."""
        target = self.ctr(CLIENT)
        target.reload()
        attached = {}
        for docker_name, info in target.attrs["NetworkSettings"]["Networks"].items():
            for network in self.topology.networks.values():
                if network.docker_name == docker_name:
                    attached[network.name] = info.get("IPAddress") or ""
        return attached

    def client_attachments6(self) -> dict[str, str]:
        """Client network -> the client's IPv6 address there, as the Engine reports it now."""
        target = self.ctr(CLIENT)
        target.reload()
        by_docker_name = {n.docker_name: n.name for n in self.topology.networks.values()}
        return {by_docker_name[name]: info["GlobalIPv6Address"]
                for name, info in target.attrs["NetworkSettings"]["Networks"].items()
                if name in by_docker_name and info.get("GlobalIPv6Address")}

    def _address6(self, network: str, address: str) -> str | None:
        """The client's IPv6 address that goes with IPv4 ``address`` on ``network``: compose.yaml's for
        its default address, else the host number's digits read in hex (10.203.1.50 -> fd00:203:1::50),
        the convention of compose.yaml's defaults; None on an IPv4-only network."""
        net = self.topology.networks[network]
        if not net.subnet6:
            return None
        if address == self.topology.client_addresses.get(network) and network in self.topology.client_addresses6:
            return self.topology.client_addresses6[network]
        return self.topology.address_on(network, int(address.rsplit(".", 1)[1], 16), version=6)

    def client_address(self, network: str) -> str:
        address = self.client_attachments().get(network)
        if not address:
            raise ActionError(f"the client is not on {network}")
        return address

    def require_client_network(self, network: str) -> None:
        if network not in self.topology.gateways:
            raise ActionError(f"{network!r} is not a client network; allowed: {', '.join(self.topology.gateways)}")

    def _resolve_address(self, network: str, address: int | str | None) -> str:
        if address is None:
            return self.topology.client_addresses[network]
        if isinstance(address, int):
            return self.topology.address_on(network, address)
        return address

    # --- topology changes -------------------------------------------------------------------

    def connect(self, network: str, address: int | str | None = None, route: bool = False) -> ActionResult:
        self.require_client_network(network)
        ip = self._resolve_address(network, address)
        net = self.topology.networks[network]
        try:
            client().api.connect_container_to_network(self.ctr(CLIENT).id, net.docker_name, ipv4_address=ip,
                                                      ipv6_address=self._address6(network, ip))
        except docker.errors.APIError as exc:
            raise ActionError(f"connect client to {network} as {ip}: {exc.explanation or exc}") from None
        detail: dict[str, Any] = {"address": ip}
        if self.topology.gateways[network].ipv6_only:  # IPv4 goes, the CLAT comes (lab.endpoints.clat)
            detail = {"address6": self._address6(network, ip), **self._clat("up", network)}
        if route or self.route_network not in self.client_attachments():
            self.route_network = network
        routes = self.set_routes()
        return ActionResult("connect", network, {**detail, **routes})

    def _clat(self, command: str, network: str | None = None) -> dict[str, Any]:
        """Start (on an IPv6-only network) or stop the client's CLAT; what it reported."""
        argv = ["python", "-m", "lab.endpoints.clat", command]
        if network is not None:
            argv.append(f"--subnet6={self.topology.networks[network].subnet6}")
        return {"clat": json.loads(exec_checked(self.ctr(CLIENT), argv).strip().splitlines()[-1])}

    def disconnect(self, network: str) -> ActionResult:
        self.require_client_network(network)
        address = self.client_attachments().get(network)
        if address is None:
            raise ActionError(f"the client is not on {network}")
        try:
            client().api.disconnect_container_from_network(self.ctr(CLIENT).id,
                                                           self.topology.networks[network].docker_name, force=True)
        except docker.errors.APIError as exc:
            raise ActionError(f"disconnect client from {network}: {exc.explanation or exc}") from None
        if self.route_network == network:
            remaining = [n for n in self.client_attachments() if n in self.topology.gateways]
            self.route_network = remaining[0] if remaining else None
        if self.topology.gateways[network].ipv6_only and self.topology.nat64 is not None:
            self._clat("down")
        routes = self.set_routes()
        return ActionResult("disconnect", network, {"address": address, **routes})

    def set_routes(self, network: str | None = None, prelude: list[str] | None = None) -> dict[str, Any]:
        """Default route via the router of `network` (or of the current route network), plus one
        source route per attached network, as a multi-homed phone has.

        The main table's default route is what a socket bound to the wildcard address follows
        (passive migration). A socket bound to one interface's address keeps leaving through that
        interface's router whatever the default route is (active migration, make-before-break).
        """
        attached = self.client_attachments()
        if network is not None:
            self.require_client_network(network)
            if network not in attached:
                raise ActionError(f"cannot route via {network}: the client is not on it")
            self.route_network = network
        # One table per network whatever else is attached, numbered as the container's entry point does.
        subnets = [self.topology.networks[name].subnet for name in self.topology.gateways]
        sources = [(attached[name], gw.address, source_table(self.topology.networks[name].subnet, subnets))
                   for name, gw in self.topology.gateways.items() if attached.get(name) and not gw.ipv6_only]
        gateway = self._gateway4(self.route_network)
        script = route_script(gateway, sources)
        attached6 = self.client_attachments6()
        if attached6:  # the same for IPv6: the router's LAN address, never Docker's gateway (the host)
            subnets6 = [self.topology.networks[name].subnet6 or "" for name in self.topology.gateways]
            sources6 = [(attached6[name], gw.address6,
                         source_table(self.topology.networks[name].subnet6 or "", subnets6))
                        for name, gw in self.topology.gateways.items() if attached6.get(name) and gw.address6]
            gateway6 = self.topology.gateways[self.route_network].address6 if self.route_network else None
            script += route_script(gateway6, sources6, family=6)
        script.append(f"ip route get {self.topology.server_address} || true")
        # prelude: a reset's other client commands, in the same exec (each exec costs ~0.12 s)
        got = exec_checked(self.ctr(CLIENT), ["sh", "-ec", "; ".join([*(prelude or []), *script])])
        if gateway is None:
            return {"route": None}
        if (gateway.split(" src ")[0] if gateway.startswith("dev ") else f"via {gateway}") not in got:
            raise ActionError(f"client route to the server is not via {gateway}: {got.strip()}")
        return {"route": self.route_network, "gateway": gateway}

    def _gateway4(self, network: str | None) -> str | None:
        """The client's IPv4 default route's next hop: the network's router, or on an IPv6-only
        network the CLAT's device (the NAT64 carries IPv4 from there)."""
        if network is None:
            return None
        if self.topology.gateways[network].ipv6_only and self.topology.nat64 is not None:
            return f"dev {self.topology.nat64.clat_device} src {self.topology.nat64.clat_ipv4}"
        return self.topology.gateways[network].address

    def route(self, network: str) -> ActionResult:
        return ActionResult("route", network, self.set_routes(network))

    def renumber(self, network: str, address: int | str | None = None) -> ActionResult:
        """DHCP renumbering: the client gets a new address on the same network."""
        old = self.client_address(network)
        if address is None:
            host = int(old.rsplit(".", 1)[1])
            address = host + 40 if host + 40 < 255 else host - 40
        new = self._resolve_address(network, address)
        was_route = self.route_network == network
        self.disconnect(network)
        result = self.connect(network, new, route=was_route)
        return ActionResult("renumber", network, {"old_address": old, "new_address": new,
                                                  "route": result.detail.get("route")})

    def temporary_address(self, network: str) -> ActionResult:
        """RFC 8981: a new temporary IPv6 address (a random 64-bit interface identifier) on `network`,
        and the client's current addresses there deprecated (preferred lifetime 0, still valid), so
        source address selection (RFC 6724 rule 3: avoid deprecated addresses) gives the next packet
        of a socket bound to the wildcard the new one. Without DAD (an unused random identifier)."""
        self.require_client_network(network)
        subnet6 = self.topology.networks[network].subnet6
        if not subnet6 or not self.client_attachments6().get(network):
            raise ActionError(f"the client has no IPv6 address on {network}")
        net = ipaddress.ip_network(subnet6)
        new = str(net.network_address + (secrets.randbits(64) | 1 << 63))  # never a low, hand-made host number
        script = [f"dev=$(ip -6 -o addr show to {subnet6} scope global | awk 'NR==1{{print $2}}')",
                  'test -n "$dev"',
                  "for a in $(ip -6 -o addr show dev $dev scope global | awk '{print $4}'); do "
                  "ip -6 addr change $a dev $dev valid_lft forever preferred_lft 0; done",
                  f"ip -6 addr add {new}/{net.prefixlen} dev $dev nodad",
                  f"ip -6 route get {self.topology.server_address6}"]
        got = exec_checked(self.ctr(CLIENT), ["sh", "-ec", "; ".join(script)])
        if f"src {new}" not in got:
            raise ActionError(f"the client's packets to the server do not leave from {new}: {got.strip()}")
        return ActionResult("temporary_address", network, {"old_address": self.client_attachments6()[network],
                                                           "new_address": new})

    def _addresses6_restore_script(self) -> list[str]:
        """Shell that removes temporary addresses (temporary_address) and undeprecates the Engine's own ones."""
        lines = []
        for network, address in self.client_attachments6().items():
            subnet6 = self.topology.networks[network].subnet6
            lines.append(f"dev=$(ip -6 -o addr show to {subnet6} scope global | awk 'NR==1{{print $2}}'); "
                         f"[ -z \"$dev\" ] || {{ for a in $(ip -6 -o addr show dev $dev scope global "
                         f"| awk '{{print $4}}'); do [ \"${{a%/*}}\" = {address} ] || ip -6 addr del $a dev $dev; "
                         "done; "
                         f"ip -6 addr change {address}/{ipaddress.ip_network(subnet6).prefixlen} dev $dev "
                         "valid_lft forever preferred_lft forever; }")
        return lines

    def rebind(self, router: str) -> ActionResult:
        """NAT rebinding: drop the client's conntrack entries so the next packet gets a new port."""
        target = self.ctr(router)
        before = parse_conntrack_list(exec_checked(target, ["conntrack", "-L", "-p", "udp"]))
        exec_checked(target, ["sh", "-c", "conntrack -D -p udp >/dev/null 2>&1; true"])
        old = {inside: outside for inside, outside in before}
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            after = parse_conntrack_list(exec_checked(target, ["conntrack", "-L", "-p", "udp"]))
            changed = [(i, old[i], o) for i, o in after if i in old and old[i] != o]
            if changed:
                inside, was, now = changed[0]
                return ActionResult("rebind", router, {"inside": inside, "old_outside": was, "new_outside": now})
            time.sleep(0.05)
        if not before:
            return ActionResult("rebind", router, {"note": "no UDP mapping existed"}, ok=True)
        return ActionResult("rebind", router, {"note": "no new mapping seen within 3 s", "old": old}, ok=False)

    def nat(self, router: str, mapping: str | None = None, ports: str | None = None,
            udp_timeout: float | None = None) -> ActionResult:
        """Change a router's NAT behaviour for the mappings made from now on (lab.nat_behaviour)."""
        mapping, ports = nat_behaviour.resolve(mapping, ports, self.topology.nat[router])
        command = ["python", "-m", "lab.endpoints.router.nat", "set", f"--mapping={mapping}", f"--ports={ports}"]
        if udp_timeout is not None:
            command.append(f"--udp-timeout={nat_behaviour.seconds(udp_timeout)}")
        target = self.ctr(router)
        exec_checked(target, command)
        masquerade = exec_checked(target, ["iptables", "-w", "-t", "nat", "-S", "POSTROUTING"])
        timeout = exec_checked(target, ["iptables", "-w", "-t", "raw", "-S", "PREROUTING"])
        flags = nat_behaviour.masquerade_flags(mapping, ports)
        rule = next((line for line in masquerade.splitlines() if "-j MASQUERADE" in line), "")
        if rule.split("-j MASQUERADE", 1)[-1].split() != list(flags):
            raise ActionError(f"{router}: MASQUERADE rule is {rule!r}, not with {' '.join(flags) or 'no flag'}")
        if nat_behaviour.TIMEOUT_TAG not in timeout:
            raise ActionError(f"{router}: no timeout policy rule in raw PREROUTING: {timeout.strip()!r}")
        detail: dict[str, Any] = {"mapping": mapping, "ports": ports, "rule": rule.strip()}
        if udp_timeout is not None:
            detail["udp_timeout_s"] = nat_behaviour.seconds(udp_timeout)
        return ActionResult("nat", router, detail)

    def idle(self, duration: float, keepalive: float | None = None) -> ActionResult:
        """Tell the QUIC echo client to send nothing for ``duration`` but a PING every ``keepalive``."""
        command: dict[str, Any] = {"cmd": "idle", "duration": duration}
        if keepalive is not None:
            command["keepalive"] = keepalive
        return ActionResult("idle", "client", self._ask_client(command, "client refused to idle"))

    def blackhole(self, network: str, on: bool) -> ActionResult:
        """Drop every packet between a client network and its router's internet side; links stay up."""
        self.require_client_network(network)
        router = self.topology.gateways[network].router
        target = self.ctr(router)
        lan = interface_in(target, self.topology.networks[network].subnet)
        rules = [["-i", lan], ["-o", lan]]
        for rule in rules:
            spec = ["FORWARD", *rule, "-m", "comment", "--comment", BLACKHOLE_TAG, "-j", "DROP"]
            for tool in ("iptables", "ip6tables"):  # the link is down for both families
                present = target.exec_run([tool, "-w", "-C", *spec])[0] == 0
                if on and not present:
                    exec_checked(target, [tool, "-w", "-I", *spec])
                elif not on and present:
                    exec_checked(target, [tool, "-w", "-D", *spec])
        return ActionResult("blackhole", network, {"state": "on" if on else "off", "router": router})

    def migrate(self, network: str, rotate_cid: bool | None = None) -> ActionResult:
        """Tell an active client to move to its address on `network` (RFC 9000 §9.2)."""
        local = self.client_address(network)
        command: dict[str, Any] = {"cmd": "migrate", "local": local}
        if rotate_cid is not None:
            command["rotate_cid"] = rotate_cid
        return ActionResult("migrate", network,
                            {"local": local, **self._ask_client(command, f"client refused to migrate to {local}")})

    def _ask_client(self, command: dict[str, Any], refused: str) -> dict[str, Any]:
        """The client's reply to a control command, without its ``ok``; ActionError when it refused."""
        reply = self.client_command(command)
        if not reply.get("ok"):
            raise ActionError(f"{refused}: {reply.get('error')}")
        return {k: v for k, v in reply.items() if k != "ok"}

    def attack(self, network: str, kind: str, on: bool) -> ActionResult:
        """Switch an attack of `kind` on or off on a client network (lab.control.adversary)."""
        self.require_client_network(network)
        return adversary.attack(self, network, kind, on)

    def client_command(self, command: dict[str, Any], socket_path: str = "/run/lab/client.sock") -> dict[str, Any]:
        script = ("import json,socket,sys;s=socket.socket(socket.AF_UNIX);s.settimeout(5);s.connect(sys.argv[1]);"
                  "s.sendall(sys.argv[2].encode()+b'\\n');print(s.makefile().readline())")
        code, output = self.ctr(CLIENT).exec_run(["python3", "-c", script, socket_path, json.dumps(command)])
        if code != 0:
            raise ActionError(f"client control socket: {output.decode(errors='replace').strip()[-200:]}")
        return json.loads(output.decode().strip() or "{}")

    # --- captures ---------------------------------------------------------------------------

    def start_captures(self) -> list[str]:
        """tcpdump on both sides of every NAT router (as the interop runner's simulator does).

        One exec per host, all hosts at once: it starts the host's capturers in the background and
        returns once each has created its file (tcpdump and dumpcap create it after the socket and
        its filter are set up), instead of a fixed sleep.
        """
        jobs: list[tuple[Container, list[tuple[str, list[str]]], str]] = []
        names = []
        for network, gateway in self.topology.gateways.items():
            target = self.ctr(gateway.router)
            commands = []
            for side, subnet in (("lan", self.topology.networks[network].subnet),
                                 ("wan", self.topology.networks["internet"].subnet)):
                name = f"{gateway.router}-{side}"
                commands.append((name, ["tcpdump", "-i", interface_in(target, subnet), "-U", "-s", "0", "-w",
                                        f"{CAPTURE_DIR}/{name}.pcap", CAPTURE_FILTER]))
                names.append(name)
            jobs.append((target, commands, "tcpdump"))
        for host in self._adversary_hosts():  # what reaches the victim, what the attacker sends and gets
            target = self.ctr(host)
            iface = interface_in(target, self.topology.networks["internet"].subnet)
            # dumpcap, not tcpdump: tcpdump always changes user, and these hosts may not (cap_drop ALL
            # plus NET_ADMIN and NET_RAW). -P: pcap, like the routers'. -p: not promiscuous, since the
            # bridge floods frames for the silent victim, whose MAC it never learns. Only datagrams
            # from or to the victim or the attacker: the client's own are on the NAT's WAN capture,
            # and these captures are merged into the server's view.
            hostile = self.topology.adversary
            only = f"({CAPTURE_FILTER}) and (host {hostile.victim} or host {hostile.attacker})" if hostile else \
                CAPTURE_FILTER
            jobs.append((target, [(host, ["dumpcap", "-q", "-p", "-P", "-i", iface, "-f", only, "-w",
                                          f"{CAPTURE_DIR}/{host}.pcap"])], "dumpcap"))
            names.append(host)

        def start(job: tuple[Container, list[tuple[str, list[str]]], str]) -> None:
            target, commands, tool = job
            exec_checked(target, ["sh", "-c", capture_start_script(tool, commands)])

        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            list(pool.map(start, jobs))
        return names

    def _adversary_hosts(self) -> tuple[str, ...]:
        if not adversary.running(self.topology) or self.topology.adversary is None:
            return ()
        return self.topology.adversary.services

    def stop_captures(self, destination: Path) -> list[Path]:
        destination.mkdir(parents=True, exist_ok=True)
        hosts = [gateway.router for gateway in self.topology.gateways.values()] + list(self._adversary_hosts())
        targets = [self.ctr(host) for host in hosts]

        def stop(target: Container) -> bytes | None:
            # The capturers flush and exit on SIGINT: waiting for their exit (not a fixed sleep) ends
            # when the files are complete.
            target.exec_run(["sh", "-c", CAPTURE_STOP])
            try:
                stream, _ = target.get_archive(CAPTURE_DIR)
            except docker.errors.NotFound:
                return None
            return b"".join(stream)

        # All hosts at once (one after the other, each stop and copy adds up to seconds a run).
        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            archives = list(pool.map(stop, targets))
        saved = []
        for archive_bytes in archives:
            if archive_bytes is None:
                continue
            with tarfile.open(fileobj=io.BytesIO(archive_bytes)) as archive:
                for member in archive.getmembers():
                    if member.isfile() and member.name.endswith(".pcap"):
                        data = archive.extractfile(member)
                        if data is not None:
                            path = destination / Path(member.name).name
                            path.write_bytes(data.read())
                            saved.append(path)
        return saved

    def _attach_exactly(self, networks: tuple[str, ...]) -> bool:
        """Attach the client to exactly `networks` with their default addresses; True on success."""
        docker_id = self.ctr(CLIENT).id
        for network, address in self.client_attachments().items():
            if network not in networks or address != self.topology.client_addresses.get(network):
                try:
                    client().api.disconnect_container_from_network(
                        docker_id, self.topology.networks[network].docker_name, force=True)
                except docker.errors.APIError:
                    return False
        attached = self.client_attachments()
        for network in networks:
            if network not in attached:
                try:
                    client().api.connect_container_to_network(
                        docker_id, self.topology.networks[network].docker_name,
                        ipv4_address=self.topology.client_addresses[network],
                        ipv6_address=self.topology.client_addresses6.get(network))
                except docker.errors.APIError:
                    return False
        final = self.client_attachments()
        return set(final) == set(networks) and all(final[n] == self.topology.client_addresses[n] for n in networks)

    # --- reset ------------------------------------------------------------------------------

    def reset(self, networks: tuple[str, ...] | None = None) -> ActionResult:
        """Bring the lab back to a scenario's initial state (default: compose.yaml's): attachments,
        routes, NAT, rules."""
        if networks is None:
            networks = self.topology.client_start_networks
        self.ctr(CLIENT).exec_run(["sh", "-c", "pkill -f lab.endpoints.client; pkill tcpdump; true"])
        # Connections of earlier runs would go on sending to their last address (PTO probes).
        with contextlib.suppress(docker.errors.APIError):
            self.ctr(SERVER).kill(signal="SIGUSR1")
        # The routers' impairments and blackholes touch no client state: they are reset beside the
        # client, each router in its own thread; then each router's NAT, conntrack and captures, last
        # as before (no packet of the client's reset may leave an entry behind).
        for router in self.topology.routers:
            self.ctr(router)  # handles looked up before the threads share the cache
        with ThreadPoolExecutor(max_workers=len(self.topology.routers) + 1) as pool:
            impaired = [pool.submit(self._reset_impairments, router) for router in self.topology.routers]
            try:
                routes = self._reset_client(networks)
            finally:
                for done in impaired:
                    done.result()  # a router that could not be reset fails the reset, as before
            adversary.stop_all(self)
            list(pool.map(self._reset_router, self.topology.routers))
        return ActionResult("reset", "lab", {"networks": list(networks), **routes})

    def _reset_client(self, networks: tuple[str, ...]) -> dict[str, Any]:
        """The client's part of :meth:`reset`: a foreign end gone, its networks and routes; the routes."""
        # A foreign endpoint left by an interrupted black-box run; the lab's server takes its port back.
        if foreign.remove_all(self.topology.project):
            foreign.reclaim_main_port(self.ctr(SERVER), self.topology.server_port)
        if not self._attach_exactly(networks):
            # The Engine can be left half-connected by a failed connect; a fresh client fixes it.
            recreate_client(self.topology)
            self._containers.pop(CLIENT, None)
            if not self._attach_exactly(networks):
                raise ActionError(f"cannot restore the client's networks to {list(networks)}")
        self.route_network = networks[0] if networks else None
        # Addresses, CLAT and routes in one exec when no CLAT is to start, in this order as before.
        prelude = self._addresses6_restore_script()
        if self.topology.nat64 is not None:  # a CLAT only while on an IPv6-only network
            six_only = [n for n in networks if self.topology.gateways[n].ipv6_only]
            if six_only:
                if prelude:
                    exec_checked(self.ctr(CLIENT), ["sh", "-ec", "; ".join(prelude)])
                prelude = []
                self._clat("up", six_only[0])
            else:
                prelude.append(clat_down_if_up(self.topology.nat64.clat_device))
        return self.set_routes(prelude=prelude)

    def _reset_impairments(self, router: str) -> None:
        """No impairment or blackhole on the client networks behind ``router``."""
        for network, gateway in self.topology.gateways.items():
            if gateway.router == router:
                impair.reset(self, network)

    def _reset_router(self, router: str) -> None:
        """compose.yaml's NAT on ``router``, no conntrack entry, no capture, no attack's route."""
        undo_attacks = adversary.reset_commands(self.topology)  # a hijacked route, a sensor
        self.ctr(router).exec_run(["sh", "-c", f"{nat_restore(self.topology, router)}; "
                                               f"conntrack -F >/dev/null 2>&1; pkill tcpdump; {undo_attacks}"])


def nat_restore(topology: Topology, router: str) -> str:
    """Shell that gives a router compose.yaml's NAT behaviour back after a scenario's `nat` step;
    it starts Python only when a `set` left its marker or the MASQUERADE rule is not compose.yaml's."""
    flags = " ".join(topology.nat[router].flags)
    ending = f"-j MASQUERADE{' ' + flags if flags else ''}$"
    return (f"{{ [ ! -e {nat_behaviour.CHANGED_MARKER} ] && "
            f"iptables -w -t nat -S POSTROUTING | grep -q -- '{ending}'; }} || "
            "python -m lab.endpoints.router.nat reset >/dev/null")


CAPTURE_READY_S = 3.0  # s a capturer may take to create its file before the start counts as failed
# SIGINT: tcpdump and dumpcap write what they hold and exit; wait for that (at most 3 s), then go on.
CAPTURE_STOP = ("pkill -INT -x tcpdump; pkill -INT -x dumpcap; i=0; "
                "while [ $i -lt 150 ] && pgrep -x 'tcpdump|dumpcap' >/dev/null; do sleep 0.02; i=$((i+1)); done; true")


def capture_start_script(tool: str, commands: list[tuple[str, list[str]]]) -> str:
    """Shell for one host: stop its old capturers, start ``commands`` (name, argv) in the background
    (their output to /dev/null, so the exec returns), and wait until each has created its file; it
    fails, naming the file, when one has not within CAPTURE_READY_S (pure)."""
    files = [f"{CAPTURE_DIR}/{name}.pcap" for name, _ in commands]
    tries = int(CAPTURE_READY_S / 0.01)
    lines = [f"pkill -x {tool}; i=0; while [ $i -lt 150 ] && pgrep -x {tool} >/dev/null; do sleep 0.02; "
             "i=$((i+1)); done",  # an earlier run's capturer must not write into the new directory
             f"rm -rf {CAPTURE_DIR}; mkdir -p {CAPTURE_DIR}"]
    lines += [f"{shlex.join(argv)} </dev/null >/dev/null 2>&1 &" for _, argv in commands]
    ready = " && ".join(f"[ -e {shlex.quote(f)} ]" for f in files)
    lines.append(f"i=0; until {ready}; do [ $i -lt {tries} ] || {{ echo 'no capture file after "
                 f"{CAPTURE_READY_S:g} s:' {' '.join(shlex.quote(f) for f in files)}; exit 1; }}; "
                 "sleep 0.01; i=$((i+1)); done")
    return "\n".join(lines)


def clat_down_if_up(device: str) -> str:
    """Shell: ``clat down`` (a Python start in the client) only when the CLAT's device or pid file is there."""
    return (f"if [ -e {CLAT_DIR}/{device}.pid ] || ip link show {device} >/dev/null 2>&1; then "
            "python -m lab.endpoints.clat down; fi")


def recreate_client(topology: Topology) -> None:
    from lab.topology.load import compose_command

    subprocess.run([*compose_command(), "up", "-d", "--wait", "--force-recreate", "--no-deps", CLIENT],
                   capture_output=True, text=True, timeout=120, check=True)

