"""The host's side of IPv6 containment: what `lab up` changes on the host and `lab down` restores.

Docker Engine 20.10 writes no IPv6 rules without the experimental ip6tables option, yet any network
with an IPv6 pool sets the host's ``net.ipv6.conf.{all,default}.forwarding=1`` (libnetwork's
``setupIPv6Forwarding``): the host would route IPv6 between the lab's bridges and out of its uplink
for any container that sent via its bridge's gateway (the host). The lab's containers never route
via the host (their routes name a lab router, see netconf), and the host adds two chains of its own
as a second wall:

- ``QUIC-LAB-V6`` (jumped to first from FORWARD): a routed packet that enters or leaves a lab bridge
  (``lab-*``) is dropped. Frames bridged within one lab bridge (``br_netfilter`` shows them to
  ip6tables too) are let through by ``physdev --physdev-is-bridged``: they are the lab itself.
- ``QUIC-LAB-V6-IN`` (first in INPUT): nothing from a lab bridge reaches the host's own IPv6
  addresses (its bridge addresses, its uplink's), except link-local and multicast (neighbour
  discovery, MLD).

The chains go in before Compose creates the networks (the rules name bridges by prefix), so there
is no moment of a dual-stack lab without them. The forwarding values found before the lab's first
`up` are saved in ``STATE`` and written back by `lab down`, unless another Docker network (not the
lab's) has IPv6, whose containers need the host to forward. Pure parts: ``guard_rules``,
``restore_plan``; the rest runs ip6tables and /proc/sys on the host (root only).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError

BRIDGES = "lab-+"  # every lab network's bridge is named lab-<network> in compose.yaml
FORWARD_CHAIN = "QUIC-LAB-V6"
INPUT_CHAIN = "QUIC-LAB-V6-IN"
STATE = Path("/run/quic-lab/host-ipv6.json")  # host-wide, like the setting it saves
SYSCTLS = ("all", "default")
PROC = Path("/proc/sys/net/ipv6/conf")


def guard_rules() -> dict[str, list[list[str]]]:
    """chain -> its rules (ip6tables arguments after ``-A CHAIN``)."""
    return {
        FORWARD_CHAIN: [
            ["-m", "physdev", "--physdev-is-bridged", "-j", "RETURN"],
            ["-i", BRIDGES, "-j", "DROP"],
            ["-o", BRIDGES, "-j", "DROP"],
        ],
        INPUT_CHAIN: [
            ["-i", BRIDGES, "-d", "fe80::/10", "-j", "RETURN"],
            ["-i", BRIDGES, "-d", "ff00::/8", "-j", "RETURN"],
            ["-i", BRIDGES, "-j", "DROP"],
        ],
    }


JUMPS = {FORWARD_CHAIN: "FORWARD", INPUT_CHAIN: "INPUT"}


@dataclass(frozen=True)
class Restore:
    """What `lab down` writes back: sysctl name -> value; ``why`` when nothing is written."""

    values: dict[str, str]
    why: str = ""


def restore_plan(saved: dict[str, str] | None, current: dict[str, str], others_with_ipv6: list[str]) -> Restore:
    """The forwarding values to write back (pure)."""
    if saved is None:
        return Restore({}, "no saved host setting (the lab did not save one at `up`)")
    if others_with_ipv6:
        return Restore({}, f"Docker network(s) {', '.join(others_with_ipv6)} outside the lab have IPv6 and need "
                           "the host to forward it")
    return Restore({name: value for name, value in saved.items() if current.get(name) != value})


def _is_root() -> bool:
    return os.geteuid() == 0 and shutil.which("ip6tables") is not None


def _ip6tables(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip6tables", "-w", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise LabError(f"host IPv6 guard: ip6tables {' '.join(args)}: {result.stderr.strip()}")
    return result


def read_forwarding() -> dict[str, str]:
    return {name: (PROC / name / "forwarding").read_text().strip() for name in SYSCTLS}


def install() -> str:
    """Save the host's forwarding (first `up` only) and put the chains in place; a note for the user."""
    if not _is_root():
        return ("note: not root, so the host's IPv6 guard (ip6tables) is not installed; containment rests on "
                "the containers' routes (docs/ipv6.md)")
    if not STATE.exists():
        STATE.parent.mkdir(parents=True, exist_ok=True)
        STATE.write_text(json.dumps(read_forwarding()) + "\n")
    for chain, rules in guard_rules().items():
        if _ip6tables("-n", "-L", chain, check=False).returncode != 0:
            _ip6tables("-N", chain)
        _ip6tables("-F", chain)
        for rule in rules:
            _ip6tables("-A", chain, *rule)
        if _ip6tables("-C", JUMPS[chain], "-j", chain, check=False).returncode != 0:
            _ip6tables("-I", JUMPS[chain], "1", "-j", chain)
    return ""


def uninstall(others_with_ipv6: list[str]) -> str:
    """Remove the chains and write back the saved forwarding; a line saying what was done."""
    if not _is_root():
        return ""
    for chain, parent in JUMPS.items():
        while _ip6tables("-D", parent, "-j", chain, check=False).returncode == 0:
            pass
        if _ip6tables("-n", "-L", chain, check=False).returncode == 0:
            _ip6tables("-F", chain)
            _ip6tables("-X", chain)
    saved = json.loads(STATE.read_text()) if STATE.exists() else None
    plan = restore_plan(saved, read_forwarding(), others_with_ipv6)
    for name, value in plan.values.items():
        (PROC / name / "forwarding").write_text(value + "\n")
    if saved is not None and not plan.why:
        STATE.unlink(missing_ok=True)
    if plan.why:
        return f"==> host IPv6 guard removed; forwarding left as it is: {plan.why}"
    restored = ", ".join(f"{k}={v}" for k, v in plan.values.items()) or "unchanged"
    return f"==> host IPv6 guard removed; net.ipv6.conf forwarding restored ({restored})"


def other_networks_with_ipv6(project: str) -> list[str]:
    """Docker networks with IPv6 that are not the lab's (they need the host's forwarding)."""
    from lab.control.docker_api import PROJECT_LABEL, client

    return sorted(n.name for n in client().networks.list()
                  if n.attrs.get("EnableIPv6") and (n.attrs.get("Labels") or {}).get(PROJECT_LABEL) != project)
