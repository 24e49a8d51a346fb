"""The topics of `python -m lab explain`, as data.

Each topic is a concise explanation with its RFC sections and the exact command that shows it live in
this lab, plus what to look for in that command's output. Figures are never written here: where a topic
needs a number, `lab.learn.evidence` reads it from the latest recorded run (or says how to record one).
The few facts about the world outside the lab that a topic states have their sources in
docs/references.md, inside this repository.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str  # the argument of `python -m lab explain NAME`
    title: str
    sections: tuple[str, ...]  # e.g. "RFC 9000 §9.3"
    summary: str  # one line, for the table
    body: str  # Markdown
    command: str  # the exact command that demonstrates it live
    look_for: tuple[str, ...]  # what to look for in that command's output


TOPICS: tuple[Topic, ...] = (
    Topic(
        name="connection-ids",
        title="Connection IDs vs the TCP 4-tuple",
        sections=("RFC 9000 §5.1", "RFC 9000 §5.2", "RFC 9000 §9"),
        summary="why a QUIC connection can outlive its addresses and a TCP connection cannot",
        body="""\
A TCP connection *is* its 4-tuple (source IP, source port, destination IP, destination port): when any
of the four changes, the segments belong to no connection and the peer answers with a RST or nothing.

A QUIC packet carries a **Destination Connection ID** (DCID) chosen by the receiver (§5.1). The server
finds the connection by that DCID, not by the addresses it arrived from (§5.2), so a packet from a new
address on a known DCID still belongs to the same connection. Each endpoint issues several CIDs to its
peer (NEW_CONNECTION_ID, §5.1.1), which lets the peer switch to an unused one when it moves (§9.5).

In this lab every CID is 8 bytes (16 hex digits). The client's first Initial carries a random DCID;
the lab names a connection after it (the `conn` field of every event and the qlog file name).""",
        command="python -m lab demo",
        look_for=(
            "`active path A -> B (same IP, new port (NAT rebinding))` at the server: one connection, a new 4-tuple",
            "the verdict line `port rebinding: same CID, new path validated by the server`",
            "no second `handshake with ...` line for connection 1: the connection was never re-established",
        ),
    ),
    Topic(
        name="path-validation",
        title="Path validation (PATH_CHALLENGE / PATH_RESPONSE)",
        sections=("RFC 9000 §8.2", "RFC 9000 §8.2.1", "RFC 9000 §8.2.2", "RFC 9000 §8.2.4", "RFC 9000 §9.3"),
        summary="how an endpoint proves the peer is really reachable at a new address",
        body="""\
A packet from a new address proves nothing: its source could be spoofed. Before trusting a new path the
server sends a **PATH_CHALLENGE** frame with 8 unpredictable bytes (§8.2.1); the client must echo them in
a **PATH_RESPONSE** (§8.2.2). Only a peer that receives packets at that address can answer, so a matching
response validates the path. Datagrams carrying a PATH_CHALLENGE are padded to at least 1200 bytes, so
validation also checks that the path carries full-size packets (§8.2.1), within the anti-amplification
limit (§8.1).

Validation costs one round trip. If no response arrives within three PTOs, validation is abandoned and
the server returns to the last validated path (§8.2.4, §9.3.2).""",
        command="python -m lab walkthrough nat-rebinding",
        look_for=(
            "`server  PATH_CHALLENGE <8 bytes> sent to <peer>`, then `server  PATH_RESPONSE <same bytes> received from"
            " <peer>`",
            "`path ... validated in N ms`: the round trip the validation took",
            "in the packet view: the capture frame of the challenge and of the response, with the same data",
        ),
    ),
    Topic(
        name="nat-rebinding",
        title="NAT rebinding",
        sections=("RFC 9000 §9.3", "RFC 9000 §9.4", "RFC 9000 §9.5"),
        summary="the NAT gives the client a new port; the client never knows",
        body="""\
A NAT keeps a mapping from the client's inside address to an outside address and port. When the mapping
expires (idle UDP flows are forgotten after tens of seconds) the next packet gets a **new outside port**.
The client did nothing and does not know; the server simply sees the same DCID from a new 4-tuple.

The server treats it as a peer address change (§9.3): it sends to the new address at once, within the 3x
limit, and validates it. Only the port changed, so it may keep its congestion controller and RTT estimate
(§9.4). The client did not choose to move, so it cannot switch to a new CID: the old and new 4-tuples are
linkable by the DCID (§9.5). In the lab, `rebind` deletes the router's conntrack entries.""",
        command="python -m lab scenario run nat-rebinding",
        look_for=(
            "`home-router  NAT maps 10.203.1.10:P <-> 10.203.100.21:Q` with a new Q after each `rebind`",
            "`active path ... -> ... (port change (NAT rebinding))` at the server: same IP, new port",
            "the checks `server_saw_ips == 1`, `server_saw_addresses >= 3` and `cid_unchanged`",
        ),
    ),
    Topic(
        name="network-switch",
        title="Network switch (Wi-Fi to cellular)",
        sections=("RFC 9000 §9.2", "RFC 9000 §9.3", "RFC 9000 §9.4", "RFC 9002 §6.2"),
        summary="the phone leaves Wi-Fi mid-download; the connection carries on over cellular",
        body="""\
Break-before-make: the Wi-Fi network disappears, packets in flight are lost, and later the phone joins
cellular behind a carrier NAT. In the flagship scenario the client is passive: it keeps sending from
whatever address its routing gives it, so its next packet reaches the server from a **new IP**.

The server switches to the new address on the first non-probing packet with the highest packet number
(§9.3), validates it (§8.2) and, because the IP changed, resets its congestion controller and RTT
estimator (§9.4): the new network may be much slower. The disruption is dominated by detection: a
client that only receives has to notice the stall (a PTO, RFC 9002 §6.2, or the lab's keepalive PING)
before its next packet reveals the new address. An aware client can probe the new path first (§9.2) and
switch with almost no gap (make-before-break: `wifi-to-cellular-active`).""",
        command="python -m lab walkthrough wifi-to-cellular",
        look_for=(
            "`disconnect home`, `connect cellular`, `route cellular` as controller steps",
            "`active path 10.203.100.21:... -> 10.203.100.22:... (address change)` at the server",
            "`congestion controller reset (cwnd ... -> 12000)`: §9.4 at work",
            "`data stalled for N ms` at the client: the disruption the learner actually felt",
        ),
    ),
    Topic(
        name="ip-change",
        title="IP change (renumbering behind a NAT)",
        sections=("RFC 9000 §9.3", "RFC 9000 §9.4"),
        summary="the client's own address changes; what the server sees depends on the NAT",
        body="""\
A DHCP renumbering gives the client a new local IP on the same network. Behind the home NAT, the
server does not see that IP at all: it sees the router's outside address with a new port, exactly as in a
NAT rebinding (§9.3). It validates the new path and, since only the port changed from its point of
view, may keep congestion state (§9.4).

What a peer sees is all a peer can act on: the same cause (a new client IP) is an address change to the
router's conntrack table and a port-only change to the server.""",
        command="python -m lab scenario run ip-change",
        look_for=(
            "`renumber home` from the controller, then `NAT maps <new client IP>:P <-> 10.203.100.21:Q`",
            "`active path ... (port change (NAT rebinding))` at the server although the client's IP changed",
        ),
    ),
    Topic(
        name="preferred-address",
        title="Server preferred address",
        sections=("RFC 9000 §9.6", "RFC 9000 §9.6.1", "RFC 9000 §9.6.2", "RFC 9000 §18.2", "RFC 9000 §5.1.1"),
        summary="the server asks the client to move to another server address after the handshake",
        body="""\
Only clients migrate in RFC 9000, with one exception: a server may name a **preferred_address**
transport parameter (§18.2) with an IPv4 and/or IPv6 address, a connection ID (sequence number 1) and a
stateless reset token. Once the handshake is confirmed the client may validate that address with a
PATH_CHALLENGE (§9.6.1) and, on a PATH_RESPONSE, move all traffic there using the new connection ID: a
CID must not be reused towards a different destination (§9.5). The server then also sees the client
arrive on its new address (§9.6.2) and validates the client in turn.

Use: a public anycast or load-balancer address for the handshake, then a unicast server address for the
rest of the connection. In this lab the server on port 4443 advertises 10.203.200.10:4443.""",
        command="python -m lab walkthrough preferred-address",
        look_for=(
            "`client  PATH_CHALLENGE ... sent to 10.203.200.10:4443` and `client  path 10.203.200.10:4443 validated`",
            "`client  active path 10.203.100.10:4443 -> 10.203.200.10:4443 (address change)`",
            "`client now sends to connection ID ...`: the preferred address's CID",
            "in the packet view: packets to 10.203.200.10:4443 with the new DCID",
        ),
    ),
    Topic(
        name="cid-privacy",
        title="CID rotation and privacy",
        sections=("RFC 9000 §9.5", "RFC 9000 §5.1.1", "RFC 9000 §5.1.2", "RFC 9000 §19.15", "RFC 9000 §19.16"),
        summary="a new path should carry a new connection ID, or an observer can link the two",
        body="""\
The DCID travels in clear text. If a client moves to a new network but keeps its DCID, an on-path
observer sees the same identifier on both networks and can link them. So an endpoint that initiates a
migration **must not** reuse a CID on a new local address (§9.5); it takes an unused CID from the
peer's supply (NEW_CONNECTION_ID, §19.15) and retires the old one (RETIRE_CONNECTION_ID, §19.16,
§5.1.2). The peer, seeing a new CID arrive, also switches the CID it sends with (§9.5).

The limit: a client that does not know it moved (NAT rebinding) cannot rotate, so a rebinding stays
linkable. The `cid-privacy` scenario shows both in one run: the rebinding keeps the CID, the active
migration changes it, exactly once.""",
        command="python -m lab scenario run cid-privacy",
        look_for=(
            "exactly one `now sending to connection ID X (was Y)` line at the client, at the migration",
            "`peer retired our connection ID ...` at both ends",
            "the check `cid_changed == 1` and, in report.md, `capture_cid_linkability`: which paths share a DCID",
        ),
    ),
    Topic(
        name="amplification",
        title="The anti-amplification limit",
        sections=("RFC 9000 §8", "RFC 9000 §8.1", "RFC 9000 §9.3.1", "RFC 9000 §21.1.1.1"),
        summary="at most 3x the bytes received, until the peer's address is validated",
        body="""\
An attacker could spoof a victim's address as the source of a small packet and make the server flood the
victim. So until an address is validated, an endpoint may send it **at most three times the bytes it
received from it** (§8.1), during the handshake and again on every new unvalidated path (§9.3.1,
§21.1.1.1). The cost is small for a real peer: the first PATH_RESPONSE lifts the limit.

In the lab, a rebinding's first packet is often a small ACK or PING. The server may send 3x that, too
little for a 1200-byte challenge plus data, so its first packets on the new path are tiny until the
response arrives. The `amplification_limited` event reports the budget each time it binds.""",
        command="python -m lab walkthrough nat-rebinding",
        look_for=(
            "`anti-amplification: S B sent for R B received from unvalidated ...` with S <= 3 x R",
            "in report.md, `capture_amplification`: the same rule checked on the capture, per path",
        ),
    ),
    Topic(
        name="second-migration",
        title="A second migration (the so-called \"zero-RTT migration\")",
        sections=("RFC 9000 §9.3", "RFC 9000 §8.2", "RFC 9000 §9.4", "RFC 9001 §4.6.1", "RFC 8446 §2.3"),
        summary="returning to a validated path needs no new challenge; a new path always does; no 0-RTT",
        body="""\
The seed material called it "zero-RTT migration". There is no such mechanism, and 0-RTT has nothing to do
with migration: 0-RTT (RFC 8446 §2.3, RFC 9001 §4.6.1) is early data in the first flight of a *new*
connection resumed from an earlier session. Migration happens inside an established connection, and a
client must not migrate before the handshake is confirmed (RFC 9000 §9).

What really happens on a second move:
- to a **new** address, the server validates it (§8.2): one round trip, within the 3x limit;
- back to an address it **validated recently**, it may skip validation (§9.3: "An endpoint MAY skip
  validation of a peer address if that address has been seen recently"), so no PATH_CHALLENGE is sent.

Either way, an IP change resets congestion control and the RTT estimate (§9.4): skipping validation
saves a round trip, not the slow start.""",
        command="python -m lab scenario run flapping",
        look_for=(
            "many `active path ... -> ... (address change)` lines at the server, but only one `PATH_CHALLENGE`",
            "a `congestion controller reset` at every switch, including the returns",
            "the metrics: `paths validated` stays low while the route switched ten times",
        ),
    ),
    Topic(
        name="tcp-vs-quic",
        title="TCP vs QUIC on a network change",
        sections=("RFC 9000 §9", "RFC 9000 §9.3", "RFC 8446 §2", "RFC 9002 §6.2"),
        summary="TCP must notice, reconnect and resume; QUIC validates the new path and continues",
        body="""\
When the client's IP changes, a TCP connection is gone: its 4-tuple no longer exists. The application
must first **notice** (a read timeout or the kernel's retransmission timeout; the server may answer a
stray segment with a RST), then **reconnect**: a TCP handshake (1 RTT), a TLS 1.3 handshake (1 RTT,
RFC 8446 §2), then re-send its request and resume from the byte it had reached.

A QUIC connection continues: the server sees the same DCID from a new address, validates the path
(§9.3, §8.2) and goes on sending. What remains is the detection time (a PTO, RFC 9002 §6.2, or the
lab's keepalive) and one validation round trip.

The lab runs the same walk out of Wi-Fi over both transports and measures each client's longest data
pause after the first network action. The figures below are read from the latest recorded run, never
typed in.""",
        command="python -m lab scenario run tcp-vs-quic",
        look_for=(
            "`[tcp] connection broken (...); reconnecting to resume at byte N` then `reconnected after N ms`",
            "QUIC: `active path ... (address change)` and one handshake for the whole run",
            "the per-transport metrics line: `tcp: disruption ... ms` vs `quic: disruption ... ms`",
        ),
    ),
    Topic(
        name="benefits",
        title="Benefits and use cases",
        sections=("RFC 9000 §9", "RFC 9000 §9.5", "RFC 9000 §9.6"),
        summary="where migration pays off, and where it does not",
        body="""\
- **Mobility:** a phone moving between Wi-Fi and cellular keeps its downloads, calls and streams
  (§9.2, §9.3); no reconnect, no re-request, no new TLS handshake.
- **NAT rebinding:** idle UDP mappings expire; a QUIC connection survives the new port transparently.
- **Privacy:** fresh CIDs make a moved client unlinkable to a passive observer (§9.5).
- **Server-side steering:** a preferred address moves clients off an anycast or load-balancer
  address after the handshake (§9.6).

Limits, stated honestly: the disruption of an unplanned switch is bounded by detection (timers), not by
the protocol; congestion state restarts after an IP change (§9.4); servers may disable active migration
(`disable_active_migration`, §18.2); and many large deployments do not enable migration at all
(docs/references.md lists the measurements and their sources). This lab's own figures are
in each run's report; the commute scenario strings three networks together.""",
        command="python -m lab scenario run commute",
        look_for=(
            "`server_saw_ips >= 3` with `single_handshake`: three networks, one connection",
            "`transfer complete: 16000000 B, sha256 verified`",
        ),
    ),
    Topic(
        name="multipath",
        title="Multipath (what RFC 9000 does not do)",
        sections=("RFC 9000 §9", "RFC 9000 §9.1", "RFC 9000 §9.3"),
        summary="RFC 9000 moves a connection between paths; it does not use them at once",
        body="""\
RFC 9000 migration is **one active path at a time**. An endpoint may probe other paths with probing
frames (§9.1), but the server sends its data to the address of the highest-numbered non-probing packet
it received (§9.3); there is no scheduling of data over two paths, no per-path packet number spaces,
and no per-path congestion control. Two networks attached at once (make-before-break) make the switch
smoother; they do not add bandwidth.

Using several paths simultaneously is the subject of the IETF QUIC working group's multipath extension
(draft-ietf-quic-multipath, work in progress), comparable to MPTCP for TCP. **This lab does not
implement it**, and aioquic 1.7.2 does not either.""",
        command="python -m lab walkthrough wifi-to-cellular-active",
        look_for=(
            "both `connect cellular` and the still-attached home network, yet a single `active path ... -> ...`"
            " change at the server",
            "`progress` via one local address at a time: the client's address changes once, it never alternates",
        ),
    ),
    Topic(
        name="video-stall",
        title="Would the viewer notice? A video player's buffer through a handover",
        sections=("RFC 9000 §9.3", "RFC 9114 §4.1"),
        summary="a transport gap becomes a stall only when it outlasts the player's buffer",
        body="""\
A DASH or HLS player fetches a video as **segments** (here 2 s of video each, one HTTP request per
segment) and keeps a **buffer** of video it has not played yet. It starts playing once `startup`
seconds are buffered (the **start-up delay**), plays one second per second, and asks for the next
segment while less than `buffer` seconds are buffered. When the network goes away, playback goes on
from the buffer; the viewer sees a **stall** (a rebuffering event) only if the buffer runs dry before
segments arrive again.

So "the user never noticed" is a comparison of two measured things: the time without data and the
buffer the player had at that moment. The lab's player (`--workload video`: HTTP/3 on QUIC, HTTP/1.1
on TCP) emits a `segment` event per segment (request and arrival times, sha256 verified), and the
report replays them through the same buffer model the player used, so a stall is computed from the
arrivals, never assumed. QUIC's connection migrates (§9.3) and the next request simply goes out from
the new address; TCP's connection dies with its address and the player must notice (a timeout),
reconnect (TCP and TLS handshakes) and ask for the segment again.""",
        command="python -m lab scenario run wifi-to-cellular-video",
        look_for=(
            "the checks `rebuffer_events` and `startup_ms`, per transport, with what they observed",
            "in report.md, `What a person would notice`: one `viewer` line per transport, a stall or none, "
            "with the buffer's lowest level",
            "`segment` events: a segment requested during the handover takes longer (`download_ms`)",
        ),
    ),
    Topic(
        name="call-freeze",
        title="Would the caller notice? Small messages at 50 a second through a handover",
        sections=("RFC 9221 §5", "RFC 9000 §9.2"),
        summary="a call or a game feels every gap over 150 ms one way; latency percentiles and freezes",
        body="""\
A voice call or a game sends small messages at a fixed rate (here one every 20 ms, both ways) and
cannot wait for a retransmission: a message that comes late is as bad as a lost one. QUIC can carry
them in **DATAGRAM frames** (RFC 9221), which are never retransmitted; TCP carries them on its one
ordered stream. A caller notices one-way delay from about 150 ms on (ITU-T Recommendation G.114,
"One-way transmission time", 2003: up to 150 ms is acceptable for most applications).

The lab's call (`--workload call`) has the server stamp each message and send it straight back, so
every message measures both directions (the lab's containers share one clock). A **freeze** is a time
in which nothing new arrived in one direction; the report gives the longest, each one next to the
network change it followed, and the latency percentiles. In a make-before-break handover a QUIC client
can move on purpose before the old network goes (§9.2); a TCP connection cannot move and dies with the
old address.""",
        command="python -m lab scenario run wifi-to-cellular-call",
        look_for=(
            "the check `freeze_ms` for each transport, against 150 ms",
            "in report.md, `What a person would notice`: one `caller` line per transport",
            "`call_freeze` events: direction, start and length of each gap",
        ),
    ),
    Topic(
        name="load-balancers",
        title="Load balancers: 4-tuple hashing, QUIC-LB connection IDs, and the preferred address",
        sections=("RFC 9000 §5.2.3", "RFC 9000 §9", "RFC 9000 §9.6", "RFC 9000 §10.3"),
        summary="why most deployed servers cannot follow a migration, and the two ways out",
        body="""\
A server that migrates finds the connection by its connection ID, but a farm of servers behind a
layer-4 load balancer is reached through the balancer first, and the balancer decides where each
packet goes:

- **4-tuple hashing** (ECMP, most L4 balancers): a NAT rebinding or a handoff is a new 4-tuple, so a
  new hash, and the packets may land on a replica that never saw the connection. It knows none of its
  CIDs: it drops them (aioquic does, silently) or sends a stateless reset (§10.3). Either way the
  connection is gone, and §5.2.3 asks such deployments to disable active migration.
- **Connection-ID routing** (QUIC-LB, draft-ietf-quic-load-balancers): every CID a replica issues
  encodes its server ID, and the balancer reads it from each packet's DCID. A rebound tuple still
  reaches the replica that holds the connection, which validates the new path (§8.2) as a lone
  server would.
- **The preferred address** (§9.6): the replica that took the handshake offers its own unicast
  address; once the client moves there no balancer stands in between.

The lab's farm (compose profile `farm`) is a kernel-only balancer (iptables DNAT per conntrack flow,
HMARK hash or u32 reading the plaintext server ID) in front of two replicas of the lab's server; each
replica's own capture shows which replica got what, and what it answered. docs/load-balancers.md has
the details.""",
        command="python -m lab scenario run lb-four-tuple",
        look_for=(
            "`farm_balancer_flows`: after how many rebindings the balancer sent the flow to the other replica",
            "`farm_other_replica_reaction`: silence or a stateless reset, from the other replica's own capture",
            "`farm_connection_broke`: the bytes the download stalled at, and none after the move",
            "then `lb-cid-routing` (`farm_holder_validated`) and `lb-preferred-address` (`farm_preferred_address`)",
        ),
    ),
    Topic(
        name="attacks",
        title="Attacks on migration: a victim, a hijacked path, a race of copies",
        sections=("RFC 9000 §8.1", "RFC 9000 §9.3.1", "RFC 9000 §9.3.2", "RFC 9000 §9.3.3", "RFC 9000 §21.5.4"),
        summary="what a server owes a victim and its real client when someone fakes a migration",
        body="""\
A server follows its client to a new address before it has validated it, so anyone who can put the
client's packets on the wire from another address can move the server. RFC 9000 bounds what that buys:

- **Amplification** (§8.1, §9.3.1, §21.5.4): an attacker sends the client's packets with a victim's
  address as the source. Until the address is validated the server may send it at most three times
  the bytes it received from it, so the victim gets at most 3x what the attacker spent.
- **A hijacked path** (§9.3.2): an on-path box rewrites the client's source address. The server's
  PATH_CHALLENGE to the new address goes unanswered, so the path is never validated, and when the
  rewriting stops the server must go back to the last validated address.
- **A race of copies** (§9.3.3): an off-path attacker forwards copies of the client's packets faster
  than the real path. The server sees an apparent migration, and it MUST then challenge the previous
  path too: the real client answers, and the server can move back at once.

The lab plays all three with a silent victim and an attacker host, judged from the victim's and the
attacker's own captures merged into the server's view.""",
        command="python -m lab scenario run amplification-attack",
        look_for=(
            "`capture_attack_amplification`: the server's bytes to the victim against the bytes sent in its name",
            "`capture_attack_path_not_validated`: challenges sent to the victim, none answered",
            "`capture_attack_old_path_probed`: whether the server challenged the client's real path (§9.3.3)",
        ),
    ),
    Topic(
        name="reconnect-vs-migrate",
        title="Reconnecting instead of migrating: 0-RTT, resumption and full handshakes",
        sections=("RFC 9000 §9", "RFC 9001 §4.6", "RFC 8446 §2.2", "RFC 8446 §8"),
        summary="what a client without migration pays after a network change, strategy by strategy",
        body="""\
A client whose connection dies with its address can make a new one. How much that costs depends on
what it kept from the first connection:

- **QUIC migration** (RFC 9000 §9): no new connection. The client's next packet from the new address
  is answered at once; the server validates the path alongside (§8.2).
- **QUIC with 0-RTT** (RFC 9001 §4.6): the session ticket of the first connection lets the new one
  send its request in its very first flight, beside the Initial: the data starts one round trip later.
- **QUIC, full handshake**: one round trip of handshake, then the request: two round trips.
- **TCP+TLS 1.3 with resumption** (RFC 8446 §2.2): the TCP handshake, then an abbreviated TLS one
  (pre_shared_key, no certificate), then the request: still three round trips, since Python's ssl
  sends no early data; resumption saves computation and bytes, not a round trip.
- **TCP+TLS 1.3, full handshake**: three round trips and the certificate.

0-RTT data can be replayed (RFC 8446 §8): the lab's server accepts each ticket once. Every client
here notices the break the same way (200 ms without data), so the differences are the strategies'.""",
        command="python -m lab scenario run reconnect-vs-migrate",
        look_for=(
            "the report's `Reconnection strategies` table: disruption, ratio to migration, round trips",
            "`session_resumption` events: `early_data: accepted` on quic-0rtt's second connection",
            "`client_hello_psk 1, server_hello_psk 1` for tcp-resume's connection after the change",
        ),
    ),
)

BY_NAME: dict[str, Topic] = {topic.name: topic for topic in TOPICS}
