"""The lab's state as one would check it by hand, to compare before and after a fault, a Ctrl-C or a soak.

In every lab container: its qdiscs (``tc qdisc show``), policy rules (``ip rule``), every routing
table (``ip route show table all``), its firewall and NAT (``iptables-save``, all tables, without
counters) and its processes (a tcpdump, a client, a conntrack reader or a delay line left behind
shows there); the client's networks; on the host, the lab's containers and networks by name.

What legitimately changes when Compose recreates a container is normalised away: interface names
become the lab network they are on (a recreated container may number them differently), and the
ports of Docker's embedded DNS (random per container) become ``PORT``.

Pure core: `normalise`, `interfaces`, `without_empty_tables`, `processes`, `parse`, `diff`. Edge (docker-py): `take`.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field

from lab.control.docker_api import PROJECT_LABEL, client, containers
from lab.control.foreign import FOREIGN_LABEL, LAB_LABEL
from lab.topology.model import CLIENT, Topology

MARK = "lab-snapshot"  # names the snapshot's own shell, so that its processes are left out
SECTIONS = {
    "qdiscs": "tc qdisc show",
    "rules": "ip rule",
    "routes": "ip route show table all",
    "iptables": "iptables-save",
    "processes": "ps -eo args=",
    "processes-again": "sleep 0.3; ps -eo args=",
    "interfaces": "ip -o -4 addr show",
}
_SCRIPT = "; ".join(f"echo '@@ {name}'; {command} 2>&1" for name, command in SECTIONS.items())
_COUNTERS = re.compile(r" \[\d+:\d+\]$")
_DNS_PORT = re.compile(r"(127\.0\.0\.11:|--sport )\d+")
_ADDRESS = re.compile(r"^\d+:\s+(\S+)\s+inet\s+(\S+)")


@dataclass(frozen=True)
class LabSnapshot:
    """Normalised state: container -> section -> lines; plus the client's networks and the host's lists."""

    containers: dict[str, dict[str, tuple[str, ...]]]
    client_networks: tuple[str, ...]
    host: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "containers", "networks" -> names


def interfaces(addr_output: str, subnets: dict[str, str]) -> dict[str, str]:
    """``ip -o -4 addr show`` -> interface name -> the lab network its address is in (pure)."""
    found = {}
    for line in addr_output.splitlines():
        match = _ADDRESS.match(line.strip())
        if not match:
            continue
        name, address = match[1].split("@")[0], ipaddress.ip_interface(match[2]).ip
        for network, subnet in subnets.items():
            if address in ipaddress.ip_network(subnet):
                found[name] = network
    return found


def normalise(text: str, names: dict[str, str]) -> tuple[str, ...]:
    """One section's lines without what a recreated container changes legitimately (pure).

    Interface names (as whole words) become ``<network>``; iptables counters, iptables-save's
    dated comments and the embedded DNS's ports go.
    """
    lines = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line or line.startswith("# "):
            continue
        line = _COUNTERS.sub("", line)
        if "127.0.0.11" in line:
            line = _DNS_PORT.sub(r"\1PORT", line)
        for interface, network in names.items():
            line = re.sub(rf"\b{re.escape(interface)}\b", f"<{network}>", line)
        lines.append(line)
    return tuple(lines)


def without_empty_tables(lines: tuple[str, ...]) -> tuple[str, ...]:
    """iptables-save lines without the tables that hold nothing (pure).

    A table with no rule and only built-in chains accepting is the kernel's default: it is listed
    once something has used it (an impairment's raw rules, since removed) and not in a new
    container, and both mean the same.
    """
    kept: list[str] = []
    block: list[str] = []
    for line in lines:
        if line.startswith("*"):
            block = [line]
        elif block:
            block.append(line)
            if line == "COMMIT":
                empty = all(entry.startswith(":") and entry.split()[1] == "ACCEPT" for entry in block[1:-1])
                kept += [] if empty else block
                block = []
        else:
            kept.append(line)
    return tuple(kept + block)


def processes(first: str, second: str) -> tuple[str, ...]:
    """Two ``ps -eo args=`` listings 0.3 s apart -> the command lines in both, sorted (pure).

    What lives a moment (a healthcheck's exec, its ``runc init``) is in one listing at most; a
    process left behind is in both. The snapshot's own processes are left out.
    """
    def listed(text: str) -> Counter[str]:
        return Counter(line.strip() for line in text.splitlines()
                       if line.strip() and MARK not in line and "ps -eo args=" not in line
                       and line.strip() != "runc init")

    return tuple(sorted((listed(first) & listed(second)).elements()))


def parse(output: str, subnets: dict[str, str], unused_defaults: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """The output of the snapshot script (``@@ section`` headers) -> normalised sections (pure).

    ``unused_defaults``: gateways whose main-table default route is left out. The client's
    default route via a bridge's own gateway is Docker's: the Engine adds it again on every
    connect, and the client never uses it (its policy rules skip the main table's defaults).
    """
    raw: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("@@ "):
            current = line[3:].strip()
            raw[current] = []
        elif current is not None:
            raw[current].append(line)
    addresses = "\n".join(raw.get("interfaces", []))
    names = interfaces(addresses, subnets)
    unused = tuple(f"default via {gateway} " for gateway in unused_defaults)
    raw["routes"] = [line for line in raw.get("routes", []) if not line.startswith(unused) or " table " in line]
    sections = {name: normalise("\n".join(lines), names) for name, lines in raw.items()
                if name not in ("processes", "processes-again", "interfaces")}
    sections["iptables"] = without_empty_tables(sections.get("iptables", ()))
    # A route table is a set: a recreated container lists the same routes in its interfaces' new order.
    sections["routes"] = tuple(sorted(sections.get("routes", ())))
    sections["processes"] = processes("\n".join(raw.get("processes", [])), "\n".join(raw.get("processes-again", [])))
    # Addresses by network: an interface's index and name may change, its network and address may not.
    sections["interfaces"] = tuple(sorted(f"<{names.get(m[1].split('@')[0], m[1])}> {m[2]}"
                                          for m in map(_ADDRESS.match, addresses.splitlines()) if m))
    return sections


def diff(before: LabSnapshot, after: LabSnapshot) -> list[str]:
    """What differs, one entry per container section (with its added and removed lines) (pure)."""
    problems = []
    for kind in sorted(set(before.host) | set(after.host)):
        old, new = set(before.host.get(kind, ())), set(after.host.get(kind, ()))
        if old != new:
            problems.append(f"host {kind}: extra {sorted(new - old)}, missing {sorted(old - new)}")
    if before.client_networks != after.client_networks:
        problems.append(f"client networks: {list(after.client_networks)}, not {list(before.client_networks)}")
    for name in sorted(set(before.containers) | set(after.containers)):
        old_sections, new_sections = before.containers.get(name), after.containers.get(name)
        if old_sections is None or new_sections is None:
            problems.append(f"{name}: {'appeared' if old_sections is None else 'missing'}")
            continue
        for section in sorted(set(old_sections) | set(new_sections)):
            old, new = old_sections.get(section, ()), new_sections.get(section, ())
            if old != new:
                changes = [line for line in difflib.unified_diff(old, new, lineterm="", n=0)
                           if line[:1] in "+-" and not line.startswith(("+++", "---"))]
                problems.append(f"{name} {section}: " + "; ".join(changes))
    return problems


def take(topology: Topology) -> LabSnapshot:
    """The live lab's state (the edge): one exec per running lab container, two lists on the host."""
    subnets = {name: network.subnet for name, network in topology.networks.items()}
    found = containers(topology)
    states = {}
    for name, target in sorted(found.items()):
        code, output = target.exec_run(["sh", "-c", f": {MARK}; {_SCRIPT}"])
        unused = tuple(n.gateway or str(next(ipaddress.ip_network(n.subnet).hosts()))  # Docker's default
                       for n in topology.networks.values()) if name == CLIENT else ()
        if name == CLIENT:  # and Docker's IPv6 default, also added again on every connect
            unused += tuple(n.bridge_address6 for n in topology.networks.values() if n.bridge_address6)
        states[name] = parse(output.decode(errors="replace"), subnets, unused)
    client_networks: tuple[str, ...] = ()
    if CLIENT in found:
        attached = found[CLIENT].attrs["NetworkSettings"]["Networks"]
        client_networks = tuple(sorted(n.name for n in topology.networks.values() if n.docker_name in attached))
    api = client()
    listed = api.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={topology.project}"})
    listed += api.containers.list(all=True, filters={"label": [FOREIGN_LABEL, f"{LAB_LABEL}={topology.project}"]})
    lab_containers = {f"{c.name} ({c.status})" for c in listed}
    ours = {n.docker_name for n in topology.networks.values()}
    networks = {n.name for n in api.networks.list(filters={"label": f"{PROJECT_LABEL}={topology.project}"})}
    networks |= {n.name for n in api.networks.list() if n.name in ours}
    return LabSnapshot(states, client_networks, {"containers": tuple(sorted(lab_containers)),
                                                 "networks": tuple(sorted(networks))})
