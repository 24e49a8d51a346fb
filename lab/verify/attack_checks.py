"""Checks of the adversary scenarios (RFC 9000 §8.1, §9.3.1-9.3.3, §21.5.4), pure, on decoded captures.

One view goes in: the server's, ``server-side.pcapng``, merged from the WAN sides of the client's
NATs (where the client's real addresses are) and the adversaries' own captures (``victim``: what
reached the victim; ``attacker``: what the attacker sent and got back), each holding only the
datagrams from or to the victim or the attacker. The attack windows come from
the controller's ``attack`` action events, each naming the address the server sees the attack
come from (the victim's when sources are rewritten or spoofed, the attacker's when it forwards
from its own). Every datagram is counted once (its first QUIC packet), in UDP payload bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lab import events as ev
from lab.control.attacks import CHECKS
from lab.verify.pcap import QuicPacket
from lab.verify.result import CheckResult, not_verified

FACTOR = 3  # §8.1: at most three times the bytes received, before the address is validated
NAMES = CHECKS


@dataclass(frozen=True)
class Attack:
    """One attack window: from its ``attack ... on`` to the end of its ``off`` (None: still on at the end).

    An attack is live until its ``off`` action has completed (``took_ms``: the attacker's teardown,
    0.5 s on a busy host), so its datagrams reach the server until then; a window closed at the
    action's start missed the whole apparent migration when the ``on`` had itself taken 1.3 s.
    """

    kind: str
    address: str  # the IP the server sees the attack's datagrams come from
    start: float
    end: float | None


@dataclass(frozen=True)
class Datagram:
    time: float
    src: str
    sport: int
    dst: str
    dport: int
    size: int
    challenges: tuple[str, ...]
    responses: tuple[str, ...]
    probing: bool

    @property
    def source(self) -> str:
        return f"{self.src}:{self.sport}"

    @property
    def destination(self) -> str:
        return f"{self.dst}:{self.dport}"


def datagrams(packets: Iterable[QuicPacket]) -> list[Datagram]:
    """One record per UDP datagram of one capture (coalesced packets' frames merged), in time order."""
    groups: dict[int, list[QuicPacket]] = {}
    for p in packets:
        groups.setdefault(p.frame, []).append(p)
    out = []
    for group in groups.values():
        first = group[0]
        out.append(Datagram(first.time, first.src_ip, first.src_port, first.dst_ip, first.dst_port,
                            first.udp_payload_length, tuple(c for p in group for c in p.path_challenge),
                            tuple(r for p in group for r in p.path_response), all(p.is_probing for p in group)))
    return sorted(out, key=lambda d: d.time)


def attack_windows(timeline: Iterable[ev.Event]) -> list[Attack]:
    """The attacks the controller switched on, from its action events."""
    attacks: list[Attack] = []
    open_at: dict[tuple[str, str], tuple[float, str]] = {}
    for e in timeline:
        if not isinstance(e, ev.Action) or e.action != "attack" or not e.ok:
            continue
        key = (e.target, str(e.detail.get("kind", "")))
        if e.detail.get("state") == "on":
            open_at[key] = (e.ts, str(e.detail.get("attack_address", "")))
        elif key in open_at:
            start, address = open_at.pop(key)
            attacks.append(Attack(key[1], address, start, e.ts + float(e.detail.get("took_ms") or 0.0) / 1000))
    attacks += [Attack(kind, address, start, None) for (_, kind), (start, address) in open_at.items()]
    return sorted(attacks, key=lambda a: a.start)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def amplification(attacks: Sequence[Attack], attack_side: Sequence[Datagram], servers: set[str]) -> CheckResult:
    """The server sent each attack address at most 3x the bytes that came from it (§8.1, §9.3.1)."""
    name, expected = NAMES[0], f"server bytes to the attack address <= {FACTOR} x bytes from it (never validated)"
    parts, ok, evidence = [], True, 0
    for address in sorted({a.address for a in attacks}):
        got = [d for d in attack_side if d.src == address and d.dst in servers]
        sent = [d for d in attack_side if d.dst == address and d.src in servers]
        received_b, sent_b = sum(d.size for d in got), sum(d.size for d in sent)
        evidence += len(got) + len(sent)
        if not got and not sent:
            continue
        ok = ok and sent_b <= FACTOR * received_b
        ratio = f"{sent_b / received_b:.2f}" if received_b else "inf"
        parts.append(f"{address}: {sent_b} B in {len(sent)} datagrams sent by the server / {received_b} B in "
                     f"{len(got)} datagrams received from it (ratio {ratio})")
    if not parts:
        return not_verified(name, "no datagram from or to an attack address in the adversaries' captures", expected,
                            "captures", "quic")
    return CheckResult(name, ok, "; ".join(parts), expected, "quic", evidence, "captures")


def path_not_validated(attacks: Sequence[Attack], attack_side: Sequence[Datagram], servers: set[str],
                       validated_peers: Iterable[str] = ()) -> CheckResult:
    """No attack address was validated: no PATH_RESPONSE from it echoed a challenge sent to it, and the
    server's own events (when it is the lab's) report no validation of it (§8.2, §9.3.2)."""
    name, expected = NAMES[1], "no attack address validated"
    addresses = {a.address for a in attacks}
    challenges = {c: d.dst for d in attack_side if d.src in servers and d.dst in addresses for c in d.challenges}
    answered = sorted({challenges[r] for d in attack_side if d.src in addresses and d.dst in servers
                       for r in d.responses if r in challenges})
    by_events = sorted({p.rpartition(":")[0] for p in validated_peers} & addresses)
    reached = [d for d in attack_side if d.src in addresses and d.dst in servers]
    if not reached:
        return not_verified(name, "no datagram from an attack address reached the server's network", expected,
                            "captures", "quic")
    observed = (f"{len(challenges)} PATH_CHALLENGE(s) sent to {', '.join(sorted(addresses))}, "
                f"{'answered from ' + ', '.join(answered) if answered else 'none answered'}")
    if by_events:
        observed += f"; the server reported validating {', '.join(by_events)}"
    return CheckResult(name, not answered and not by_events, observed, expected, "quic", len(reached), "captures")


def returned_to_client(attacks: Sequence[Attack], server_side: Sequence[Datagram], attack_side: Sequence[Datagram],
                       servers: set[str]) -> CheckResult:
    """After the last attack stopped, the server went back to the client's real address for good: its
    data goes there after its last non-probing datagram to an attack address (§9.3.2, §9.3.3).

    Datagrams rewritten or copied just before the attack stopped still reach the server a moment
    later, and may move it once more; the return is counted from the later of the two.
    """
    name, expected = NAMES[2], "server data back on the client's address after the attack, for good"
    ended = [a.end for a in attacks if a.end is not None]
    if not ended or len(ended) < len(attacks):
        return not_verified(name, "an attack was still on when the run ended", expected, "captures", "quic")
    end = max(ended)
    addresses = {a.address for a in attacks}
    last_attack = max((d.time for d in attack_side if d.src in servers and d.dst in addresses and not d.probing),
                      default=end)
    since = max(end, last_attack)
    back = next((d for d in server_side if d.src in servers and d.time >= since and not d.probing
                 and d.dst not in addresses), None)
    if back is None:
        return CheckResult(name, False, f"no server data to the client's address after "
                                        f"{_ms(since - end)} past the attack's end", expected, "quic",
                           len(server_side), "captures")
    observed = (f"back on {back.destination} {_ms(back.time - end)} after the attack stopped (last non-probing "
                f"datagram to an attack address at {_ms(last_attack - end)})")
    return CheckResult(name, True, observed, expected, "quic", len(server_side), "captures",
                       details={"return_ms": round((back.time - end) * 1000, 1)})


def old_path_probed(attacks: Sequence[Attack], server_side: Sequence[Datagram], attack_side: Sequence[Datagram],
                    servers: set[str]) -> CheckResult:
    """After each apparent migration to an attack address, the server sent a PATH_CHALLENGE on the path
    it had been using (RFC 9000 §9.3.3 MUST), before the attack ended."""
    name, expected = NAMES[3], "a PATH_CHALLENGE on the previous path after each apparent migration (§9.3.3)"
    results = []
    for attack in attacks:
        first = next((d for d in attack_side if d.src in servers and d.dst == attack.address
                      and d.time >= attack.start and (attack.end is None or d.time <= attack.end)), None)
        if first is None:
            continue  # no apparent migration in this window
        before = [d for d in server_side if d.src in servers and d.time < first.time and d.dst != attack.address]
        if not before:
            continue
        old = before[-1].destination
        limit = attack.end if attack.end is not None else float("inf")
        probe = next((d for d in server_side if d.src in servers and d.destination == old and d.challenges
                      and first.time <= d.time <= limit), None)
        results.append((attack, old, first, probe))
    if not results:
        return not_verified(name, "the server never sent to an attack address: no apparent migration", expected,
                            "captures", "quic")
    parts = [f"{a.kind}: to {a.address} at {_ms(f.time - a.start)} after the attack began; "
             + (f"challenge on the old path {old} {_ms(p.time - f.time)} later" if p else
                f"no challenge on the old path {old} while the attack lasted")
             for a, old, f, p in results]
    return CheckResult(name, all(p is not None for *_, p in results), "; ".join(parts), expected, "quic",
                       len(results), "captures")


def run_all(timeline: Iterable[ev.Event], packets: Sequence[QuicPacket] | None, servers: set[str]) -> list[CheckResult]:
    """Every attack check on the server's view, or each one not verified when it is missing."""
    events = list(timeline)
    attacks = attack_windows(events)
    if not attacks:
        return [not_verified(n, "no attack step was played", "an attack", "captures", "quic") for n in NAMES]
    if packets is None:
        return [not_verified(n, "no capture of the attack", "captures of the attack", "captures", "quic")
                for n in NAMES]
    servers = {s.rpartition(":")[0] if s.count(":") == 1 else s for s in servers}  # IPs; "ip:port" allowed
    server_side = datagrams(packets)
    hostile = {a.address for a in attacks}
    attack_side = [d for d in server_side if d.src in hostile or d.dst in hostile]
    validated = [e.peer for e in events if isinstance(e, ev.PathValidated) and e.role == "server"]
    return [amplification(attacks, attack_side, servers),
            path_not_validated(attacks, attack_side, servers, validated),
            returned_to_client(attacks, server_side, attack_side, servers),
            old_path_probed(attacks, server_side, attack_side, servers)]
