"""NAT behaviours on the real lab (RFC 4787): what the server sees of one client socket.

A UDP listener on the server records the source of each datagram; the client sends from one
socket to the server's two addresses (the datacenter address is routed via the server), so
the server sees the mapping the home router's behaviour implies. Then nat-idle-timeout on the
real lab: the binding expires during the quiet time and the next packet gets a new port.
"""

from __future__ import annotations

import json
import time

import pytest

from lab import nat_behaviour as nb
from lab.control.actions import Lab
from lab.topology.load import ROOT
from tests.integration.conftest import sh
from tests.integration.test_scenarios import run_scenario

ROUTER = "home-router"
PORT = 9999
LISTENER = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", {PORT}))
with open("/tmp/nat-peers.log", "a", buffering=1) as log:
    while True:
        data, peer = s.recvfrom(100)
        log.write(f"{{data.decode()}} {{peer[0]}}:{{peer[1]}}\\n")
"""


@pytest.fixture
def home(lab):
    """The lab with the client on home and a UDP listener on the server; compose.yaml's NAT after."""
    controller = Lab(lab)
    controller.reset(("home",))
    server = controller.ctr("server")
    sh(server, "rm -f /tmp/nat-peers.log")
    server.exec_run(["python3", "-c", LISTENER], detach=True)
    time.sleep(0.5)
    yield controller
    server.exec_run(["pkill", "-f", "nat-peer[s].log"])  # [s]: the pattern does not match itself
    sh(server, "rm -f /tmp/nat-peers.log")
    controller.reset()
    assert "--random-fully" in sh(controller.ctr(ROUTER), "iptables -w -t nat -S POSTROUTING")
    assert sh(controller.ctr(ROUTER), "iptables -w -t raw -S PREROUTING").count(nb.TIMEOUT_TAG) == 1
    assert controller.ctr(ROUTER).exec_run(["test", "-e", nb.CHANGED_MARKER]).exit_code == 1


def send(lab: Lab, port: int, destinations: tuple[str, ...], label: str) -> None:
    script = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
              f"s.bind(('0.0.0.0',{port}))\n"
              f"for d in sys.argv[1:]: s.sendto(b'{label}->'+d.encode(),(d,{PORT}))\n")
    sh(lab.ctr("client"), f"python3 -c \"{script}\" {' '.join(destinations)}")


def seen(lab: Lab, label: str, count: int) -> dict[str, list[str]]:
    """Destination -> the client addresses the server saw for datagrams labelled ``label``."""
    deadline = time.monotonic() + 3
    while True:
        text = lab.ctr("server").exec_run(["cat", "/tmp/nat-peers.log"]).output.decode()
        lines = [line.split() for line in text.splitlines() if line.startswith(f"{label}->")]
        if len(lines) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    got: dict[str, list[str]] = {}
    for tag, peer in lines:
        got.setdefault(tag.split("->", 1)[1], []).append(peer)
    return got


def destinations(lab: Lab) -> tuple[str, str]:
    return lab.topology.server_address, lab.topology.server_preferred_address


@pytest.mark.parametrize("mapping, ports", [(nb.EIM, "preserve"), (nb.APDM, "random")])
def test_the_server_sees_the_mapping_the_behaviour_implies(home, mapping, ports):
    result = home.nat(ROUTER, mapping, ports)
    assert result.detail["rule"].endswith(" ".join(("-j MASQUERADE", *nb.masquerade_flags(mapping, ports))).strip())
    public = home.topology.router_public_address(ROUTER)
    for inside in (40001, 40002):
        label = f"{mapping}-{inside}"
        send(home, inside, destinations(home), label)
        got = seen(home, label, 2)
        assert set(got) == set(destinations(home)), got
        outside = {peer for peers in got.values() for peer in peers}
        assert {peer.rsplit(":", 1)[0] for peer in outside} == {public}
        ports_seen = {int(peer.rsplit(":", 1)[1]) for peer in outside}
        if mapping == nb.EIM:  # §4.1.1: one outside port for both destinations, and it is the inside port
            assert ports_seen == {inside}, got
        else:  # §4.1.3: each destination its own, random port
            assert len(ports_seen) == 2 and inside not in ports_seen, got


@pytest.mark.parametrize("mapping, ports, new_port", [(nb.EIM, "preserve", False), (nb.APDM, "random", True)])
def test_an_expired_binding_gives_a_new_port_only_with_random_ports(home, mapping, ports, new_port):
    """With a 2 s binding timeout, a socket quiet for 3.5 s comes back on a new mapping; with port
    preservation the kernel picks the same port again, so the server sees no rebinding."""
    home.nat(ROUTER, mapping, ports, udp_timeout=2)
    server = home.topology.server_address
    send(home, 40011, (server,), f"before-{mapping}")
    before = seen(home, f"before-{mapping}", 1)[server]
    time.sleep(3.5)
    send(home, 40011, (server,), f"after-{mapping}")
    after = seen(home, f"after-{mapping}", 1)[server]
    assert (before != after) is new_port, (before, after)
    # Under the sysctls' 30 s, the same quiet time keeps the binding.
    home.nat(ROUTER, mapping, ports)
    send(home, 40012, (server,), f"kept-{mapping}")
    time.sleep(3.5)
    send(home, 40012, (server,), f"kept-{mapping}")
    kept = seen(home, f"kept-{mapping}", 2)[server]
    assert len(kept) == 2 and kept[0] == kept[1], kept


def test_nat_idle_timeout_rebinds_after_the_quiet_time_and_the_server_validates_it(lab):
    result = run_scenario("nat-idle-timeout")
    run_dir = (ROOT / "artifacts" / "nat-idle-timeout" / "latest").resolve()
    report = json.loads((run_dir / "report.json").read_text())
    assert result.returncode == 0, [c for c in report["checks"] if not c["passed"]]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    idle = next(e for e in events if e["type"] == "action" and e["action"] == "idle")
    ended = next(e for e in events if e["type"] == "idle_ended")
    assert ended["keepalive_ms"] is None and ended["pings"] == 0 and ended["dead_ms"] < 1000
    mappings = [e for e in events if e["type"] == "nat_mapping" and e["router"] == "carrier-nat"
                and e["change"] == "new" and e["inside"].startswith(lab.client_addresses["cellular"] + ":")]
    first, *later = mappings
    renewed = [e for e in later if e["inside"] == first["inside"] and e["ts"] > idle["ts"]]
    assert renewed and renewed[0]["outside"] != first["outside"], mappings
    validated = [e for e in events if e["type"] == "path_validated" and e["role"] == "server"]
    assert [e["peer"] for e in validated] == [renewed[0]["outside"]]
    assert Lab(lab).ctr("carrier-nat").exec_run(["test", "-e", nb.CHANGED_MARKER]).exit_code == 1  # reset
