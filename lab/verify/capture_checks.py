"""Pure checks of RFC 9000 §9 (connection migration) on decoded captures.

Input: ``list[QuicPacket]`` from :func:`lab.verify.pcap.read_quic_packets` (capture order), and the
server's addresses. A record knows nothing of roles; in the lab the server side of a NAT sees router
addresses, not client addresses, so direction is decided by ``server_addresses``: a set of
``"ip"``, ``"ip:port"`` or ``"[v6]:port"`` strings. A packet whose source matches is server->client,
one whose destination matches is client->server; anything else is ignored.

A *path* is the 4-tuple seen from the server, written ``(client_ip, client_port, server_ip, server_port)``
for both directions. The first path (the handshake's) is not "new"; every later, previously unseen
path is. Each check returns a frozen :class:`CaptureCheck`; ``details`` carries structured facts.

Checks modelled on quic-interop-runner's ``testcases_quic.py`` (handshakes, versions, paths,
path_challenge_on_new_path strict rule, challenges_answered, new_dcid_on_new_path) plus what it lacks:
the PR #426 challenge rule, response_on_challenged_path, amplification, cid_linkability, undecrypted.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from lab.verify.pcap import PATH_CHALLENGE, PROBING_FRAMES, QuicPacket
from lab.verify.result import CheckResult

Path4 = tuple[str, int, str, int]  # (client_ip, client_port, server_ip, server_port)
ChallengeRule = Literal["pr426", "strict"]
DEFAULT_CHALLENGE_RULE: ChallengeRule = "pr426"
QUIC_V1 = 0x00000001


# Capture checks return the lab's one result type, marked as judged from captures.
CaptureCheck = CheckResult


def _check(name: str, passed: bool, observed: str, expected: str, details: Mapping[str, Any] | None = None,
           evidence: int | None = None, verified: bool = True) -> CheckResult:
    return CheckResult(name, passed, observed, expected, "quic", evidence, "captures", verified, details or {})


# --- direction helpers -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)  # called for every packet's two addresses by every check: a few distinct ones
def canonical_ip(ip: str) -> str:
    """One text per address across families: an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, as
    dual-stack sockets and so the events write IPv4 peers) is its IPv4 address, and IPv6 is in
    compressed form (a capture tool may print it otherwise). Text that is no address is kept."""
    try:
        parsed = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


def endpoint(ip: str, port: int) -> str:
    """``ip:port``, ``[v6]:port`` for IPv6, as the events write a peer (lab.events.normalise_address)."""
    ip = canonical_ip(ip)
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _parse_addresses(server_addresses: Iterable[str]) -> set[tuple[str, int | None]]:
    out: set[tuple[str, int | None]] = set()
    for raw in server_addresses:
        a = raw.strip()
        if a.startswith("["):  # [v6]:port or [v6]
            host, _, rest = a[1:].partition("]")
            out.add((canonical_ip(host), int(rest[1:]) if rest.startswith(":") and rest[1:] else None))
        elif a.count(":") == 1:  # v4:port
            host, port = a.split(":")
            out.add((host, int(port)))
        else:  # bare v4 or bare v6
            out.add((canonical_ip(a), None))
    return out


class _Roles:
    def __init__(self, server_addresses: Iterable[str]) -> None:
        self._addrs = _parse_addresses(server_addresses)
        if not self._addrs:
            raise ValueError("server_addresses is empty: cannot tell the directions apart")
        self._matched: dict[tuple[str, int], bool] = {}  # a run has a handful of endpoints, asked about 10^6 times

    def _match(self, ip: str, port: int) -> bool:
        found = self._matched.get((ip, port))
        if found is None:
            canonical = canonical_ip(ip)
            found = self._matched[(ip, port)] = (canonical, port) in self._addrs or (canonical, None) in self._addrs
        return found

    def from_server(self, p: QuicPacket) -> bool:
        return self._match(p.src_ip, p.src_port) and not self._match(p.dst_ip, p.dst_port)

    def to_server(self, p: QuicPacket) -> bool:
        return self._match(p.dst_ip, p.dst_port) and not self._match(p.src_ip, p.src_port)

    def path(self, p: QuicPacket) -> Path4 | None:
        if self.from_server(p):
            return (p.dst_ip, p.dst_port, p.src_ip, p.src_port)
        if self.to_server(p):
            return (p.src_ip, p.src_port, p.dst_ip, p.dst_port)
        return None


def fmt_path(path: Path4) -> str:
    def ep(ip: str, port: int) -> str:
        return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"

    return f"{ep(path[0], path[1])}<->{ep(path[2], path[3])}"


def infer_server_addresses(packets: list[QuicPacket]) -> set[str]:
    """Guess the server from the first Initial packet's destination (``ip:port``).

    For tools and ad-hoc use; the checks take the addresses explicitly.
    """
    for p in packets:
        if p.packet_type == "initial":
            return {f"[{p.dst_ip}]:{p.dst_port}" if ":" in p.dst_ip else f"{p.dst_ip}:{p.dst_port}"}
    return set()


def _datagrams(packets: Iterable[QuicPacket]) -> list[QuicPacket]:
    """The first QUIC packet of each UDP datagram (for byte counts: coalesced packets share one datagram)."""
    seen: set[int] = set()
    out = []
    for p in packets:
        if p.frame not in seen:
            seen.add(p.frame)
            out.append(p)
    return out


def _paths_in_order(packets: list[QuicPacket], roles: _Roles) -> list[Path4]:
    order: list[Path4] = []
    for p in packets:
        path = roles.path(p)
        if path is not None and path not in order:
            order.append(path)
    return order


def _new_paths(packets: list[QuicPacket], roles: _Roles) -> list[Path4]:
    """Paths after the first whose first client packet is not a long-header Initial/0-RTT (a new
    connection's handshake path is not a migration; this keeps multi-connection traces sane)."""
    order = _paths_in_order(packets, roles)
    first_client: dict[Path4, QuicPacket] = {}
    for p in packets:
        if roles.to_server(p):
            first_client.setdefault(roles.path(p), p)
    return [path for path in order[1:]
            if not (path in first_client and first_client[path].packet_type in ("initial", "0rtt"))]


# --- checks ---------------------------------------------------------------------------------------------

def handshakes(packets: list[QuicPacket], server_addresses: Iterable[str], expected: int = 1) -> CaptureCheck:
    """Number of handshakes = distinct SCIDs in server Initial packets (as the interop runner counts)."""
    roles = _Roles(server_addresses)
    scids = sorted({p.scid for p in packets if p.packet_type == "initial" and roles.from_server(p)})
    observed = f"{len(scids)} handshake(s) (server Initial SCIDs {scids})"
    initials = sum(1 for p in packets if p.packet_type == "initial")
    return _check("handshakes", len(scids) == expected, observed, f"exactly {expected}", {"scids": scids},
                  initials, verified=bool(initials))


def versions(packets: list[QuicPacket], allowed: Iterable[int] = (QUIC_V1,)) -> CaptureCheck:
    """Only QUIC version 1 in long-header packets (Version Negotiation packets are reported, not counted)."""
    allowed_set = set(allowed)
    seen = sorted({p.version for p in packets if p.long_header and p.packet_type != "vn" and p.version is not None})
    vn = sum(1 for p in packets if p.packet_type == "vn")
    ok = bool(seen) and set(seen) <= allowed_set
    observed = f"versions {[hex(v) for v in seen]}" + (f", {vn} Version Negotiation packet(s)" if vn else "")
    long_headers = sum(1 for p in packets if p.long_header)
    return _check("versions", ok, observed, f"only {[hex(v) for v in sorted(allowed_set)]}",
                  {"versions": seen, "version_negotiation_packets": vn}, long_headers, verified=bool(long_headers))


def paths(packets: list[QuicPacket], server_addresses: Iterable[str], minimum: int = 2) -> CaptureCheck:
    """At least ``minimum`` distinct 4-tuples; fewer means the scenario did not move anything (test broken?).

    Counted: the first path plus every migrated path; handshake paths of further connections
    (first client packet an Initial) are listed but not counted.
    """
    roles = _Roles(server_addresses)
    order = _paths_in_order(packets, roles)
    migrated = _new_paths(packets, roles)
    count = (1 + len(migrated)) if order else 0
    other = [fmt_path(p) for p in order[1:] if p not in migrated]
    ok = count >= minimum
    observed = f"{count} path(s): {[fmt_path(p) for p in order if p not in order[1:] or p in migrated]}"
    if other:
        observed += f" (+ new-connection paths {other}, not counted)"
    if not ok:
        observed += " (test broken?)"
    return _check("paths", ok, observed, f">= {minimum} distinct 4-tuples",
                  {"paths": order, "migrated_paths": migrated, "new_connection_paths": other}, len(order),
                  verified=bool(packets))


def path_challenge_on_new_path(packets: list[QuicPacket], server_addresses: Iterable[str],
                               rule: ChallengeRule = DEFAULT_CHALLENGE_RULE) -> CaptureCheck:
    """The server validates every new path with a PATH_CHALLENGE.

    Rules (the first path, the handshake's, is exempt; so are paths the server never sends on):

    * ``"strict"`` (quic-interop-runner ``TestCasePortRebinding.check``): the first server datagram on
      each previously unseen 4-tuple carries a PATH_CHALLENGE.
    * ``"pr426"`` (quic-interop-runner PR #426, open): on each new path the server sends a
      PATH_CHALLENGE before, or in the same packet as, its first non-probing packet there. Probing
      frames per RFC 9000 §9.1: PADDING, PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID (PR #426
      itself leaves NEW_CONNECTION_ID out). An ACK is non-probing.

    Default: ``"pr426"``. RFC 9000 §9.3 requires the server to validate a new peer address but not that
    the challenge be in the first packet; the strict rule fails conformant stacks for incidental frame
    ordering (a probing-only first packet, e.g. PADDING or NEW_CONNECTION_ID before the challenge;
    issues #424/#500). PR #426 still catches what matters here: data sent to a new address before any
    validation has started. Use ``rule="strict"`` for parity with the published interop matrix.
    """
    if rule not in ("pr426", "strict"):
        raise ValueError(f"unknown rule {rule!r}")
    roles = _Roles(server_addresses)
    new_paths = _new_paths(packets, roles)
    verdict: dict[Path4, str] = {}
    failures: list[str] = []
    challenged: set[Path4] = set()
    if rule == "strict":
        for d in _datagrams(p for p in packets if roles.from_server(p)):
            path = roles.path(d)
            if path not in new_paths or path in verdict:
                continue
            in_datagram = [p for p in packets if p.frame == d.frame]
            if any(p.path_challenge for p in in_datagram):
                verdict[path] = f"frame {d.frame}: first server datagram carries PATH_CHALLENGE"
            else:
                names = [n for p in in_datagram for n in p.frame_names]
                verdict[path] = f"frame {d.frame}: first server datagram has no PATH_CHALLENGE ({names})"
                failures.append(fmt_path(path))
    else:
        for p in packets:
            if not roles.from_server(p):
                continue
            path = roles.path(p)
            if path not in new_paths or path in verdict:
                continue
            if p.path_challenge:
                challenged.add(path)
                verdict[path] = f"frame {p.frame}: PATH_CHALLENGE before/with the first non-probing frame"
            elif not p.is_probing:
                what = "undecrypted packet" if not p.decrypted else f"non-probing {list(p.frame_names)}"
                verdict[path] = f"frame {p.frame}: {what} before any PATH_CHALLENGE"
                failures.append(fmt_path(path))
    silent = [fmt_path(p) for p in new_paths if p not in verdict]
    observed = "; ".join(f"{fmt_path(p)}: {v}" for p, v in verdict.items()) or "no server packets on new paths"
    if silent:
        observed += f"; server never sent on {silent}"
    expected = {"strict": "first server datagram on each new path carries PATH_CHALLENGE",
                "pr426": "PATH_CHALLENGE before or with the first non-probing server packet on each new path"}[rule]
    return _check(f"path_challenge_on_new_path[{rule}]", not failures and bool(verdict), observed, expected,
                  {"rule": rule, "failed_paths": failures, "silent_paths": silent,
                   "verdicts": {fmt_path(p): v for p, v in verdict.items()}}, len(new_paths),
                  verified=bool(new_paths))


def challenges_answered(packets: list[QuicPacket], server_addresses: Iterable[str],
                        lossy: bool = False) -> CaptureCheck:
    """Every server PATH_CHALLENGE's data appears in some client PATH_RESPONSE.

    ``lossy``: the scenario drops packets on purpose, so a challenge captured on the server side
    may never reach the client; RFC 9000 §8.2.1 has the server send a new one. Then each
    challenged path needs at least one answered challenge, and the lost ones are reported.
    """
    roles = _Roles(server_addresses)
    challenges = [d for p in packets if roles.from_server(p) for d in p.path_challenge]
    responses = {d for p in packets if roles.to_server(p) for d in p.path_response}
    missing = sorted({d for d in challenges if d not in responses})
    observed = f"{len(set(challenges))} challenge(s) {sorted(set(challenges))}, unanswered {missing}"
    expected = ">= 1 challenge, each echoed in a client PATH_RESPONSE"
    if lossy:
        per_path: dict[Path4, bool] = {}
        for p in packets:
            if roles.from_server(p):
                for d in p.path_challenge:
                    per_path[roles.path(p)] = per_path.get(roles.path(p), False) or d in responses
        ok = bool(per_path) and all(per_path.values())
        expected = ">= 1 answered challenge on each challenged path (lossy link: lost challenges are re-sent)"
    else:
        ok = bool(challenges) and not missing
    return _check("challenges_answered", ok, observed, expected,
                  {"challenges": sorted(set(challenges)), "responses": sorted(responses), "unanswered": missing},
                  len(set(challenges)), verified=bool(challenges))


def response_on_challenged_path(packets: list[QuicPacket], server_addresses: Iterable[str]) -> CaptureCheck:
    """Each client PATH_RESPONSE travels on the path its PATH_CHALLENGE came on (RFC 9000 §8.2.2)."""
    roles = _Roles(server_addresses)
    challenge_path: dict[str, set[Path4]] = {}
    for p in packets:
        if roles.from_server(p):
            for d in p.path_challenge:
                challenge_path.setdefault(d, set()).add(roles.path(p))
    wrong = []
    judged = 0
    for p in packets:
        if roles.to_server(p):
            for d in p.path_response:
                if d in challenge_path:
                    judged += 1
                    if roles.path(p) not in challenge_path[d]:
                        wrong.append(f"frame {p.frame}: {d} on {fmt_path(roles.path(p))}")
    observed = (f"{len(wrong)} of {judged} response(s) on another path {wrong}" if judged
                else "no client PATH_RESPONSE to a captured challenge")
    return _check("response_on_challenged_path", not wrong, observed, "PATH_RESPONSE on the challenged path",
                  {"wrong": wrong}, judged, verified=bool(judged))


def new_dcid_on_new_path(packets: list[QuicPacket], server_addresses: Iterable[str]) -> CaptureCheck:
    """Active migration: the first client packet on each new path uses a DCID the client had not used before.

    (The interop runner compares with the previous path's DCID only; this compares with all earlier ones.)
    A NAT rebinding keeps the DCID and is expected to fail this check.
    """
    roles = _Roles(server_addresses)
    new_paths = set(_new_paths(packets, roles))
    used: set[str] = set()
    seen_paths: list[Path4] = []
    results: dict[str, str] = {}
    failures = []
    for p in packets:
        if not roles.to_server(p):
            continue
        path = roles.path(p)
        if path not in seen_paths:
            seen_paths.append(path)
            if path in new_paths:
                reused = p.dcid in used
                results[fmt_path(path)] = f"frame {p.frame} dcid {p.dcid}" + (" (reused)" if reused else " (new)")
                if reused:
                    failures.append(fmt_path(path))
        used.add(p.dcid)
    ok = bool(results) and not failures
    observed = "; ".join(f"{k}: {v}" for k, v in results.items()) or "no new client path"
    return _check("new_dcid_on_new_path", ok, observed, "first client packet on each new path uses an unused DCID",
                  {"first_dcids": results, "failed_paths": failures}, len(results), verified=bool(results))


def amplification(packets: list[QuicPacket], server_addresses: Iterable[str], factor: int = 3) -> CaptureCheck:
    """Server bytes sent to an unvalidated address <= ``factor`` x bytes received from it (RFC 9000 §8, §9.3).

    Counted in UDP payload bytes per datagram (coalesced packets once), per path, from the path's first
    packet until it is validated: a handshake path by the first client Handshake packet on it (§8.1),
    a new path by the first client PATH_RESPONSE (on any path, §8.2.3) echoing a challenge the server
    sent on it. A validated path stays validated. Byte counts are as captured: a capture taken on the
    client side of a lossy link over-counts what the server received.
    """
    roles = _Roles(server_addresses)
    order = _paths_in_order(packets, roles)
    sent: dict[Path4, int] = {}
    received: dict[Path4, int] = {}
    peak: dict[Path4, float] = {}
    validated: dict[Path4, int] = {}
    challenge_path: dict[str, Path4] = {}
    violations: list[str] = []
    by_frame: dict[int, list[QuicPacket]] = {}
    for p in packets:
        by_frame.setdefault(p.frame, []).append(p)
    for d in _datagrams(packets):
        path = roles.path(d)
        if path is None:
            continue
        group = by_frame[d.frame]
        if roles.from_server(d):
            for p in group:
                for data in p.path_challenge:
                    challenge_path.setdefault(data, path)
            if path in validated:
                continue
            sent[path] = sent.get(path, 0) + d.udp_payload_length
            limit = factor * received.get(path, 0)
            peak[path] = max(peak.get(path, 0.0), sent[path] / received[path] if received.get(path) else float("inf"))
            if sent[path] > limit:
                violations.append(f"frame {d.frame}: {sent[path]} B sent > {factor} x {received.get(path, 0)} B "
                                  f"to unvalidated {fmt_path(path)}")
        else:
            if path not in validated:
                received[path] = received.get(path, 0) + d.udp_payload_length
            for p in group:
                if p.packet_type == "handshake":
                    validated.setdefault(path, p.frame)
                for data in p.path_response:
                    target = challenge_path.get(data)
                    if target is not None:
                        validated.setdefault(target, p.frame)
    per_path = {fmt_path(p): {"sent_before_validation": sent.get(p, 0),
                              "received_before_validation": received.get(p, 0),
                              "peak_ratio": round(peak.get(p, 0.0), 3), "validated_at_frame": validated.get(p)}
                for p in order}
    observed = "; ".join(f"{k}: {v['sent_before_validation']} B sent / {v['received_before_validation']} B received"
                         f" before validation (frame {v['validated_at_frame']}), peak ratio {v['peak_ratio']}"
                         for k, v in per_path.items())
    if violations:
        observed = f"{len(violations)} violation(s), first: {violations[0]}; " + observed
    return _check("amplification", not violations and bool(order), observed or "no path in the capture",
                  f"server bytes <= {factor} x client bytes on each path until validated",
                  {"per_path": per_path, "violations": violations}, len(order), verified=bool(order))


def _groups(edges: dict[str, set[Path4]], all_paths: list[Path4]) -> list[list[Path4]]:
    parent = {p: p for p in all_paths}

    def find(x: Path4) -> Path4:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for members in edges.values():
        ms = [m for m in members if m in parent]
        for other in ms[1:]:
            parent[find(other)] = find(ms[0])
    out: dict[Path4, list[Path4]] = {}
    for p in all_paths:
        out.setdefault(find(p), []).append(p)
    return list(out.values())


def linkable_path_groups(packets: list[QuicPacket], server_addresses: Iterable[str]) -> dict[str, list[list[Path4]]]:
    """Paths an on-path observer can link because a DCID appears on more than one of them, per direction.

    Returns ``{"client_to_server": groups, "server_to_client": groups}``; each group is a list of paths
    (in first-seen order) transitively sharing a DCID; singletons are unlinkable paths. Long-header
    packets are ignored (their CIDs are the handshake's). Zero-length DCIDs link nothing.
    """
    roles = _Roles(server_addresses)
    order = _paths_in_order(packets, roles)
    c2s: dict[str, set[Path4]] = {}
    s2c: dict[str, set[Path4]] = {}
    for p in packets:
        if p.long_header or not p.dcid:
            continue
        if roles.to_server(p):
            c2s.setdefault(p.dcid, set()).add(roles.path(p))
        elif roles.from_server(p):
            s2c.setdefault(p.dcid, set()).add(roles.path(p))
    return {"client_to_server": _groups(c2s, order), "server_to_client": _groups(s2c, order)}


def unlinkable_across_addresses(packets: list[QuicPacket], server_addresses: Iterable[str]) -> CaptureCheck:
    """A client that rotates its CID when it moves (RFC 9000 §9.5) never lets an observer link two
    client addresses: no DCID appears on paths of two different client IPs, in either direction.

    Paths of the same IP (a NAT rebinding, which the client cannot notice) may share a DCID.
    """
    groups = linkable_path_groups(packets, server_addresses)
    crossing = []
    for direction, found in groups.items():
        for group in found:
            ips = {path[0] for path in group}  # server-oriented paths: the client's IP comes first
            if len(ips) > 1:
                crossing.append(f"{direction}: {[fmt_path(p) for p in group]}")
    ips = {path[0] for found in groups.values() for group in found for path in group}
    observed = "; ".join(crossing) if crossing else f"no DCID shared by paths of {len(ips)} client IPs"
    return _check("unlinkable_across_addresses", not crossing, observed, "paths of different client IPs share no DCID",
                  {"crossing": crossing}, len(ips), verified=len(ips) > 1)


def cid_linkability(packets: list[QuicPacket], server_addresses: Iterable[str],
                    expect: Literal["linkable", "unlinkable"] | None = None) -> CaptureCheck:
    """Which paths share a DCID (RFC 9000 §9.5 privacy). A rebinding keeps the CID (linkable); an active
    migration with CID rotation must not reuse a CID on the new path in either direction (unlinkable).

    ``expect=None`` only reports (passes); ``"linkable"``: all paths form one client->server group;
    ``"unlinkable"``: no two paths share a DCID in either direction.
    """
    groups = linkable_path_groups(packets, server_addresses)
    linked = {k: [g for g in v if len(g) > 1] for k, v in groups.items()}
    n_paths = sum(len(g) for g in groups["client_to_server"])
    if expect is None:
        ok = True
    elif expect == "linkable":
        ok = n_paths > 1 and len(groups["client_to_server"]) == 1
    elif expect == "unlinkable":
        ok = n_paths > 1 and not linked["client_to_server"] and not linked["server_to_client"]
    else:
        raise ValueError(f"unknown expectation {expect!r}")
    observed = "; ".join(f"{k}: {[[fmt_path(p) for p in g] for g in v] or 'none'} linked" for k, v in linked.items())
    expected = {None: "(report only)", "linkable": "all paths share a client->server DCID",
                "unlinkable": "no DCID on more than one path, either direction"}[expect]
    return _check("cid_linkability", ok, observed, expected,
                  {"groups": {k: [[fmt_path(p) for p in g] for g in v] for k, v in groups.items()}}, n_paths,
                  verified=n_paths > 1 or expect is None)


def undecrypted(packets: list[QuicPacket], max_fraction: float = 0.0) -> CaptureCheck:
    """Fraction of 1-RTT packets tshark could not decrypt. Above 0, every frame-based check is unreliable."""
    one_rtt = [p for p in packets if p.packet_type == "1rtt"]
    # Dropped undecrypted by their receiver too (its qlog says so, lab.verify.qlog_fill): reported, not counted.
    dropped = [p for p in packets if not p.decrypted and p.decoded_from == "dropped by receiver"]
    bad = [p for p in one_rtt if not p.decrypted and p not in dropped]
    other_bad = sum(1 for p in packets if p.packet_type in ("initial", "handshake", "0rtt") and not p.decrypted
                    and p not in dropped)
    frac = len(bad) / len(one_rtt) if one_rtt else 0.0
    ok = bool(one_rtt) and frac <= max_fraction
    observed = f"{len(bad)}/{len(one_rtt)} 1-RTT packets undecrypted ({frac:.1%})"
    if other_bad:
        observed += f", {other_bad} long-header packet(s) undecrypted"
    from_qlog = [p for p in one_rtt if p.decoded_from == "qlog"]
    if dropped:
        observed += (f"; {len(dropped)} that their receiver also dropped undecrypted (its qlog: key_unavailable; "
                     f"frames {[p.frame for p in dropped][:5]})")
    if from_qlog:
        observed += (f"; {len(from_qlog)} more that tshark could not decrypt were read from their receiver's qlog "
                     f"(frames {[p.frame for p in from_qlog][:5]})")
    if bad:
        observed += f", first at frame {bad[0].frame}: frame-based checks unreliable (key log missing or wrong?)"
    return _check("undecrypted", ok, observed, f"<= {max_fraction:.1%} of >= 1 1-RTT packets",
                  {"fraction": frac, "undecrypted_1rtt": len(bad), "total_1rtt": len(one_rtt),
                   "undecrypted_long_header": other_bad, "from_qlog": [p.frame for p in from_qlog],
                   "dropped_by_receiver": [p.frame for p in dropped]},
                  len(one_rtt), verified=bool(one_rtt))


def run_all(packets: list[QuicPacket], server_addresses: Iterable[str], *,
            challenge_rule: ChallengeRule = DEFAULT_CHALLENGE_RULE, migration: bool = True,
            active_migration: bool = False, expect_linkable: Literal["linkable", "unlinkable"] | None = None,
            lossy: bool = False, rotating: bool = False) -> list[CheckResult]:
    """The checks that apply to a run. Those that presuppose a migration (a second path, a challenge
    on it, its answer) only with ``migration``; ``active_migration`` adds new_dcid_on_new_path,
    ``rotating`` unlinkable_across_addresses, ``expect_linkable`` a cid_linkability expectation.
    """
    addrs = set(server_addresses)
    checks = [undecrypted(packets), handshakes(packets, addrs), versions(packets), amplification(packets, addrs)]
    if migration:
        checks += [paths(packets, addrs), path_challenge_on_new_path(packets, addrs, challenge_rule),
                   challenges_answered(packets, addrs, lossy), response_on_challenged_path(packets, addrs)]
    if expect_linkable is not None:
        checks.append(cid_linkability(packets, addrs, expect_linkable))
    if active_migration:
        checks.append(new_dcid_on_new_path(packets, addrs))
    if rotating:
        checks.append(unlinkable_across_addresses(packets, addrs))
    return checks


def summarize(packets: list[QuicPacket], server_addresses: Iterable[str] | None = None) -> dict[str, Any]:
    """Facts to cross-check with the endpoints' own events (path count, challenge data, CIDs).

    ``tuples``: per directional 4-tuple, first/last time, packet and datagram counts, bytes, DCIDs.
    With ``server_addresses`` also ``paths`` (server-oriented, first-seen order) and role-aware lists.
    """
    tuples: dict[str, dict[str, Any]] = {}
    for p in packets:
        key = f"{p.src_ip}:{p.src_port}->{p.dst_ip}:{p.dst_port}"
        t = tuples.setdefault(key, {"first_time": p.time, "last_time": p.time, "packets": 0, "datagrams": set(),
                                    "udp_payload_bytes": 0, "dcids": []})
        t["last_time"] = p.time
        t["packets"] += 1
        if p.frame not in t["datagrams"]:
            t["datagrams"].add(p.frame)
            t["udp_payload_bytes"] += p.udp_payload_length
        if p.dcid not in t["dcids"]:
            t["dcids"].append(p.dcid)
    for t in tuples.values():
        t["datagrams"] = len(t["datagrams"])
    facts: dict[str, Any] = {
        "packets": len(packets),
        "datagrams": len({p.frame for p in packets}),
        "tuples": tuples,
        "path_challenges": [{"frame": p.frame, "time": p.time, "src": endpoint(p.src_ip, p.src_port),
                             "dst": endpoint(p.dst_ip, p.dst_port), "data": d}
                            for p in packets for d in p.path_challenge],
        "path_responses": [{"frame": p.frame, "time": p.time, "src": endpoint(p.src_ip, p.src_port),
                            "dst": endpoint(p.dst_ip, p.dst_port), "data": d}
                           for p in packets for d in p.path_response],
        "new_connection_id_seqs": [{"frame": p.frame, "src": endpoint(p.src_ip, p.src_port),
                                    "seqs": list(p.new_connection_id_seqs)}
                                   for p in packets if p.new_connection_id_seqs],
        "retire_connection_id_seqs": [{"frame": p.frame, "src": endpoint(p.src_ip, p.src_port),
                                       "seqs": list(p.retire_connection_id_seqs)}
                                      for p in packets if p.retire_connection_id_seqs],
        "undecrypted_1rtt": sum(1 for p in packets if p.packet_type == "1rtt" and not p.decrypted),
    }
    if server_addresses is not None:
        roles = _Roles(server_addresses)
        order = _paths_in_order(packets, roles)
        facts["paths"] = [fmt_path(p) for p in order]
        facts["path_count"] = len(order)
        facts["server_initial_scids"] = sorted({p.scid for p in packets
                                                if p.packet_type == "initial" and roles.from_server(p)})
        facts["client_dcids_by_path"] = {fmt_path(path): sorted({p.dcid for p in packets if roles.to_server(p)
                                                                 and roles.path(p) == path and not p.long_header})
                                         for path in order}
    return facts


__all__ = [
    "CaptureCheck", "ChallengeRule", "DEFAULT_CHALLENGE_RULE", "PATH_CHALLENGE", "PROBING_FRAMES", "amplification",
    "challenges_answered", "cid_linkability", "fmt_path", "handshakes", "infer_server_addresses",
    "linkable_path_groups", "new_dcid_on_new_path", "path_challenge_on_new_path", "paths",
    "response_on_challenged_path", "run_all", "summarize", "undecrypted", "versions",
]
