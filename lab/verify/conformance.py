"""RFC 9000 conformance findings read from a capture: what each endpoint did, rule by rule.

Pure functions over decoded packets (:class:`lab.verify.pcap.QuicPacket`, capture order) and the
server's addresses (as :mod:`lab.verify.capture_checks` takes them: ``"ip"``, ``"ip:port"``,
``"[v6]:port"``). The checks of :mod:`lab.verify.capture_checks` judge what a *scenario* expects;
these findings judge the *endpoints* against RFC 9000, whatever the scenario: a finding is a
statement about aioquic (or whatever ran), not a pass or fail of the lab.

Each rule of :data:`RULES` is judged for every endpoint it binds and gives one :class:`Finding`:
``violation``, ``compliant`` (something was judged and every instance conforms) or
``not observed`` (nothing to judge in this capture, or nothing that *can* be judged from it: a
server-side capture cannot tell a NAT rebinding from a migration the client initiated; the
summary says which).

Conventions (the rules as docs/report.md, "Conformance", tabulates them):

* A datagram's size is its UDP payload (``udp.length - 8``); expansion is judged per datagram.
* A *tuple* is the 4-tuple as the server sees it, ``(client_ip, client_port, server_ip,
  server_port)``, for both directions (:data:`lab.verify.capture_checks.Path4`): "the reversed
  tuple" of a challenge is the same tuple.
* The anti-amplification budget of a server datagram is ``3 x received - sent`` on its tuple
  before it went out, counted as :func:`lab.verify.capture_checks.amplification` counts
  (whole datagrams, coalesced packets once) until the tuple is validated: the handshake tuple by
  a client Handshake packet (§8.1), any other by a client PATH_RESPONSE echoing a server
  challenge sent on it (§8.2.3, §9.3.1). Only the server is limited; a client's challenges and
  responses have no budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

from lab.verify.capture_checks import Path4, _Roles, fmt_path
from lab.verify.pcap import QuicPacket

__all__ = ["DIRECTIONS", "ENDPOINTS", "Finding", "MIN_DATAGRAM", "RULES", "RuleSpec", "evaluate", "violations"]

MIN_DATAGRAM = 1200  # RFC 9000 §14.1: the smallest allowed maximum datagram size
FACTOR = 3  # RFC 9000 §8.1: the anti-amplification factor
HANDSHAKE_DONE, ACK_TYPES = 0x1E, frozenset({0x02, 0x03})
MUST, SHOULD = "MUST", "SHOULD"
VIOLATION, COMPLIANT, NOT_OBSERVED = "violation", "compliant", "not observed"
ENDPOINTS = ("server", "client")
DIRECTIONS = {"client": "client->server", "server": "server->client"}  # what an endpoint sends
MAX_FRAMES = 20  # frame numbers kept per finding (the summary gives the count)


@dataclass(frozen=True)
class Finding:
    """One rule judged for one endpoint, from the packets it sent (``direction``)."""

    rule: str  # e.g. "RFC 9000 §8.2.1"
    level: str  # "MUST" | "SHOULD"
    endpoint: str  # "client" | "server"
    direction: str  # "client->server" | "server->client"
    verdict: str  # "violation" | "compliant" | "not observed"
    summary: str  # one line, names what was seen
    frames: tuple[int, ...] = ()  # capture frame numbers that show it
    title: str = ""  # what the rule asks, in a few words

    def to_dict(self) -> dict:
        out = asdict(self)
        out["frames"] = list(self.frames)
        return out


# --- the capture seen once, with roles, tuples and budgets --------------------------------------------------------

@dataclass(frozen=True)
class _Datagram:
    frame: int
    time: float
    sender: str  # "client" | "server"
    path: Path4
    size: int  # UDP payload
    packets: tuple[QuicPacket, ...]
    budget: int | None  # server datagram to an unvalidated tuple: 3 x received - sent before it; else None
    conn: int  # which connection of the capture (0, 1, ...: in the order they start)

    def has(self, frame_type: int) -> bool:
        return any(frame_type in p.frame_types for p in self.packets)

    @property
    def short(self) -> tuple[QuicPacket, ...]:
        return tuple(p for p in self.packets if not p.long_header)


class _Probe(NamedTuple):
    """One PATH_CHALLENGE or PATH_RESPONSE frame and the datagram that carried it."""

    data: str
    datagram: _Datagram


class _Capture:
    """The packets grouped into datagrams with their sender, tuple and anti-amplification budget."""

    def __init__(self, packets: Sequence[QuicPacket], server_addresses: Iterable[str]) -> None:
        self.packets = list(packets)
        self.roles = _Roles(server_addresses)
        groups: dict[int, list[QuicPacket]] = {}
        for p in self.packets:
            if self.roles.path(p) is not None:
                groups.setdefault(p.frame, []).append(p)
        self.datagrams: list[_Datagram] = []
        self.over_budget: dict[Path4, list[int]] = {}  # server datagrams that took a tuple past 3x
        self.validated_at: dict[Path4, int] = {}
        self.budget_totals: dict[Path4, tuple[int, int]] = {}  # (sent, received) before validation
        self._walk(groups)
        self.challenges = self._probes(lambda p: p.path_challenge)
        self.responses = self._probes(lambda p: p.path_response)
        self.connections = sorted({d.conn for d in self.datagrams})

    def _walk(self, groups: dict[int, list[QuicPacket]]) -> None:
        conn = _connections(self.packets)
        sent: dict[Path4, int] = {}
        received: dict[Path4, int] = {}
        challenged: dict[str, Path4] = {}
        for frame, group in groups.items():
            first = group[0]
            path = self.roles.path(first)
            server = self.roles.from_server(first)
            size = first.udp_payload_length
            budget = None
            if path not in self.validated_at:
                if server:
                    budget = FACTOR * received.get(path, 0) - sent.get(path, 0)
                    sent[path] = sent.get(path, 0) + size
                    if sent[path] > FACTOR * received.get(path, 0):
                        self.over_budget.setdefault(path, []).append(frame)
                else:
                    received[path] = received.get(path, 0) + size
                self.budget_totals[path] = (sent.get(path, 0), received.get(path, 0))
            for p in group:
                if server:
                    for data in p.path_challenge:
                        challenged.setdefault(data, path)
                elif p.packet_type == "handshake":
                    self.validated_at.setdefault(path, frame)
                else:
                    for data in p.path_response:
                        if data in challenged:
                            self.validated_at.setdefault(challenged[data], frame)
            self.datagrams.append(_Datagram(frame, first.time, "server" if server else "client", path, size,
                                            tuple(group), budget, conn(first)))

    def _probes(self, field: Callable[[QuicPacket], tuple[str, ...]]) -> list[_Probe]:
        return [_Probe(data, d) for d in self.datagrams for p in d.packets for data in field(p)]

    def sent_by(self, endpoint: str, conn: int | None = None) -> list[_Datagram]:
        return [d for d in self.datagrams if d.sender == endpoint and (conn is None or d.conn == conn)]

    def new_tuples(self, conn: int) -> dict[Path4, _Datagram]:
        """A connection's tuples after its first (the handshake's): each with the client's first datagram on it."""
        first: dict[Path4, _Datagram] = {}
        for d in self.datagrams:
            if d.conn == conn:
                first.setdefault(d.path, d)
        handshake = next(iter(first), None)
        return {path: next(d for d in self.sent_by("client", conn) if d.path == path)
                for path in first if path != handshake and any(d.path == path for d in self.sent_by("client", conn))}

    def handshake_ip(self, conn: int) -> str | None:
        return next((d.path[0] for d in self.datagrams if d.conn == conn), None)


def _connections(packets: Sequence[QuicPacket]) -> Callable[[QuicPacket], int]:
    """Packet -> its connection, by the connection IDs packets tie together (both sides' SCIDs and DCIDs
    of the long headers, those NEW_CONNECTION_ID and preferred_address issue, the DCID they arrive on)."""
    parent: dict[str, str] = {}

    def find(cid: str) -> str:
        parent.setdefault(cid, cid)
        while parent[cid] != cid:
            parent[cid] = parent[parent[cid]]
            cid = parent[cid]
        return cid

    for p in packets:
        cids = [c for c in (p.dcid, p.scid, p.preferred_address_cid, *p.new_connection_ids) if c]
        for other in cids[1:]:
            parent[find(other)] = find(cids[0])
    order: dict[str, int] = {}
    for p in packets:
        order.setdefault(find(p.dcid), len(order))
    return lambda p: order[find(p.dcid)]


def _peer(endpoint: str) -> str:
    return "client" if endpoint == "server" else "server"


def _frames(frames: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(set(frames)))[:MAX_FRAMES]


def _limited(d: _Datagram) -> bool:
    """The 3x budget did not allow a datagram of 1200 bytes (only the server is limited)."""
    return d.budget is not None and d.budget < MIN_DATAGRAM


class _Judged(NamedTuple):
    verdict: str
    summary: str
    frames: tuple[int, ...] = ()


# --- the rules -----------------------------------------------------------------------------------------------------

def amplification_limit(cap: _Capture, endpoint: str) -> _Judged:
    """§8.1, §9.3.1: before a tuple is validated the server sends at most 3x what it received on it."""
    tuples = list(cap.budget_totals)
    if not tuples:
        return _Judged(NOT_OBSERVED, "no server datagram in the capture")
    over = cap.over_budget
    described = []
    for path in tuples:
        sent, received = cap.budget_totals[path]
        at = cap.validated_at.get(path)
        status = f"validated at frame {at}" if at is not None else "never validated in the capture"
        described.append(f"{fmt_path(path)}: {sent} B sent / {received} B received before validation ({status})")
    if over:
        worst = "; ".join(f"{fmt_path(p)} first over 3x at frame {f[0]} ({len(f)} datagram(s) over)"
                          for p, f in over.items())
        return _Judged(VIOLATION, f"{worst}. {'; '.join(described)}",
                       _frames(f for frames in over.values() for f in frames))
    return _Judged(COMPLIANT, f"within 3x on {len(tuples)} tuple(s): {'; '.join(described)}")


def challenge_expanded(cap: _Capture, endpoint: str) -> _Judged:
    """§8.2.1: a datagram with PATH_CHALLENGE is >= 1200 bytes unless the 3x budget forbids it."""
    sent = {c.datagram.frame: c.datagram for c in cap.challenges if c.datagram.sender == endpoint}
    if not sent:
        return _Judged(NOT_OBSERVED, f"the {endpoint} sent no PATH_CHALLENGE")
    expanded = [d for d in sent.values() if d.size >= MIN_DATAGRAM]
    limited = [d for d in sent.values() if d.size < MIN_DATAGRAM and _limited(d)]
    short = [d for d in sent.values() if d.size < MIN_DATAGRAM and not _limited(d)]
    parts = [f"{len(sent)} challenge datagram(s): {len(expanded)} >= {MIN_DATAGRAM} B"]
    if limited:
        parts.append(f"{len(limited)} amplification-limited (" + ", ".join(
            f"frame {d.frame}: {d.size} B, budget {d.budget} B" for d in limited[:3]) + ")")
    if short:
        why = "no budget applies to the client" if endpoint == "client" else "budget allowed 1200 B"
        parts.append(f"{len(short)} under {MIN_DATAGRAM} B without an amplification limit ({why}: " + ", ".join(
            f"frame {d.frame}: {d.size} B" + (f" with {d.budget} B allowed" if d.budget is not None else "")
            for d in short[:3]) + ")")
        return _Judged(VIOLATION, "; ".join(parts), _frames(d.frame for d in short))
    return _Judged(COMPLIANT, "; ".join(parts))


def response_echoed(cap: _Capture, endpoint: str) -> _Judged:
    """§8.2.2: PATH_RESPONSE echoes a challenge's data, once, on the challenge's (reversed) tuple,
    in a datagram >= 1200 bytes unless the 3x budget forbids it."""
    responses = [r for r in cap.responses if r.datagram.sender == endpoint]
    peer = _peer(endpoint)
    challenges: dict[str, list[_Datagram]] = {}
    for c in cap.challenges:
        if c.datagram.sender == peer:
            challenges.setdefault(c.data, []).append(c.datagram)
    if not responses:
        unanswered = f" ({len(challenges)} {peer} challenge(s) in the capture, none answered)" if challenges else ""
        return _Judged(NOT_OBSERVED, f"the {endpoint} sent no PATH_RESPONSE{unanswered}")
    problems: list[str] = []
    frames: list[int] = []
    answered: dict[str, set[tuple[str, int | None]]] = {}
    delays = []
    for data, d in responses:
        earlier = [c for c in challenges.get(data, []) if c.frame < d.frame]
        copies = answered.setdefault(data, set())
        for p in d.short or d.packets:
            if data in p.path_response:
                copies.add((p.dcid, p.packet_number))
        if not earlier:
            problems.append(f"frame {d.frame}: {data} echoes no earlier {peer} challenge")
            frames.append(d.frame)
            continue
        challenge = earlier[-1]
        delays.append(d.time - challenge.time)
        if all(c.path != d.path for c in earlier):
            problems.append(f"frame {d.frame}: answers frame {challenge.frame} on {fmt_path(d.path)}, "
                            f"not on the challenge's tuple {fmt_path(challenge.path)}")
            frames += [challenge.frame, d.frame]
        if d.size < MIN_DATAGRAM and not _limited(d):
            problems.append(f"frame {d.frame}: {d.size} B < {MIN_DATAGRAM} B"
                            + (f" with {d.budget} B allowed" if d.budget is not None else " (no budget applies)"))
            frames.append(d.frame)
    for data, copies in answered.items():
        if len(copies) > max(len(challenges.get(data, [])), 1):
            problems.append(f"{data} answered {len(copies)} times for {len(challenges.get(data, []))} challenge(s)")
            frames += [r.datagram.frame for r in responses if r.data == data]
    seen = (f"{len(responses)} response(s) to {len(challenges)} {peer} challenge(s)"
            + (f", answered within {max(delays) * 1000:.1f} ms" if delays else ""))
    if problems:
        return _Judged(VIOLATION, f"{seen}; " + "; ".join(problems[:4])
                       + (f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""), _frames(frames))
    sizes = sorted({r.datagram.size for r in responses})
    return _Judged(COMPLIANT, f"{seen}, each echoed once on the challenge's tuple, datagram sizes {sizes} B")


def revalidated_expanded(cap: _Capture, endpoint: str) -> _Judged:
    """§8.2.3: a tuple validated only by challenges in datagrams under 1200 bytes gets a later
    challenge in an expanded datagram (the address is validated, the path MTU is not)."""
    mine = [c for c in cap.challenges if c.datagram.sender == endpoint]
    replies = {r.data: r.datagram for r in cap.responses if r.datagram.sender == _peer(endpoint)}
    validations: dict[Path4, _Datagram] = {}  # tuple -> the first response validating it
    for c in mine:
        reply = replies.get(c.data)
        if reply is not None and reply.frame > c.datagram.frame:
            if c.datagram.path not in validations or reply.frame < validations[c.datagram.path].frame:
                validations[c.datagram.path] = reply
    if not validations:
        return _Judged(NOT_OBSERVED, f"no tuple validated by a {endpoint} PATH_CHALLENGE")
    bad, good = [], []
    frames: list[int] = []
    end = cap.datagrams[-1].time
    for path, reply in validations.items():
        before = [c.datagram for c in mine if c.datagram.path == path and c.datagram.frame < reply.frame]
        if any(d.size >= MIN_DATAGRAM for d in before):
            good.append(f"{fmt_path(path)}: validated by an expanded challenge (frame {reply.frame})")
            continue
        later = [c.datagram for c in mine if c.datagram.path == path and c.datagram.frame > reply.frame
                 and c.datagram.size >= MIN_DATAGRAM]
        sizes = "/".join(str(d.size) for d in before)
        if later:
            good.append(f"{fmt_path(path)}: {sizes} B challenge(s), then an expanded one at frame {later[0].frame}")
        else:
            bad.append(f"{fmt_path(path)}: validated at frame {reply.frame} by {sizes} B challenge(s) (frame "
                       f"{before[0].frame}), no expanded challenge followed in the {end - reply.time:.2f} s "
                       "the capture ran on")
            frames += [d.frame for d in before] + [reply.frame]
    if bad:
        return _Judged(VIOLATION, "; ".join(bad + good), _frames(frames))
    return _Judged(COMPLIANT, "; ".join(good))


def _cid_uses(cap: _Capture, sender: str) -> dict[str, list[_Datagram]]:
    """Short-header DCID -> the sender's datagrams using it, in capture order (zero-length CIDs left out)."""
    uses: dict[str, list[_Datagram]] = {}
    for d in cap.sent_by(sender):
        for p in d.short:
            if p.dcid and (not uses.get(p.dcid) or uses[p.dcid][-1] is not d):
                uses.setdefault(p.dcid, []).append(d)
    return uses


def _first_per_path(uses: Iterable[_Datagram]) -> dict[Path4, _Datagram]:
    first: dict[Path4, _Datagram] = {}
    for d in uses:
        first.setdefault(d.path, d)
    return first


def cid_not_reused(cap: _Capture, endpoint: str) -> _Judged:
    """§9.5: one connection ID is not used from two local addresses (client) nor to two destinations
    (server). A port-only change with the DCID kept is a NAT rebinding (the §9.5 exception), and the
    server may keep its DCID when the client kept its own."""
    uses = _cid_uses(cap, endpoint)
    tuples = {d.path for ds in uses.values() for d in ds}
    if len(tuples) < 2:
        return _Judged(NOT_OBSERVED, f"the {endpoint} sent short-header packets on {len(tuples)} tuple(s): "
                                     "no second address to reuse a CID on")
    peer_uses = _cid_uses(cap, _peer(endpoint))
    peer_dcids = {path: {cid for cid, ds in peer_uses.items() if any(d.path == path for d in ds)}
                  for path in tuples}
    bad, exceptions = [], []
    frames: list[int] = []
    for cid, ds in uses.items():
        first = list(_first_per_path(ds).values())
        for earlier, later in zip(first, first[1:], strict=False):
            moved = (f"{cid} on {fmt_path(earlier.path)} (frame {earlier.frame}) and "
                     f"{fmt_path(later.path)} (frame {later.frame})")
            if earlier.path[0] == later.path[0]:
                exceptions.append(f"{moved}: same client IP, a NAT rebinding (allowed)")
            elif endpoint == "server" and peer_dcids[earlier.path] & peer_dcids[later.path]:
                exceptions.append(f"{moved}: the client kept its DCID too (allowed)")
            else:
                bad.append(moved)
                frames += [earlier.frame, later.frame]
    where = "from" if endpoint == "client" else "to"
    caveat = ("a server-side capture sees the NAT's addresses: a NAT that changes its public IP also shows "
              "as a new client IP") if endpoint == "client" else "tuples as the server sees them"
    if bad:
        return _Judged(VIOLATION, f"the {endpoint} used one DCID {where} two client IPs: " + "; ".join(bad[:3])
                       + f" ({caveat})", _frames(frames))
    summary = f"{len(uses)} DCID(s) over {len(tuples)} tuple(s), none {where} two client IPs"
    if exceptions:
        summary += "; " + "; ".join(exceptions[:3]) + (" (a server-side capture cannot tell a NAT rebinding from a "
                                                        "port change the client made)")
    return _Judged(COMPLIANT, summary)


def _cid_sequences(cap: _Capture, issuer: str) -> dict[str, int]:
    """The issuer's connection IDs -> sequence numbers: 0 its handshake SCID, 1 a preferred-address CID,
    the rest from its NEW_CONNECTION_ID frames."""
    seqs: dict[str, int] = {}
    for d in cap.sent_by(issuer):
        for p in d.packets:
            if p.long_header and p.scid:
                seqs.setdefault(p.scid, 0)
            if p.preferred_address_cid:
                seqs.setdefault(p.preferred_address_cid, 1)
            for cid, seq in zip(p.new_connection_ids, p.new_connection_id_seqs, strict=False):
                if cid:
                    seqs.setdefault(cid, seq)
    return seqs


def replaced_cids_retired(cap: _Capture, endpoint: str) -> _Judged:
    """§5.1.2, §9.5: a connection ID the endpoint stopped using is retired with RETIRE_CONNECTION_ID."""
    uses = _cid_uses(cap, endpoint)
    last_per_conn: dict[int, str] = {}
    for cid, ds in sorted(uses.items(), key=lambda item: item[1][-1].frame):
        last_per_conn[ds[-1].conn] = cid
    if len(uses) <= len(last_per_conn):
        return _Judged(NOT_OBSERVED, f"the {endpoint} used {len(uses)} DCID(s) in short-header packets over "
                                     f"{len(last_per_conn)} connection(s): none replaced")
    last = set(last_per_conn.values())
    seqs = _cid_sequences(cap, _peer(endpoint))
    retired: dict[tuple[int, int], int] = {}  # (connection, sequence) -> frame
    for d in cap.sent_by(endpoint):
        for p in d.packets:
            for seq in p.retire_connection_id_seqs:
                retired.setdefault((d.conn, seq), d.frame)
    done, missing, unknown = [], [], []
    frames: list[int] = []
    for cid, ds in uses.items():
        if cid in last:
            continue
        seq = seqs.get(cid)
        if seq is None:
            unknown.append(f"{cid} (its sequence number is not in the capture)")
        elif (ds[-1].conn, seq) in retired:
            done.append(f"{cid} (seq {seq}) retired at frame {retired[ds[-1].conn, seq]}")
        else:
            missing.append(f"{cid} (seq {seq}, last used at frame {ds[-1].frame})")
            frames.append(ds[-1].frame)
    summary = f"{len(uses) - len(last)} replaced DCID(s), {', '.join(sorted(last))} in use at the end"
    if missing:
        return _Judged(VIOLATION, f"{summary}; never retired: {', '.join(missing)}"
                       + (f"; retired: {', '.join(done)}" if done else ""), _frames(frames))
    if done:
        return _Judged(COMPLIANT, f"{summary}; " + ", ".join(done + unknown))
    return _Judged(NOT_OBSERVED, f"{summary}; " + ", ".join(unknown))


def no_migration_before_confirmation(cap: _Capture, endpoint: str) -> _Judged:
    """§9: the client does not migrate before the handshake is confirmed, i.e. before HANDSHAKE_DONE
    reached it (or an ACK of a 1-RTT packet, RFC 9001 §4.1.2 MAY). In a server-side capture the
    client's first datagram from each new tuple must come after the server sent the first of those."""
    early_ip: list[str] = []
    early_port: list[str] = []
    after: list[str] = []
    frames: list[int] = []
    for conn in cap.connections:
        confirm = next((d for d in cap.sent_by("server", conn) if any(
            HANDSHAKE_DONE in p.frame_types or ACK_TYPES & set(p.frame_types) for p in d.short)), None)
        when = (f"the server's first HANDSHAKE_DONE/1-RTT ACK at frame {confirm.frame}" if confirm
                else "no HANDSHAKE_DONE or 1-RTT ACK from the server in the capture")
        for path, d in cap.new_tuples(conn).items():
            seen = f"{fmt_path(path)} from frame {d.frame} ({d.packets[0].packet_type})"
            if confirm is not None and d.frame > confirm.frame:
                after.append(f"{seen}, after {when}")
            elif path[0] != cap.handshake_ip(conn):
                early_ip.append(f"{seen}, before {when}")
                frames += [d.frame] + ([confirm.frame] if confirm else [])
            else:
                early_port.append(f"{seen}, before {when}")
    if early_ip:
        return _Judged(VIOLATION, "the client sent from a new client IP before the handshake was confirmed: "
                       + "; ".join(early_ip), _frames(frames))
    if early_port:
        return _Judged(NOT_OBSERVED, "port-only change(s) before confirmation (" + "; ".join(early_port)
                       + "): a NAT rebinding, which the client does not initiate, looks the same from the server side")
    if not after:
        return _Judged(NOT_OBSERVED, "no client datagram from a new tuple")
    return _Judged(COMPLIANT, f"{len(after)} new tuple(s): " + "; ".join(after))


@dataclass(frozen=True)
class RuleSpec:
    """One rule: judged by ``check`` for each of ``endpoints`` (from the datagrams that endpoint sent)."""

    id: str
    rule: str
    level: str
    title: str
    endpoints: tuple[str, ...]
    check: Callable[[_Capture, str], _Judged]


RULES: tuple[RuleSpec, ...] = (
    RuleSpec("amplification", "RFC 9000 §8.1", MUST,
             "at most 3x the received bytes to a tuple before it is validated (incl. migrated tuples, §9.3.1)",
             ("server",), amplification_limit),
    RuleSpec("challenge_expanded", "RFC 9000 §8.2.1", MUST,
             "datagrams with PATH_CHALLENGE expanded to >= 1200 bytes unless amplification-limited",
             ENDPOINTS, challenge_expanded),
    RuleSpec("response_echoed", "RFC 9000 §8.2.2", MUST,
             "PATH_RESPONSE echoes the data once, on the challenge's tuple, >= 1200 bytes unless amplification-limited",
             ENDPOINTS, response_echoed),
    RuleSpec("revalidated_expanded", "RFC 9000 §8.2.3", MUST,
             "a tuple validated by an unexpanded challenge is challenged again in an expanded datagram",
             ENDPOINTS, revalidated_expanded),
    RuleSpec("cid_not_reused", "RFC 9000 §9.5", MUST,
             "no connection ID used across two client addresses (NAT rebinding excepted)",
             ENDPOINTS, cid_not_reused),
    RuleSpec("cid_retired", "RFC 9000 §9.5", SHOULD,
             "connection IDs no longer used are retired with RETIRE_CONNECTION_ID",
             ENDPOINTS, replaced_cids_retired),
    RuleSpec("migration_after_confirmation", "RFC 9000 §9", MUST,
             "no migration before the handshake is confirmed (HANDSHAKE_DONE)",
             ("client",), no_migration_before_confirmation),
)


def evaluate(packets: list[QuicPacket], server_addresses: Iterable[str]) -> list[Finding]:
    """Every rule of :data:`RULES` for every endpoint it binds, in table order."""
    cap = _Capture(packets, server_addresses)
    findings = []
    for spec in RULES:
        for endpoint in spec.endpoints:
            judged = spec.check(cap, endpoint)
            findings.append(Finding(spec.rule, spec.level, endpoint, DIRECTIONS[endpoint], judged.verdict,
                                    judged.summary, judged.frames, spec.title))
    return findings


def violations(findings: Iterable[Finding], level: str | None = MUST) -> list[Finding]:
    """The findings with verdict ``violation`` at ``level`` (None: at any level)."""
    return [f for f in findings if f.verdict == VIOLATION and (level is None or f.level == level)]

