"""The server farm on the live lab: start and remove it, switch the balancer's mode, read its flows.

The balancer and the replicas run only for what needs them (compose profile ``farm``, as the
adversaries do): :func:`ensure_up`, then :func:`remove`. :func:`set_mode` replaces the
balancer's rules (``lab.endpoints.balancer.lb --apply``) and forgets its flows. :func:`flows`
is the balancer's conntrack table, parsed: which client tuple the kernel sent to which replica,
the evidence of where each new flow landed.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from docker.models.containers import Container

from lab.control.base import ActionError, ActionResult
from lab.control.docker_api import container, containers, exec_checked
from lab.endpoints.balancer.rules import Backend
from lab.topology.farm import Farm, farm_of
from lab.topology.model import Topology

_ENTRY = re.compile(r"src=(?P<src>\S+) dst=(?P<dst>\S+) sport=(?P<sport>\d+) dport=(?P<dport>\d+)"
                    r".*?src=(?P<rsrc>\S+) dst=\S+ sport=\d+ dport=\d+")


@dataclass(frozen=True)
class Flow:
    client: str  # the client's tuple as the balancer sees it (post-NAT), "ip:port"
    replica: str  # the replica's address the flow was DNATed to


def parse_flows(conntrack_list: str, farm: Farm) -> list[Flow]:
    """``conntrack -L -p udp`` of the balancer -> the flows to the farm's address (pure)."""
    found = []
    for line in conntrack_list.splitlines():
        m = _ENTRY.search(line)
        if m and m["dst"] == farm.address and int(m["dport"]) == farm.port:
            found.append(Flow(f"{m['src']}:{m['sport']}", m["rsrc"]))
    return found


def require(topology: Topology) -> Farm:
    farm = farm_of(topology)
    if farm is None:
        raise ActionError("compose.yaml defines no farm (x-lab.farm)")
    return farm


def _compose(*args: str) -> subprocess.CompletedProcess:
    from lab.topology.load import compose_command

    return subprocess.run([*compose_command(), *args], capture_output=True, text=True, timeout=180)


def running(topology: Topology) -> bool:
    farm = farm_of(topology)
    return farm is not None and all(name in containers(topology) for name in farm.services)


def ensure_up(topology: Topology) -> Farm:
    """Start the balancer and the replicas and wait until they are healthy."""
    farm = require(topology)
    if not running(topology):
        result = _compose("--profile", farm.profile, "up", "-d", "--wait", "--no-deps", *farm.services)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
            raise ActionError(f"starting the farm (profile {farm.profile}): {last}")
    return farm


def remove(topology: Topology) -> None:
    farm = farm_of(topology)
    if farm is not None:
        _compose("--profile", farm.profile, "rm", "-s", "-f", *farm.services)


def set_mode(topology: Topology, mode: str) -> None:
    """Install ``hash`` or ``cid`` on the balancer and forget every flow."""
    farm = require(topology)
    exec_checked(container(topology, farm.balancer), ["python", "-m", "lab.endpoints.balancer.lb", "--apply", mode])


def flows(topology: Topology) -> list[Flow]:
    farm = require(topology)
    return parse_flows(exec_checked(container(topology, farm.balancer), ["conntrack", "-L", "-p", "udp"]), farm)


# --- what a farm scenario does (lab.scenario.steps: farm_rebind, give_up; the runner's captures) ----

DEFAULT_TRIES = 16  # P(16 rebindings all hashed to the replica that holds the connection) = 2**-16
NEW_FLOW_WAIT = 5.0  # s for a rebound client's next packet to make a new flow at the balancer
CAPTURE_DIR = "/tmp/lab-capture"


class LabHandle(Protocol):
    topology: Topology

    def ctr(self, service: str) -> Container: ...
    def rebind(self, router: str) -> ActionResult: ...


def mode(topology: Topology) -> str:
    farm = require(topology)
    return exec_checked(container(topology, farm.balancer), ["cat", "/run/lab/balancer-mode"]).strip()


def _next_flow(topology: Topology, seen: set[str]) -> Flow | None:
    deadline = time.monotonic() + NEW_FLOW_WAIT
    while time.monotonic() < deadline:
        found = next((f for f in flows(topology) if f.client not in seen), None)
        if found is not None:
            return found
        time.sleep(0.05)
    return None


def rebind_until_moved(lab: LabHandle, router: str, tries: int = DEFAULT_TRIES,
                       give_up_after: float | None = None) -> ActionResult:
    """Rebind ``router``'s NAT until the balancer sends the new flow to another replica (at most ``tries``).

    The replica holding the connection is the one its flows went to before the first rebinding. A
    rebinding that hashes to it again is a migration the replica follows; the loop goes on. The
    detail lists every new flow and its replica, as the balancer's conntrack table showed them.
    ``give_up_after``: once the flow moved, wait that long, then end the client (:func:`give_up`).
    """
    topology = lab.topology
    farm = require(topology)
    before = flows(topology)
    held = {f.replica for f in before}
    if len(held) != 1:
        raise ActionError(f"farm_rebind: the balancer holds flows to {len(held)} replicas before the rebinding "
                          f"({', '.join(f'{f.client} -> {f.replica}' for f in before) or 'none'}): no one holder")
    holder = farm.replica_at(held.pop())
    if holder is None:
        raise ActionError(f"farm_rebind: the balancer's flow goes to {before[0].replica}, no replica of x-lab.farm")
    seen = {f.client for f in before}
    started = time.time()
    rebindings: list[dict[str, Any]] = []
    moved: Backend | None = None
    for _ in range(tries):
        rebound = lab.rebind(router)
        flow = _next_flow(topology, seen)
        if flow is None:
            raise ActionError(f"farm_rebind: no new flow at the balancer within {NEW_FLOW_WAIT:g} s of rebinding "
                              f"{router} ({rebound.detail}); flows: {flows(topology)}")
        seen.add(flow.client)
        replica = farm.replica_at(flow.replica)
        rebindings.append({"outside": flow.client, "replica": replica.name if replica else flow.replica,
                           "router_outside": rebound.detail.get("new_outside")})
        if replica != holder:
            moved = replica
            break
        time.sleep(0.3)  # the same replica: it validates the new path; rebind again
    detail: dict[str, Any] = {
        "mode": mode(topology), "holder": holder.name, "holder_address": holder.address,
        "first_flow": before[0].client, "rebindings": rebindings, "tries": len(rebindings), "max_tries": tries,
        "moved_to": moved.name if moved else None, "moved_flow": rebindings[-1]["outside"] if moved else None,
        "moved_after_s": round(time.time() - started, 3) if moved else None}
    if moved is not None and give_up_after is not None:
        time.sleep(give_up_after)
        detail["gave_up"] = give_up(lab)
    return ActionResult("farm_rebind", router, detail)


def give_up(lab: LabHandle) -> dict[str, Any]:
    """End the lab's client (SIGTERM): the user who gives up on a connection that stopped answering."""
    from lab.topology.model import CLIENT

    code, _ = lab.ctr(CLIENT).exec_run(["pkill", "-TERM", "-f", "python -m lab[.]endpoints[.]client"])
    return {"signal": "SIGTERM", "at": time.time(), "ended": code == 0}


def start_captures(lab: LabHandle) -> list[str]:
    """dumpcap on each replica's farm interface: which replica got which datagram, and what it sent.

    dumpcap, not tcpdump: the replicas drop every capability but NET_ADMIN and NET_RAW, and tcpdump
    changes user. Named after the replica: the judge reads them beside the server's view, not in it.
    """
    farm = require(lab.topology)
    names = []
    for replica in farm.replicas:
        target = lab.ctr(replica.name)
        iface = exec_checked(target, ["sh", "-c", f"ip -o -4 addr | awk '$4 ~ /^{replica.address}\\// "
                                                  "{print $2}'"]).strip()
        if not iface:
            raise ActionError(f"{replica.name}: no interface holds {replica.address}")
        exec_checked(target, ["sh", "-c", f"pkill dumpcap; rm -rf {CAPTURE_DIR}; mkdir -p {CAPTURE_DIR}; true"])
        target.exec_run(["dumpcap", "-q", "-p", "-P", "-i", iface, "-f", "udp", "-w",
                         f"{CAPTURE_DIR}/{replica.name}.pcap"], detach=True)
        names.append(replica.name)
    return names


def stop_captures(lab: LabHandle, destination: Path) -> list[Path]:
    farm = require(lab.topology)
    destination.mkdir(parents=True, exist_ok=True)
    saved = []
    for replica in farm.replicas:
        target = lab.ctr(replica.name)
        target.exec_run(["sh", "-c", "pkill -INT dumpcap; sleep 0.3; true"])
        code, data = target.exec_run(["cat", f"{CAPTURE_DIR}/{replica.name}.pcap"])
        if code == 0 and data:
            path = destination / f"{replica.name}.pcap"
            path.write_bytes(data)
            saved.append(path)
    return saved


def collect(topology: Topology, runtime: Path, run_dir: Path, conns: set[str]) -> list[Path]:
    """Each replica's qlogs of the run's connections (into the run's server/qlog/, named after the
    replica) and its key log (into <replica>/keys.log, then emptied: the farm is removed after the run)."""
    farm = require(topology)
    copied = []
    for replica in farm.replicas:
        logs = runtime / replica.name
        for conn in sorted(conns):
            for path in (logs / "qlog").glob(f"{conn}*.qlog"):
                target = run_dir / "server" / "qlog" / f"{replica.name}--{path.name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
                copied.append(target)
        keys = logs / "keys.log"
        if keys.is_file() and keys.stat().st_size:
            (run_dir / replica.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(keys, run_dir / replica.name / "keys.log")
            copied.append(run_dir / replica.name / "keys.log")
            with contextlib.suppress(OSError):
                keys.write_text("")
    return copied
