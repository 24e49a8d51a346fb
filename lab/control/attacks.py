"""The kinds of attack an ``attack`` step can switch on (pure: the scenario language reads it)."""

from __future__ import annotations

from dataclasses import dataclass

from lab.topology.model import Adversary


@dataclass(frozen=True)
class AttackKind:
    name: str
    on_path: bool
    source: str  # whose address the server sees the client's datagrams come from: victim | attacker
    does: str


KINDS: dict[str, AttackKind] = {k.name: k for k in (
    AttackKind("rewrite", True, "victim", "an on-path next hop rewrites the client's source address to the "
                                          "victim's (RFC 9000 §9.3.2)"),
    AttackKind("forward", False, "attacker", "an off-path host forwards copies of the client's datagrams from "
                                             "its own address, ahead of the real path (§9.3.3)"),
    AttackKind("spoof", False, "victim", "an off-path host forwards copies of the client's datagrams with the "
                                         "victim's address as the source: amplification towards the victim "
                                         "(§9.3.1, §21.5.4)"),
)}


# The checks every run with an attack gets (lab.verify.attack_checks), judged on the captures.
CHECKS = ("attack_amplification", "attack_path_not_validated", "attack_returned_to_client", "attack_old_path_probed")


def attack_address(adversary: Adversary, kind: str) -> str:
    """The address the server sees the attack come from (the one the 3x limit protects)."""
    return adversary.victim if KINDS[kind].source == "victim" else adversary.attacker
