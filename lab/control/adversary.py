"""The adversaries on the live lab (RFC 9000 §9.3.1-9.3.3, §21.5.4): their hosts, the attacks, the undo.

Three kinds of attack (:data:`lab.control.attacks.KINDS`), each switched on and off by an ``attack`` step:

- ``rewrite`` (on-path, §9.3.2): the client network's router is made to send its traffic for the
  server through the attacker (a host route: what a hijacked next hop looks like), and the
  attacker rewrites the source of those datagrams to the victim's address (iptables SNAT).
- ``forward`` (off-path, §9.3.3): a sensor on the client network (a packet socket on the router's
  LAN side, where a radio on the same Wi-Fi hears the client) sends the attacker a copy of each
  datagram to the server; the attacker sends it on from its own address, ahead of the original
  when the real path is slower.
- ``spoof`` (off-path, §9.3.1, §21.5.4): the same copies, sent with the victim's address as the
  source, so that the server's answers to the apparent migration land on the victim.

The victim and the attacker run only for the scenarios that attack (compose profile
``adversary``): :func:`ensure_up` before such a run, :func:`remove` after it. Every rule and
process an attack adds is undone by :func:`stop_all`, which the lab's reset calls.
"""

from __future__ import annotations

import subprocess
import time
from typing import Protocol

from docker.models.containers import Container

from lab.control.attacks import KINDS, attack_address
from lab.control.base import ActionError, ActionResult, interface_in
from lab.control.docker_api import containers, exec_checked
from lab.topology.model import Adversary, Topology

__all__ = ["KINDS", "attack", "attack_address", "ensure_up", "hosts", "remove", "reset_commands", "running", "stop_all"]

TAG = "lab-attack"
SPOOF_PORT = 40443  # the victim's port the spoofed copies claim to come from
TAP = "lab.endpoints.adversary.tap"
FORWARD = "lab.endpoints.adversary.forward"


def _pattern(module: str) -> str:
    """A pkill -f pattern that matches the module's process but not a shell whose command names it."""
    return module.replace(".", "[.]")



class LabHandle(Protocol):
    topology: Topology

    def ctr(self, service: str) -> Container: ...


def _require(topology: Topology) -> Adversary:
    if topology.adversary is None:
        raise ActionError("compose.yaml defines no adversary (x-lab.adversary): attack steps need one")
    return topology.adversary


def _compose(*args: str) -> subprocess.CompletedProcess:
    from lab.topology.load import compose_command

    return subprocess.run([*compose_command(), *args], capture_output=True, text=True, timeout=180)


def hosts(topology: Topology) -> tuple[str, ...]:
    return () if topology.adversary is None else topology.adversary.services


def running(topology: Topology) -> bool:
    if topology.adversary is None:
        return False
    found = containers(topology)
    return all(name in found for name in topology.adversary.services)


def ensure_up(topology: Topology) -> None:
    """Start the victim and the attacker (and wait until they are healthy)."""
    adversary = _require(topology)
    if running(topology):
        return
    result = _compose("--profile", adversary.profile, "up", "-d", "--wait", "--no-deps", *adversary.services)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise ActionError(f"starting the victim and the attacker (profile {adversary.profile}): {last}")


def remove(topology: Topology) -> None:
    """Stop and remove the victim and the attacker: only the scenarios that attack have them."""
    if topology.adversary is None:
        return
    _compose("--profile", topology.adversary.profile, "rm", "-s", "-f", *topology.adversary.services)


def _detached(target: Container, module: str, args: list[str]) -> None:
    # Into the container's own stdout, so the runner's log stream carries its lines and events.
    command = " ".join(["exec", "python", "-m", module, *args, ">/proc/1/fd/1", "2>&1"])
    target.exec_run(["sh", "-c", command], detach=True)


def _wait_gone(target: Container, pattern: str, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.exec_run(["pgrep", "-f", _pattern(pattern)])[0] != 0:
            return
        time.sleep(0.05)
    target.exec_run(["pkill", "-KILL", "-f", _pattern(pattern)])


def attack(lab: LabHandle, network: str, kind: str, on: bool) -> ActionResult:
    """Switch one attack on or off on a client network; returns what was done, for the timeline."""
    topology = lab.topology
    adversary = _require(topology)
    spec = KINDS[kind]
    router_name = topology.gateways[network].router
    router, attacker = lab.ctr(router_name), lab.ctr("attacker")
    server = topology.server_address
    router_wan = topology.router_public_address(router_name)
    detail = {"kind": kind, "state": "on" if on else "off", "router": router_name,
              "attack_address": attack_address(adversary, kind), "does": spec.does}
    if spec.on_path:
        snat = ["-t", "nat", "POSTROUTING", "-s", router_wan, "-d", server, "-p", "udp", "-m", "comment",
                "--comment", TAG, "-j", "SNAT", "--to-source", adversary.victim]
        table, chain, rule = snat[:2], snat[2], snat[3:]
        present = attacker.exec_run(["iptables", "-w", *table, "-C", chain, *rule])[0] == 0
        if on:
            if not present:
                exec_checked(attacker, ["iptables", "-w", *table, "-A", chain, *rule])
            attacker.exec_run(["sh", "-c", "conntrack -F >/dev/null 2>&1; true"])
            exec_checked(router, ["ip", "route", "replace", f"{server}/32", "via", adversary.attacker])
        else:
            router.exec_run(["ip", "route", "del", f"{server}/32", "via", adversary.attacker])
            if present:
                exec_checked(attacker, ["iptables", "-w", *table, "-D", chain, *rule])
            attacker.exec_run(["sh", "-c", "conntrack -F >/dev/null 2>&1; true"])
        got = exec_checked(router, ["ip", "route", "get", server])
        hijacked = f"via {adversary.attacker}" in got
        if hijacked != on:
            raise ActionError(f"{router_name}: the route to {server} is {got.strip()!r} after attack {kind} "
                              f"{detail['state']}")
        detail["route"] = got.strip().splitlines()[0]
        return ActionResult("attack", network, detail)
    if on:
        spoof = ["--spoof", f"{adversary.victim}:{SPOOF_PORT}"] if spec.source == "victim" else []
        _detached(attacker, FORWARD, ["--listen", str(adversary.tunnel_port), "--server",
                                      f"{server}:{topology.server_port}", "--kind", kind, *spoof])
        lan = interface_in(router, topology.networks[network].subnet)
        _detached(router, TAP, ["--iface", lan, "--server-port", str(topology.server_port),
                                "--to", f"{adversary.attacker}:{adversary.tunnel_port}"])
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:  # both must be listening before the step counts as done
            if all(c.exec_run(["pgrep", "-f", _pattern(m)])[0] == 0 for c, m in ((router, TAP), (attacker, FORWARD))):
                break
            time.sleep(0.05)
        else:
            raise ActionError(f"attack {kind}: the sensor on {router_name} or the forwarder did not start")
        time.sleep(0.1)  # the packet socket is bound a moment after the process appears
    else:
        router.exec_run(["pkill", "-f", _pattern(TAP)])
        attacker.exec_run(["pkill", "-TERM", "-f", _pattern(FORWARD)])  # it emits attack_stats on the way out
        _wait_gone(attacker, FORWARD)
    return ActionResult("attack", network, detail)


def reset_commands(topology: Topology) -> str:
    """Shell run on every router by the lab's reset: no hijacked route, no sensor."""
    if topology.adversary is None:
        return "true"
    return (f"ip route del {topology.server_address}/32 via {topology.adversary.attacker} 2>/dev/null; "
            f"pkill -f '{_pattern(TAP)}'; true")


def stop_all(lab: LabHandle) -> None:
    """Undo every attack on the attacker, if it runs (the routers' side is in :func:`reset_commands`)."""
    if not running(lab.topology):
        return
    attacker = lab.ctr("attacker")
    attacker.exec_run(["sh", "-c", f"pkill -TERM -f '{_pattern(FORWARD)}'; iptables -w -t nat -F; "
                                   "conntrack -F >/dev/null 2>&1; true"])
    _wait_gone(attacker, FORWARD)
