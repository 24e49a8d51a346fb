"""The dual-stack lab on the real engine (issue 15): IPv6 is routed through the lab's routers only,
nothing IPv6 leaves the lab or crosses between its bridges through the host, and `lab down` gives
the host back the forwarding setting Docker changed (lab.control.host6).

Captures on the host are AF_PACKET sockets on the host's own interfaces (the lab's bridges, its
uplinks): root, like the rest of the lab's tests, and no host tool.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import select
import socket
import struct
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from lab.control import host6
from lab.control.actions import Lab
from lab.control.base import interface_in
from tests.integration.conftest import run_lab, sh
from tests.integration.test_topology import observed_source, wait_listening

OUTSIDE6 = "fd12:3456:789a::1"  # a ULA that is no lab network: must stay unreachable
ETH_P_IPV6 = 0x86DD
SOL_PACKET, PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC = 263, 1, 1


def host_interfaces() -> dict[str, list[str]]:
    """The host's interfaces: "bridges" (the lab's) and "outside" (neither a lab bridge nor a veth)."""
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                                      check=True).stdout)
    names = [link["ifname"] for link in links if link["ifname"] != "lo"]
    return {"bridges": [n for n in names if n.startswith("lab-")],
            "outside": [n for n in names if not n.startswith(("lab-", "veth"))]}


def host_macs() -> set[str]:
    """The MAC addresses of the host's lab bridges: a frame sent to one is delivered to the host."""
    return {Path(f"/sys/class/net/{n}/address").read_text().strip() for n in host_interfaces()["bridges"]}


@contextmanager
def sniff(interfaces: list[str]):
    """Collect (interface, src, dst, next header, destination MAC) of every IPv6 frame on the host's
    ``interfaces``, promiscuous (as tcpdump is): a bridge device then sees the frames it switches
    between its ports too, not only those for the host."""
    seen: list[tuple[str, str, str, int, str]] = []
    stop = threading.Event()
    sockets = []
    for name in interfaces:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
        s.bind((name, 0))
        s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                     struct.pack("iHH8s", socket.if_nametoindex(name), PACKET_MR_PROMISC, 0, b""))
        s.settimeout(0.05)
        sockets.append((name, s))

    def record(name: str, frame: bytes) -> None:
        header = frame[14:54]
        if len(header) == 40:
            seen.append((name, str(ipaddress.IPv6Address(header[8:24])),
                         str(ipaddress.IPv6Address(header[24:40])), header[6], frame[:6].hex(":")))

    names = {s.fileno(): name for name, s in sockets}

    def read() -> None:
        # select over every socket: reading them one by one, each empty one waited its timeout and a
        # busy bridge fell behind, so the last container's probes were still queued when it stopped.
        while not stop.is_set():
            ready, _, _ = select.select([s for _, s in sockets], [], [], 0.05)
            for s in ready:
                with contextlib.suppress(OSError):
                    record(names[s.fileno()], s.recv(2048))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        time.sleep(0.3)
        stop.set()
        thread.join()
        for name, s in sockets:  # what is still queued was captured too
            s.setblocking(False)
            while True:
                try:
                    record(name, s.recv(2048))
                except OSError:
                    break
            s.close()


def attached_networks(container, topology) -> set[str]:
    container.reload()
    by_docker_name = {n.docker_name: n.name for n in topology.networks.values()}
    return {by_docker_name[n] for n in container.attrs["NetworkSettings"]["Networks"] if n in by_docker_name}


def routers6(topology) -> set[str]:
    """Every IPv6 address of a lab router (its LAN and internet sides)."""
    return {a for r in topology.routers for a in topology.services[r].addresses6.values()}


def foreign_targets(container, topology) -> list[str]:
    """The outside ULA and the host's address on every lab bridge this container is not on."""
    mine = attached_networks(container, topology)
    return [OUTSIDE6] + [n.bridge_address6 for n in topology.networks.values()
                         if n.name not in mine and n.bridge_address6]


def test_every_ipv6_route_out_names_a_lab_router_or_is_unreachable(ctr, topology):
    """The routers' route to the datacenter's /64 names the server, which forwards nothing."""
    bridges = {n.bridge_address6 for n in topology.networks.values()}
    assert sh(ctr["server"], "cat /proc/sys/net/ipv6/conf/all/forwarding").strip() == "0"
    routers = routers6(topology) | set(topology.services["server"].addresses6.values())
    looked = 0
    for name, container in ctr.items():
        for target in foreign_targets(container, topology):
            code, output = container.exec_run(["ip", "-6", "route", "get", target])
            text = output.decode()
            looked += 1
            if code != 0:
                assert "unreachable" in text, f"{name} -> {target}: {text}"
                continue
            assert " via " in text, f"{name} -> {target}: an on-link route out: {text}"
            gateway = text.split(" via ")[1].split()[0]
            assert gateway not in bridges, f"{name} -> {target}: via the host's bridge address: {text}"
            assert gateway in routers, f"{name} -> {target}: via {gateway}, no lab router: {text}"
    assert looked >= len(ctr) * 2


def test_ipv6_probes_to_other_bridges_and_outside_never_arrive(ctr, topology):
    """From every container, a ping to the outside ULA and to the host's address on every bridge it
    is not on. A probe that leaves its container is seen on its own bridge (it was sent), sent to a
    lab router's MAC, never to the host's (which would deliver it to itself) nor on a host interface
    outside the lab."""
    interfaces = host_interfaces()
    macs = host_macs()
    probes = {name: foreign_targets(c, topology) for name, c in ctr.items()}
    with sniff(interfaces["bridges"] + interfaces["outside"]) as seen:
        for name, container in ctr.items():
            pings = " ".join(f"ping -6 -n -c 1 -W 1 {t} >/dev/null 2>&1 &" for t in probes[name])
            container.exec_run(["sh", "-c", f"{pings} wait"])
    targets = {t for ts in probes.values() for t in ts}
    arrived = [f for f in seen if f[2] in targets and (f[0] in interfaces["outside"] or f[4] in macs)]
    assert not arrived, f"probes reached the host or left the lab: {arrived[:5]}"
    sent = {(f[1], f[2]) for f in seen if f[2] in targets and f[3] == 58}  # ICMPv6, on the sender's bridge
    client6 = set(topology.client_addresses6.values())
    assert any(src in client6 for src, _ in sent), f"no probe from the client was seen leaving it: {seen[:10]}"
    assert any(src == topology.server_address6 for src, _ in sent), "no probe from the server was seen"


def test_the_host_drops_ipv6_a_container_routes_through_it(ctr, topology):
    """Docker set the host's IPv6 forwarding; a container that routes via the host's bridge address
    (here the server, towards carrier-nat's cellular address) is stopped by the lab's guard."""
    assert host6.read_forwarding()["all"] == "1", "Docker did not switch on the host's IPv6 forwarding"
    rules = subprocess.run(["ip6tables", "-w", "-S", host6.FORWARD_CHAIN], capture_output=True, text=True)
    assert "-i lab-+ -j DROP" in rules.stdout, rules.stdout + rules.stderr
    target = topology.services["carrier-nat"].addresses6["cellular"]
    host_side = topology.networks["internet"].bridge_address6
    server = ctr["server"]
    sh(server, f"ip -6 route replace {target}/128 via {host_side}")
    try:
        with sniff(["lab-internet", "lab-cellular"]) as seen:
            server.exec_run(["ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "1", target])
    finally:
        sh(server, f"ip -6 route del {target}/128 via {host_side}")
    to_target = [f for f in seen if f[2] == target and f[1] == topology.server_address6]
    assert any(f[0] == "lab-internet" and f[4] in host_macs() for f in to_target), \
        f"the probe never reached the host: {seen[:10]}"
    assert not any(f[0] == "lab-cellular" for f in to_target), f"the host forwarded it to cellular: {to_target}"


def test_routed_not_nated_the_server_sees_the_clients_own_ipv6_address(ctr, topology):
    server, client = ctr["server"], ctr["client"]
    for proto, flag in (("UDP", "u"), ("TCP", "t")):
        listening = sh(server, f"ss -Hl{flag}n 'sport = :{topology.server_port}'")
        assert "*:" in listening or "[::]:" in listening, f"{proto} {topology.server_port}: {listening}"
    port = 40016
    probe = ("import socket,sys;s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);s.bind(('::',int(sys.argv[1])));"
             "s.settimeout(10);d,a=s.recvfrom(100);s.sendto(a[0].encode(),a);print(a[0])")
    server.exec_run(["python3", "-c", probe, str(port)], detach=True)
    wait_listening(server, port)
    send = ("import socket,sys;s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);s.settimeout(5);"
            "s.sendto(b'probe',(sys.argv[1],int(sys.argv[2])));print(s.recvfrom(100)[0].decode())")
    seen = sh(client, f"python3 -c \"{send}\" {topology.server_address6} {port}").strip()
    network = next(iter(attached_networks(client, topology) & set(topology.client_addresses6)))
    assert seen == topology.client_addresses6[network], seen


def capture_text(router, interface: str, port: int):
    """tcpdump's text lines of UDP ``port`` on a router interface, until stopped (kill)."""
    router.exec_run(["sh", "-c", f"rm -f /tmp/xlat-{interface}.txt; exec timeout 20 tcpdump -i {interface} -n -l "
                                 f"udp port {port} > /tmp/xlat-{interface}.txt 2>/dev/null"], detach=True)


def test_ipv6_only_cellular_carries_ipv4_through_the_clat_and_the_nat64(ctr, topology):
    """cellular6: the client keeps no IPv4 address there; an IPv4 datagram to the server leaves as
    IPv6 from the CLAT's address to prefix::server (the carrier's LAN side) and reaches the server
    from the NAT64's IPv4 WAN address (its WAN side). IPv6 to the server goes natively, not NATed."""
    xlat = topology.nat64
    assert xlat is not None and topology.gateways["cellular6"].ipv6_only
    router = ctr[xlat.router]
    lab = Lab(topology)
    port = 40017
    try:
        started = time.monotonic()
        result = lab.connect("cellular6", route=True)
        client = ctr["client"]
        interface = result.detail["clat"]["interface"]
        assert sh(client, f"ip -4 -o addr show dev {interface}").strip() == "", "IPv4 left on cellular6"
        assert "dev clat" in sh(client, f"ip route get {topology.server_address}")
        lan = interface_in(router, topology.networks["cellular6"].subnet)
        wan = interface_in(router, topology.networks["internet"].subnet)
        for side in (lan, wan):
            capture_text(router, side, port)
        time.sleep(0.5)
        seen = observed_source(ctr, topology, port)
        reached = time.monotonic() - started
        assert seen.split(":")[0] == topology.router_public_address(xlat.router), seen
        time.sleep(0.3)
        router.exec_run(["sh", "-c", "pkill tcpdump; true"])
        lan_lines = sh(router, f"cat /tmp/xlat-{lan}.txt")
        wan_lines = sh(router, f"cat /tmp/xlat-{wan}.txt")
        target6 = xlat.synthesize(topology.server_address)
        assert f"IP6 {xlat.clat_address6}." in lan_lines and f"> {target6}.{port}" in lan_lines, lan_lines
        assert "IP " + topology.router_public_address(xlat.router) in wan_lines, wan_lines
        assert f"> {topology.server_address}.{port}" in wan_lines, wan_lines
        print(f"connect to cellular6 until the first datagram through 464XLAT was answered: {reached:.2f} s")
        native = ("import socket,sys;s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);s.settimeout(5);"
                  "s.sendto(b'probe',(sys.argv[1],int(sys.argv[2])));print(s.recvfrom(100)[0].decode())")
        server = ctr["server"]
        probe = ("import socket,sys;s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);s.bind(('::',int(sys.argv[1])));"
                 "s.settimeout(10);d,a=s.recvfrom(100);s.sendto(a[0].encode(),a);print(a[0])")
        server.exec_run(["python3", "-c", probe, str(port + 1)], detach=True)
        wait_listening(server, port + 1)
        seen6 = sh(client, f"python3 -c \"{native}\" {topology.server_address6} {port + 1}").strip()
        assert seen6 == topology.client_addresses6["cellular6"], seen6
    finally:
        lab.reset()
    assert ctr["client"].exec_run(["ip", "link", "show", "clat"])[0] != 0, "the CLAT outlived the reset"


def test_lab_down_gives_the_host_its_ipv6_forwarding_back(topology):
    """Last in this file: down and up again. The value saved at the first `up` is what `down` writes back."""
    saved = json.loads(Path(host6.STATE).read_text())
    result = run_lab("down")
    assert result.returncode == 0, result.stderr
    assert "forwarding" in result.stdout, result.stdout
    others = host6.other_networks_with_ipv6(topology.project)
    if others:  # the host must go on forwarding for them: down says so (restore_plan)
        assert "left as it is" in result.stdout and others[0] in result.stdout, result.stdout
    else:
        assert host6.read_forwarding() == saved, (host6.read_forwarding(), saved)
    listing = subprocess.run(["ip6tables", "-w", "-S"], capture_output=True, text=True).stdout
    assert host6.FORWARD_CHAIN not in listing and host6.INPUT_CHAIN not in listing, listing
    result = run_lab("up")
    assert result.returncode == 0, result.stderr
    listing = subprocess.run(["ip6tables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout
    assert f"-j {host6.FORWARD_CHAIN}" in listing.splitlines()[1], listing  # first, before anything else
