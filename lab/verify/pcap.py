"""Edge of the capture verification: runs ``editcap``/``tshark`` (Wireshark, a program we did not write)
from the lab image (:mod:`lab.verify.tshark`) and turns its output into one :class:`QuicPacket` record
per QUIC packet.

Pure checks on these records live in :mod:`lab.verify.capture_checks`.

Why ``-T json`` and not ``-T fields``: a UDP datagram may carry several coalesced QUIC packets and a
packet several frames. ``-T fields`` flattens all occurrences of a field across the whole datagram,
so frames can no longer be attributed to their packet. The JSON tree keeps one ``quic`` node per
QUIC packet with its ``quic.frame`` children. tshark 4.0 writes repeated names as *duplicate keys*
in one JSON object, so the parser keeps every (key, value) pair instead of a dict (a plain ``json.loads``
keeps only the last coalesced packet and the last frame; ``--no-duplicate-keys`` is an alternative).

Commands (tshark 4.0.17, Debian 12 package ``tshark``)::

    editcap --inject-secrets tls,<keylog> <in.pcap> <out.pcapng>
    tshark -n -r <pcap> -d udp.port==<P>,quic [...] [-o tls.keylog_file:<keylog>] --disable-protocol http3
           -Y "quic && !icmp && !icmpv6" -T json -J "frame ip ipv6 udp quic"

Known tshark 4.0.17 limitation: ``editcap`` refuses to rewrite a pcapng that already holds a Decryption
Secrets Block ("The capture file being read can't be written as a "pcapng" file"), so frame deletion
and ``--discard-all-secrets`` fail on injected files: delete frames from the raw capture *before*
injecting the key log (``tshark -r in.pcapng -Y <filter> -w out.pcapng`` does keep the block).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from lab.verify.tshark import ImageTools, TsharkError, common_dir, inside

__all__ = ["ImageTools", "QuicPacket", "TsharkError", "packets_from_json", "packets_to_json", "parse_tshark_json",
           "prepare_captures", "read_quic_packets", "tshark_args"]

# RFC 9000 §19 frame types -> names (STREAM 0x08-0x0f and ACK 0x02-0x03 collapse to one name).
FRAME_NAMES: dict[int, str] = {
    0x00: "padding", 0x01: "ping", 0x02: "ack", 0x03: "ack", 0x04: "reset_stream", 0x05: "stop_sending",
    0x06: "crypto", 0x07: "new_token", **{t: "stream" for t in range(0x08, 0x10)}, 0x10: "max_data",
    0x11: "max_stream_data", 0x12: "max_streams", 0x13: "max_streams", 0x14: "data_blocked",
    0x15: "stream_data_blocked", 0x16: "streams_blocked", 0x17: "streams_blocked", 0x18: "new_connection_id",
    0x19: "retire_connection_id", 0x1A: "path_challenge", 0x1B: "path_response", 0x1C: "connection_close",
    0x1D: "connection_close", 0x1E: "handshake_done", 0x30: "datagram", 0x31: "datagram",
}
PADDING, PING, PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID = 0x00, 0x01, 0x1A, 0x1B, 0x18
# RFC 9000 §9.1: probing frames; a packet with any other frame is non-probing.
PROBING_FRAMES = frozenset({PADDING, PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID})

_LONG_TYPES_V1 = {0: "initial", 1: "0rtt", 2: "handshake", 3: "retry"}


@dataclass(frozen=True)
class QuicPacket:
    """One QUIC packet as tshark decoded it. Knows nothing of client/server roles."""

    frame: int  # capture frame number (1-based); coalesced packets share it
    index_in_datagram: int  # 0 for the first QUIC packet of the UDP datagram
    time: float  # epoch seconds
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    long_header: bool
    packet_type: str  # initial | handshake | 0rtt | 1rtt | retry | vn
    version: int | None  # None for short-header packets
    dcid: str  # lowercase hex, "" when zero-length
    scid: str  # lowercase hex, "" for short headers
    packet_number: int | None
    decrypted: bool  # frames were dissected (retry and vn have nothing to decrypt: True)
    frame_types: tuple[int, ...]
    path_challenge: tuple[str, ...] = ()  # PATH_CHALLENGE data, hex
    path_response: tuple[str, ...] = ()
    new_connection_id_seqs: tuple[int, ...] = ()
    retire_connection_id_seqs: tuple[int, ...] = ()
    udp_payload_length: int = 0  # of the whole datagram (same for coalesced packets)
    packet_length: int = 0  # of this QUIC packet
    new_connection_ids: tuple[str, ...] = ()  # NEW_CONNECTION_ID connection IDs, hex, beside new_connection_id_seqs
    preferred_address_cid: str = ""  # the preferred_address transport parameter's CID (sequence 1), hex
    decoded_from: str = "capture"  # "qlog": tshark could not decrypt it, its receiver's qlog gave the frames

    @property
    def four_tuple(self) -> tuple[str, int, str, int]:
        return (self.src_ip, self.src_port, self.dst_ip, self.dst_port)

    @property
    def frame_names(self) -> tuple[str, ...]:
        return tuple(FRAME_NAMES.get(t, f"0x{t:x}") for t in self.frame_types)

    @property
    def is_probing(self) -> bool:
        """Only probing frames (RFC 9000 §9.1). Undecrypted packets are not known to be probing: False."""
        return self.decrypted and bool(self.frame_types) and all(t in PROBING_FRAMES for t in self.frame_types)


BASE_FILTER = "quic && !icmp && !icmpv6"
# Datagrams of one short-header packet and nothing else (a short header has no length: it runs to the
# datagram's end, so nothing is coalesced after it). Almost every datagram of a transfer is one; their
# fields come from -T fields, several times cheaper than tshark's JSON (54 MB for a 4 MB transfer).
SHORT_ONLY = "quic.short && !(quic.header_form == 1)"
# The fields of a short-header packet the records need, in this order (-E occurrence=a: every one).
SHORT_FIELDS = ("frame.number", "frame.time_epoch", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "udp.srcport",
                "udp.dstport", "udp.length", "quic.dcid", "quic.packet_number", "quic.packet_length",
                "quic.frame_type", "quic.path_challenge.data", "quic.path_response.data", "quic.nci.sequence",
                "quic.nci.connection_id", "quic.rci.sequence")
FIELDS_MARK = "@@lab-fields@@"  # between the JSON and the fields in the decoding container's output


def _decode_args(pcap: str, keylog: str | None, quic_ports: Iterable[int]) -> list[str]:
    cmd = ["tshark", "-n", "-r", pcap]
    for port in sorted(set(quic_ports)):
        cmd += ["-d", f"udp.port=={int(port)},quic"]
    if keylog is not None:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    return cmd + ["--disable-protocol", "http3"]


def tshark_args(pcap: str, keylog: str | None, quic_ports: Iterable[int]) -> list[str]:
    """The tshark command that decodes every QUIC packet as JSON (paths as given); :func:`read_quic_packets`
    runs it for the datagrams that are not one short-header packet, :func:`fields_args` for the rest."""
    return _decode_args(pcap, keylog, quic_ports) + ["-Y", BASE_FILTER, "-T", "json", "-J", "frame ip ipv6 udp quic"]


def json_args(pcap: str, keylog: str | None, quic_ports: Iterable[int]) -> list[str]:
    """The JSON decode of the datagrams with a long header (coalesced packets) or no QUIC header."""
    args = tshark_args(pcap, keylog, quic_ports)
    args[args.index("-Y") + 1] = f"{BASE_FILTER} && !({SHORT_ONLY})"
    return args


def fields_args(pcap: str, keylog: str | None, quic_ports: Iterable[int]) -> list[str]:
    """The -T fields decode of the datagrams that are one short-header packet (SHORT_FIELDS, tab-separated)."""
    fields = [arg for name in SHORT_FIELDS for arg in ("-e", name)]
    return _decode_args(pcap, keylog, quic_ports) + ["-Y", f"{BASE_FILTER} && {SHORT_ONLY}", "-T", "fields",
                                                     *fields, "-E", "occurrence=a", "-E", "aggregator=,",
                                                     "-E", "separator=/t"]


def decode_script(pcap: str, keylog: str | None, quic_ports: Iterable[int]) -> str:
    """Shell for one container: both decodes at once, the JSON's output, FIELDS_MARK, the fields' output."""
    ports = list(quic_ports)
    return (f"set -e; {shlex.join(json_args(pcap, keylog, ports))} > /tmp/lab-json & j=$!; "
            f"{shlex.join(fields_args(pcap, keylog, ports))} > /tmp/lab-fields; wait $j; "
            f"cat /tmp/lab-json; echo; echo {FIELDS_MARK}; cat /tmp/lab-fields")


def read_quic_packets(pcap: Path, keylog: Path | None, quic_ports: Iterable[int],
                      tools: ImageTools | None = None) -> list[QuicPacket]:
    """Decode ``pcap`` with the lab image's tshark and return one record per QUIC packet, in capture order.

    ``keylog``: an NSS key log for ``-o tls.keylog_file:`` when the secrets are not injected (None if
    they are, or to see what an observer without keys sees). ``quic_ports``: UDP ports decoded as QUIC.
    The same records as parsing :func:`tshark_args`'s JSON, from two cheaper decodes (:func:`decode_script`).
    """
    pcap = Path(pcap)
    if not pcap.exists():
        raise FileNotFoundError(pcap)
    files = [pcap] + ([Path(keylog)] if keylog is not None else [])
    workdir = common_dir(files)
    script = decode_script(inside(pcap, workdir), inside(Path(keylog), workdir) if keylog else None, quic_ports)
    out = (tools or ImageTools()).run(workdir, script, writable=False)
    head, mark, tail = out.rpartition(f"\n{FIELDS_MARK}\n")
    if not mark:
        raise TsharkError(f"tshark's output for {pcap.name} lacks its fields part")
    return merge_packets(parse_tshark_json(head), parse_tshark_fields(tail))


def merge_packets(*parts: list[QuicPacket]) -> list[QuicPacket]:
    """Records of disjoint sets of datagrams -> capture order (a datagram's packets keep theirs)."""
    return sorted((p for part in parts for p in part), key=lambda p: (p.frame, p.index_in_datagram))


def _many(cell: str) -> list[str]:
    """A -T fields cell's values (occurrence=a, aggregator=','), empty ones left out."""
    return [v for v in cell.split(",") if v] if cell else []


def _first(cell: str) -> str | None:
    """A cell's first non-empty value, or None."""
    if "," not in cell:
        return cell or None
    return next((v for v in cell.split(",") if v), None)


def parse_tshark_fields(text: str) -> list[QuicPacket]:
    """Parse :func:`fields_args` output: one line per datagram of one short-header packet (pure).

    Each frame's own fields (a PATH_CHALLENGE's data, a NEW_CONNECTION_ID's sequence) are listed in
    frame order, so the n-th PATH_CHALLENGE frame has the n-th data, as in the JSON tree.
    """
    packets = []
    width = len(SHORT_FIELDS)
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != width:
            raise TsharkError(f"tshark fields line with {len(cells)} of {width} fields: {line[:120]!r}")
        # each cell split only when read: a line per datagram, 10^4-10^5 lines a run
        row = dict(zip(SHORT_FIELDS, cells, strict=True))
        v6 = _first(row["ip.src"]) is None
        kinds = [t for t in (_int(v) for v in _many(row["quic.frame_type"])) if t is not None]
        packets.append(QuicPacket(
            frame=int(str(_first(row["frame.number"]))), index_in_datagram=0,
            time=float(str(_first(row["frame.time_epoch"]))),
            src_ip=str(_first(row["ipv6.src" if v6 else "ip.src"])), src_port=int(str(_first(row["udp.srcport"]))),
            dst_ip=str(_first(row["ipv6.dst" if v6 else "ip.dst"])), dst_port=int(str(_first(row["udp.dstport"]))),
            long_header=False, packet_type="1rtt", version=None, dcid=_hex(_first(row["quic.dcid"])), scid="",
            packet_number=_int(_first(row["quic.packet_number"])), decrypted=bool(kinds), frame_types=tuple(kinds),
            path_challenge=tuple(_hex(v) for v in _many(row["quic.path_challenge.data"])),
            path_response=tuple(_hex(v) for v in _many(row["quic.path_response.data"])),
            new_connection_id_seqs=tuple(_int(v, -1) for v in _many(row["quic.nci.sequence"])),  # type: ignore[misc]
            retire_connection_id_seqs=tuple(_int(v, -1) for v in _many(row["quic.rci.sequence"])),  # type: ignore[misc]
            udp_payload_length=int(str(_first(row["udp.length"]))) - 8,
            packet_length=_int(_first(row["quic.packet_length"]), 0) or 0,
            new_connection_ids=tuple(_hex(v) for v in _many(row["quic.nci.connection_id"])),
        ))
    return packets


# One container for the whole preparation: editcap and mergecap of the lab image. Raw captures
# become pcapng with the key log injected (a Decryption Secrets Block: Wireshark opens them
# decrypted), and the routers' WAN sides merge into server-side.pcapng, the server's view (with the
# victim's and the attacker's captures of an attack: their short-header packets decrypt only beside
# the handshake, and the server's view is incomplete without them).
_PREPARE = r"""set -e
cd captures
keys=../client/keys-quic.log
inject() {
  if [ -s "$keys" ]; then editcap --inject-secrets "tls,$keys" -F pcapng "$1" "$2"; else editcap -F pcapng "$1" "$2"; fi
}
wan=""
for f in *.pcap; do
  [ -e "$f" ] || continue
  case "$f" in *-wan.pcap|victim.pcap|attacker.pcap) [ "$(stat -c %s "$f")" -gt 24 ] && wan="$wan $f" ;; esac
done
if [ -n "$wan" ]; then mergecap -w server-side.pcap $wan; fi
for f in *.pcap; do [ -e "$f" ] || continue; inject "$f" "${f%.pcap}.pcapng"; rm -f "$f"; done
"""


def prepare_captures(run_dir: Path, tools: ImageTools | None = None) -> list[Path]:
    """Turn a run's raw ``captures/*.pcap`` into pcapng with keys injected, plus ``server-side.pcapng``.

    Returns the pcapng files. A run without raw captures is left as it is.
    """
    captures = Path(run_dir) / "captures"
    if not any(captures.glob("*.pcap")):
        return sorted(captures.glob("*.pcapng"))
    (tools or ImageTools()).run(Path(run_dir), _PREPARE)
    return sorted(captures.glob("*.pcapng"))


def inject_keylog(pcap: Path, keylog: Path, out: Path, tools: ImageTools | None = None) -> Path:
    """Write ``out`` (pcapng) = ``pcap`` plus the NSS key log as a Decryption Secrets Block.

    ``editcap --inject-secrets tls,<keylog> <pcap> <out>`` in the lab image: the result decrypts on
    its own in Wireshark. ``pcap`` must not already contain secrets (editcap 4.0.17 cannot rewrite such files).
    """
    workdir = common_dir([pcap, keylog, out])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    (tools or ImageTools()).run(workdir, f"editcap --inject-secrets tls,{inside(keylog, workdir)} -F pcapng "
                                         f"{inside(pcap, workdir)} {inside(out, workdir)}")
    return Path(out)


def delete_frames(pcap: Path, frames: Iterable[int], out: Path, tools: ImageTools | None = None) -> Path:
    """``editcap -F pcap <pcap> <out> <frame>...`` in the lab image: the listed frames deleted."""
    workdir = common_dir([pcap, out])
    listed = " ".join(str(int(f)) for f in frames)
    (tools or ImageTools()).run(workdir, f"editcap -F pcap {inside(pcap, workdir)} {inside(out, workdir)} {listed}")
    return Path(out)


def drop_frames(pcap: Path, display_filter: str, out: Path, tools: ImageTools | None = None) -> Path:
    """Write ``out`` = ``pcap`` without the packets matching ``display_filter`` (keeps the key log block).

    For mutation tests: the lab's judge must notice what is taken away.
    """
    workdir = common_dir([pcap, out])
    keep = shlex.quote(f"!({display_filter})")
    (tools or ImageTools()).run(workdir, f"tshark -n -r {inside(pcap, workdir)} -Y {keep} -w {inside(out, workdir)}")
    return Path(out)


# --- JSON parsing (duplicate keys kept) ------------------------------------------------------------

Pairs = list[tuple[str, object]]


def _pairs_hook(pairs: Pairs) -> Pairs:
    return pairs


def _get(node: object, key: str, default: object = None) -> object:
    if isinstance(node, list):
        for k, v in node:
            if k == key:
                return v
    return default


def _all(node: object, key: str) -> list[object]:
    return [v for k, v in node if k == key] if isinstance(node, list) else []


def _find(node: object, key: str) -> object:
    """The first value of ``key`` anywhere below ``node`` (transport parameters sit deep in a CRYPTO frame)."""
    if not isinstance(node, list):
        return None
    for k, v in node:
        found = v if k == key else _find(v, key)
        if found is not None:
            return found
    return None


def _hex(value: object) -> str:
    return str(value or "").replace(":", "").lower()


def _int(value: object, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    return int(str(value), 0)


def parse_tshark_json(text: str) -> list[QuicPacket]:
    """Parse ``tshark -T json -J "frame ip ipv6 udp quic"`` output (see module docstring)."""
    if not text.strip():
        return []
    docs = json.loads(text, object_pairs_hook=_pairs_hook)
    packets: list[QuicPacket] = []
    for doc in docs:
        layers = _get(_get(doc, "_source"), "layers")
        frame = _get(layers, "frame")
        ip = _get(layers, "ip") or _get(layers, "ipv6")
        udp = _get(layers, "udp")
        if frame is None or ip is None or udp is None:
            continue
        v6 = _get(layers, "ip") is None
        src_ip = str(_get(ip, "ipv6.src" if v6 else "ip.src"))
        dst_ip = str(_get(ip, "ipv6.dst" if v6 else "ip.dst"))
        common = dict(
            frame=int(_get(frame, "frame.number")),
            time=float(_get(frame, "frame.time_epoch")),
            src_ip=src_ip, src_port=int(_get(udp, "udp.srcport")),
            dst_ip=dst_ip, dst_port=int(_get(udp, "udp.dstport")),
            udp_payload_length=int(_get(udp, "udp.length")) - 8,
        )
        index = 0
        for quic in _all(layers, "quic"):
            # A datagram's trailing padding is shown as an extra "quic" node without a header: skip it.
            if _get(quic, "quic.short") is None and _get(quic, "quic.header_form") is None:
                continue
            packets.append(_packet(quic, index, common))
            index += 1
    return packets


def _packet(quic: Pairs, index: int, common: dict) -> QuicPacket:
    header = _get(quic, "quic.short")
    long_header = header is None
    if long_header:
        header = quic
    version = _int(_get(header, "quic.version")) if long_header else None
    if not long_header:
        ptype = "1rtt"
    elif version == 0:
        ptype = "vn"
    else:
        ptype = _LONG_TYPES_V1.get(_int(_get(header, "quic.long.packet_type"), -1), "unknown")
    frames = _all(quic, "quic.frame")
    frame_types: list[int] = []
    challenges: list[str] = []
    responses: list[str] = []
    ncid: list[int] = []
    ncid_ids: list[str] = []
    rcid: list[int] = []
    for fr in frames:
        ftype = _int(_get(fr, "quic.frame_type"))
        if ftype is None:
            continue
        frame_types.append(ftype)
        if ftype == PATH_CHALLENGE:
            challenges.append(_hex(_get(fr, "quic.path_challenge.data")))
        elif ftype == PATH_RESPONSE:
            responses.append(_hex(_get(fr, "quic.path_response.data")))
        elif ftype == NEW_CONNECTION_ID:
            ncid.append(_int(_get(fr, "quic.nci.sequence"), -1))
            ncid_ids.append(_hex(_get(fr, "quic.nci.connection_id")))
        elif ftype == 0x19:
            rcid.append(_int(_get(fr, "quic.rci.sequence"), -1))
    decrypted = ptype in ("retry", "vn") or bool(frame_types)
    return QuicPacket(
        index_in_datagram=index,
        long_header=long_header,
        packet_type=ptype,
        version=version,
        dcid=_hex(_get(header, "quic.dcid")),
        scid=_hex(_get(header, "quic.scid")) if long_header else "",
        packet_number=_int(_get(header, "quic.packet_number")),
        decrypted=decrypted,
        frame_types=tuple(frame_types),
        path_challenge=tuple(challenges),
        path_response=tuple(responses),
        new_connection_id_seqs=tuple(ncid),
        retire_connection_id_seqs=tuple(rcid),
        packet_length=_int(_get(quic, "quic.packet_length"), 0),
        new_connection_ids=tuple(ncid_ids),
        preferred_address_cid=_hex(_find(quic, "tls.quic.parameter.preferred_address.connectionid")) if long_header
        else "",
        **common,
    )


# --- decoded packets as JSON (recorded traces for tests that must not need Docker) ------------------------------

def packets_to_json(packets: Iterable[QuicPacket]) -> str:
    """One JSON object per line per packet (the dataclass's fields), for :func:`packets_from_json`."""
    return "".join(json.dumps(asdict(p), separators=(",", ":")) + "\n" for p in packets)


def packets_from_json(text: str) -> list[QuicPacket]:
    """Read :func:`packets_to_json` output back; fields a record lacks take their defaults."""
    names = {f.name for f in fields(QuicPacket)}
    out = []
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            out.append(QuicPacket(**{k: tuple(v) if isinstance(v, list) else v for k, v in record.items()
                                     if k in names}))
    return out
