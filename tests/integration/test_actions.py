"""Every controller action against the real lab, each checked by its effect on real packets."""

from __future__ import annotations

import json
import time

import pytest

from lab.control.actions import Lab, parse_conntrack_list
from tests.integration.test_topology import wait_listening

LISTENER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
try:
    while True:
        data, addr = s.recvfrom(100)
        print(f"{addr[0]}:{addr[1]}", flush=True)
        s.sendto(data, addr)
except socket.timeout:
    pass
"""

SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[3])))
s.settimeout(0.05)
replies = 0
end = time.time() + float(sys.argv[4])
while time.time() < end:
    try:
        s.sendto(b"probe", ("::ffff:" + sys.argv[1], int(sys.argv[2])))
        s.recvfrom(100)
        replies += 1
    except OSError:
        pass
    time.sleep(0.05)
print(replies, flush=True)
"""


class Flow:
    """A UDP flow from the client's wildcard socket to a listener on the server, for `seconds`."""

    def __init__(self, lab: Lab, port: int, seconds: float) -> None:
        server, client = lab.ctr("server"), lab.ctr("client")
        api = server.client.api
        self.listener = api.exec_start(api.exec_create(server.id, ["python3", "-c", LISTENER, str(port),
                                                                   str(seconds + 1)])["Id"], stream=True)
        wait_listening(server, port)
        self.sender = api.exec_start(api.exec_create(client.id, ["python3", "-c", SENDER, lab.topology.server_address,
                                                                 str(port), str(port + 20000), str(seconds)])["Id"],
                                     stream=True)

    def result(self) -> tuple[list[str], int]:
        """(the source addresses the server saw in order of first appearance, replies the client got)."""
        replies = int(b"".join(self.sender).decode().strip() or 0)
        seen: list[str] = []
        for line in b"".join(self.listener).decode().split():
            if line not in seen:
                seen.append(line)
        return seen, replies


@pytest.fixture()
def lab(lab):  # noqa: F811 - the session fixture, reset before and after every test
    controller = Lab(lab)
    controller.reset(("home",))
    yield controller
    controller.reset(("home",))


def public_ip(lab: Lab, router: str) -> str:
    return lab.topology.router_public_address(router)


def test_switch_to_cellular_changes_the_address_the_server_sees(lab):
    flow = Flow(lab, 9920, 3.0)
    time.sleep(0.8)
    connect = lab.connect("cellular")
    assert connect.detail["address"] == lab.topology.client_addresses["cellular"]
    lab.route("cellular")
    time.sleep(0.5)
    lab.disconnect("home")
    assert set(lab.client_attachments()) == {"cellular"}
    seen, replies = flow.result()
    ips = [s.rsplit(":", 1)[0] for s in seen]
    assert ips[0] == public_ip(lab, "home-router")
    assert public_ip(lab, "carrier-nat") in ips
    assert replies > 20


def test_each_address_keeps_its_own_router_while_networks_join_and_leave(lab):
    """Make-before-break needs the Wi-Fi address's packets to keep leaving via the home router while
    cellular joins (a table renumbered on connect once sent them out through the carrier NAT)."""
    topology = lab.topology
    home, cellular = topology.client_addresses["home"], topology.client_addresses["cellular"]

    def via(source: str) -> str:
        code, out = lab.ctr("client").exec_run(["ip", "route", "get", topology.server_address, "from", source])
        assert code == 0, out
        return out.decode()

    assert f"via {topology.gateways['home'].address}" in via(home)
    lab.connect("cellular")
    for step in ("connect", "route"):
        assert f"via {topology.gateways['home'].address}" in via(home), step
        assert f"via {topology.gateways['cellular'].address}" in via(cellular), step
        lab.route("cellular")
    lab.disconnect("home")
    lab.connect("home")
    assert f"via {topology.gateways['home'].address}" in via(home)
    assert f"via {topology.gateways['cellular'].address}" in via(cellular)
    lab.reset()


def test_rebind_gives_a_new_external_port(lab):
    flow = Flow(lab, 9921, 2.5)
    time.sleep(0.8)
    result = lab.rebind("home-router")
    assert result.ok, result.detail
    assert result.detail["old_outside"] != result.detail["new_outside"]
    seen, _ = flow.result()
    home = public_ip(lab, "home-router")
    assert len([s for s in seen if s.startswith(home + ":")]) >= 2, seen
    assert result.detail["new_outside"] in seen


def test_renumber_gives_the_client_a_new_address(lab):
    before = lab.client_address("home")
    result = lab.renumber("home")
    after = lab.client_address("home")
    assert after != before and after == result.detail["new_address"]
    flow = Flow(lab, 9922, 1.0)
    seen, replies = flow.result()
    assert replies > 5 and seen[0].startswith(public_ip(lab, "home-router") + ":")
    router = lab.ctr("home-router")
    inside = [i for i, _ in parse_conntrack_list(router.exec_run(["conntrack", "-L", "-p", "udp"]).output.decode())]
    assert any(i.startswith(after + ":") for i in inside)


def test_blackhole_drops_every_packet_and_lifts(lab):
    lab.blackhole("home", True)
    flow = Flow(lab, 9923, 1.0)
    seen, replies = flow.result()
    assert seen == [] and replies == 0
    lab.blackhole("home", False)
    flow = Flow(lab, 9924, 1.0)
    seen, replies = flow.result()
    assert replies > 5
    assert set(lab.client_attachments()) == {"home"}  # interfaces untouched


def test_captures_hold_both_sides_of_the_nat(lab, tmp_path):
    names = lab.start_captures()
    assert "home-router-lan" in names and "home-router-wan" in names
    flow = Flow(lab, 9925, 1.0)
    flow.result()
    saved = {p.stem: p for p in lab.stop_captures(tmp_path)}
    # A pcap header is 24 bytes; each side saw the probes (port 9925 is outside the QUIC filter, so
    # only QUIC/TCP 443 traffic is kept: check the files exist and are valid pcaps).
    for side in ("home-router-lan", "home-router-wan"):
        assert saved[side].read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")


def test_reset_restores_the_initial_state(lab):
    lab.connect("office")
    lab.route("office")
    lab.blackhole("home", True)
    lab.reset(("home",))
    assert lab.client_attachments() == {"home": lab.topology.client_addresses["home"]}
    route = lab.ctr("client").exec_run(["ip", "route", "get", lab.topology.server_address]).output.decode()
    assert f"via {lab.topology.gateways['home'].address}" in route
    rules = lab.ctr("home-router").exec_run(["iptables", "-S", "FORWARD"]).output.decode()
    assert "lab-blackhole" not in rules


def test_an_aware_client_migrates_by_itself_when_its_address_disappears(lab):
    """--watch-interfaces: the client sees its home address vanish and moves to cellular (RFC 9000 §9.2)."""
    client = lab.ctr("client")
    api = client.client.api
    command = ["python", "-m", "lab.endpoints.client", f"--server={lab.topology.server_address}:443", "--size=6MB",
               "--rate=2MB/s", "--migration=active", "--watch-interfaces", "--control-socket=",
               f"--local={lab.topology.client_addresses['home']}"]
    output = api.exec_start(api.exec_create(client.id, command)["Id"], stream=True)
    time.sleep(1.2)
    lab.connect("cellular", route=True)
    time.sleep(0.4)
    lab.disconnect("home")
    events = [ev for ev in (json.loads(line) for line in b"".join(output).decode().splitlines()
                            if line.startswith("{"))]
    started = [e for e in events if e["type"] == "migration_started"]
    completed = [e for e in events if e["type"] == "migration_completed"]
    assert started and started[0]["new_local"] == lab.topology.client_addresses["cellular"]
    assert completed and completed[0]["local"].startswith(lab.topology.client_addresses["cellular"] + ":")
    done = [e for e in events if e["type"] == "transfer_complete"]
    assert done and done[0]["ok"] is True
