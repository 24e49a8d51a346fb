"""The foundation's topology facts, checked on the real lab (issue 2)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time

from lab.control.readiness import READY_LABEL
from tests.integration.conftest import sh

UDP_PEER_PROBE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(10)
data, addr = s.recvfrom(100)
s.sendto(f"{addr[0]}:{addr[1]}".encode(), addr)
print(f"{addr[0]}:{addr[1]}")
"""

UDP_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"probe", (sys.argv[1], int(sys.argv[2])))
print(s.recvfrom(100)[0].decode())
"""


def wait_listening(server, port: int) -> None:
    """A probe sent before the listener has bound its socket would be lost (UDP NoPorts)."""
    for _ in range(100):
        if f":{port} " in sh(server, "ss -Hlun"):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on UDP {port} in the server")


def observed_source(ctr, topology, port: int) -> str:
    """Send one UDP datagram from the client to the server; return the source the server saw."""
    server = ctr["server"]
    probe = server.exec_run(["python3", "-c", UDP_PEER_PROBE, str(port)], detach=True)
    assert probe is not None
    wait_listening(server, port)
    return sh(ctr["client"], f"python3 -c '{UDP_SEND}' {topology.server_address} {port}").strip()


def test_every_service_is_ready_unprobed_and_unprivileged(ctr, topology):
    assert set(ctr) == set(topology.services)
    for name, container in ctr.items():
        container.reload()
        command = container.labels[READY_LABEL]  # its readiness, from compose.yaml
        assert container.exec_run(["sh", "-c", command]).exit_code == 0, name
        # No periodic docker exec during runs: a healthcheck probe stalled the endpoints' data (README).
        assert "Health" not in container.attrs["State"], name
        host = container.attrs["HostConfig"]
        assert host["Privileged"] is False, name
        assert set(host["CapAdd"] or []) <= {"NET_ADMIN", "NET_RAW", "CAP_NET_ADMIN", "CAP_NET_RAW"}, name


def test_client_routes_through_its_router(ctr, topology):
    gateway = topology.gateways["home"].address
    route = sh(ctr["client"], f"ip route get {topology.server_address}")
    assert f"via {gateway}" in route
    # No direct route from a client network to the internet subnet.
    routes = sh(ctr["client"], "ip -4 route show")
    assert topology.networks["internet"].subnet not in routes


def test_server_sees_router_public_address_never_the_client(ctr, topology):
    seen = observed_source(ctr, topology, 9901)
    ip, port = seen.rsplit(":", 1)
    assert ip == topology.router_public_address("home-router")
    assert ip != topology.client_addresses["home"]
    assert not topology.networks["home"].contains(ip)


def test_nat_uses_random_external_ports(ctr, topology):
    ports = {observed_source(ctr, topology, 9902 + i).rsplit(":", 1)[1] for i in range(3)}
    assert len(ports) == 3


def test_nat_rebinding_changes_the_external_port(ctr, topology):
    """Dropping the client's conntrack entries on the router gives the next packet a new port."""
    server, client, router = ctr["server"], ctr["client"], ctr["home-router"]
    listener = "import socket;s=socket.socket(2,2);s.bind(('0.0.0.0',9910));s.settimeout(10);" \
        "[print(s.recvfrom(9)[1], flush=True) for _ in range(2)]"
    exec_id = server.client.api.exec_create(server.id, ["python3", "-c", listener])["Id"]
    stream = server.client.api.exec_start(exec_id, stream=True)
    wait_listening(server, 9910)
    sender = ("import socket,time,sys;s=socket.socket(2,2);s.bind(('0.0.0.0',40000));"
              f"s.sendto(b'a',('{topology.server_address}',9910));time.sleep(0.5);"
              "import subprocess;time.sleep(1.0);"
              f"s.sendto(b'b',('{topology.server_address}',9910))")
    sent = client.exec_run(["python3", "-c", sender], detach=True)
    assert sent is not None
    time.sleep(0.8)
    sh(router, f"conntrack -D -s {topology.client_addresses['home']} -p udp --sport 40000 || true")
    output = b"".join(stream).decode()
    peers = [line for line in output.splitlines() if line.strip()]
    assert len(peers) == 2, output
    assert peers[0] != peers[1], f"port unchanged after rebinding: {peers}"


def test_containment_no_route_out_and_no_masquerade(ctr, topology):
    outside = "192.0.2.1"  # TEST-NET-1: a route lookup only, no packet is sent
    routers = {g.address: g.router for g in topology.gateways.values()}
    for name, container in ctr.items():
        code, output = container.exec_run(["ip", "route", "get", outside])
        text = output.decode()
        if code == 0:
            # Only the client has a default route, and it points at a lab router...
            gateway = text.split(" via ")[1].split()[0]
            assert name == "client" and gateway in routers, f"{name}: {text}"
            # ...which itself has no route out.
            code2, out2 = ctr[routers[gateway]].exec_run(["ip", "route", "get", outside])
            assert code2 != 0, out2
        else:
            assert "unreachable" in text, f"{name}: {text}"
    for network in topology.networks.values():
        assert network.masquerade is False, network.name
        info = json.loads(subprocess.run(["docker", "network", "inspect", network.docker_name],
                                         capture_output=True, text=True, check=True).stdout)[0]
        assert info["Options"]["com.docker.network.bridge.enable_ip_masquerade"] == "false"
    # The host masquerades none of the lab's subnets.
    nat = subprocess.run(["iptables", "-t", "nat", "-S", "POSTROUTING"], capture_output=True, text=True).stdout
    for rule in nat.splitlines():
        if "MASQUERADE" in rule and " -s " in rule:
            source = ipaddress.ip_network(rule.split(" -s ")[1].split()[0])
            for network in topology.networks.values():
                assert not source.overlaps(ipaddress.ip_network(network.subnet)), rule


def test_interfaces_found_by_subnet(ctr, topology):
    """Routers NAT on the interface that holds their LAN subnet, whatever its ethN name."""
    for network, gateway in topology.gateways.items():
        router = ctr[gateway.router]
        rules = sh(router, "iptables -t nat -S POSTROUTING")
        wan = [line for line in sh(router, "ip -o -4 addr show").splitlines()
               if topology.router_public_address(gateway.router) + "/" in line][0].split()[1]
        # An IPv6-only network's router NATs its NAT64's IPv4 pool instead (docs/ipv6.md).
        source = topology.nat64.pool if gateway.ipv6_only and topology.nat64 else topology.networks[network].subnet
        assert f"-o {wan}" in rules and source in rules
