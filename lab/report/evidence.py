"""What each check of a report rests on, as links a reader can follow (pure).

The judge's report (``report.json``) says per check how many observations it rests on and, in its
``observed`` text, the capture frames it names ("frame 248"). This module turns a check into the
places to look: capture frames of ``captures/server-side.pcapng`` and lines of ``events.jsonl``.

- Frames named in ``observed`` are taken as written.
- Frames the check reads are found again in the decoded capture by what the check looks at (its
  server Initials, the packets with PATH_CHALLENGE or PATH_RESPONSE, the first packet on each
  4-tuple, ...), by :data:`FRAME_RULES`.
- Event lines are the events of the kinds the check reads (:data:`EVENT_RULES`), of its transport.

The rules mirror what ``lab/verify`` reads; they locate evidence, they never decide a verdict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.observe.timeline import NETWORK_ACTIONS

__all__ = ["EVENT_RULES", "FRAME_RULES", "EventLine", "Evidence", "check_evidence", "event_lines"]

MAX_LINKS = 12  # per check and kind; the rest are counted


@dataclass(frozen=True)
class EventLine:
    """One line of events.jsonl: its number (1-based, as the judge quotes it) and its object."""

    number: int
    data: Mapping[str, Any]
    raw: str

    @property
    def type(self) -> str:
        return str(self.data.get("type", "")) if self.data else "unparsable"

    @property
    def ts(self) -> float | None:
        ts = self.data.get("ts") if self.data else None
        return float(ts) if isinstance(ts, int | float) else None


def event_lines(text: str) -> list[EventLine]:
    """Every non-blank line of events.jsonl; a line that is not a JSON object is kept with empty data."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            data = None
        out.append(EventLine(number, data if isinstance(data, dict) else {}, line))
    return out


@dataclass(frozen=True)
class Evidence:
    frames: tuple[int, ...] = ()  # server-side.pcapng frame numbers
    frames_more: int = 0  # found but not linked (past MAX_LINKS)
    events: tuple[int, ...] = ()  # events.jsonl line numbers
    events_more: int = 0
    files: tuple[str, ...] = ()  # artifacts, relative to the run directory
    how: tuple[str, ...] = field(default=(), compare=False)  # what the links are, one phrase per kind


# --- event rules: the kinds of event each check reads --------------------------------------------------------

_PEERS = ("handshake_completed", "path_discovered", "active_path_changed")
EVENT_RULES: dict[str, tuple[tuple[str, ...], str | None]] = {  # check -> (event types, role or None)
    "connection_survived": (("handshake_completed", "connection_closed", "reconnect_started"), None),
    "single_handshake": (("handshake_completed",), None),
    "transfer_complete": (("transfer_complete",), "client"),
    "paths_validated": (("path_validated",), "server"),
    "server_saw_addresses": (_PEERS, "server"),
    "server_saw_ips": (_PEERS, "server"),
    "cid_changed": (("peer_cid_changed", "host_cid_retired"), None),
    "cid_unchanged": (("peer_cid_changed", "host_cid_retired", "handshake_completed"), None),
    "max_disruption_ms": (("data_gap", "action"), None),
    "validation_ms": (("path_validated",), None),
    "amplification_respected": (("amplification_limited",), "server"),
    "migrated_to_preferred": (("active_path_changed", "migration_completed"), "client"),
    "tcp_reconnected": (("reconnect_started", "reconnected"), "client"),
    "reconnects": (("reconnect_started", "reconnected"), "client"),
    "run_completed": (("error", "action"), None),
    "events_recorded": (("action",), "controller"),
    "cross_check_challenges": (("path_challenge_sent",), "server"),
    "cross_check_qlog": (("path_challenge_sent",), "server"),
    "cross_check_paths": (_PEERS, "server"),
}


def _event_matches(line: EventLine, check: str, types: tuple[str, ...], role: str | None,
                   transport: str | None) -> bool:
    data = line.data
    if line.type not in types or (role and data.get("role") != role):
        return False
    if line.type == "action":  # only the actions the check reads
        action = data.get("action")
        if check in ("run_completed", "events_recorded"):
            return action == "run_end"
        return action in NETWORK_ACTIONS
    endpoint = data.get("role") in ("client", "server")
    return not (endpoint and transport and data.get("transport") != transport)


# --- frame rules: what each capture check looks at ------------------------------------------------------------

FrameRule = Callable[[Sequence[Any], set[str]], list[int]]


def _from_server(packet: Any, servers: set[str]) -> bool:
    return packet.src_ip in servers and packet.dst_ip not in servers


def _to_server(packet: Any, servers: set[str]) -> bool:
    return packet.dst_ip in servers and packet.src_ip not in servers


def _first_per_tuple(packets: Sequence[Any], servers: set[str]) -> list[int]:
    seen: set[tuple[str, int, str, int]] = set()
    frames = []
    for p in packets:
        if not (_to_server(p, servers) or _from_server(p, servers)):
            continue
        key = (p.src_ip, p.src_port, p.dst_ip, p.dst_port)
        if key not in seen:
            seen.add(key)
            frames.append(p.frame)
    return frames


def _challenge_frames(packets: Sequence[Any], servers: set[str]) -> list[int]:
    return [p.frame for p in packets if p.path_challenge and _from_server(p, servers)]


def _response_frames(packets: Sequence[Any], servers: set[str]) -> list[int]:
    return [p.frame for p in packets if p.path_response and _to_server(p, servers)]


FRAME_RULES: dict[str, FrameRule] = {
    "capture_verified": lambda packets, servers: [packets[0].frame, packets[-1].frame] if packets else [],
    "capture_handshakes": lambda packets, servers: [p.frame for p in packets if p.packet_type == "initial"],
    "capture_versions": lambda packets, servers: [p.frame for p in packets if p.long_header],
    "capture_undecrypted": lambda packets, servers: [p.frame for p in packets if not p.decrypted],
    "capture_paths": _first_per_tuple,
    "capture_path_challenge_on_new_path": lambda packets, servers: _challenge_frames(packets, servers),
    "capture_challenges_answered": lambda packets, servers: sorted(set(_challenge_frames(packets, servers))
                                                                   | set(_response_frames(packets, servers))),
    "capture_response_on_challenged_path": _response_frames,
    "capture_new_dcid_on_new_path": _first_per_tuple,
    "capture_unlinkable_across_addresses": _first_per_tuple,
    "capture_cid_linkability": _first_per_tuple,
    "cross_check_challenges": _challenge_frames,
    "cross_check_paths": _first_per_tuple,
    "cid_linkability": _first_per_tuple,
}
_FRAME = re.compile(r"\bframes? (\d+)\b")
_LINE = re.compile(r"events\.jsonl:(\d+)\b")


def _rule_name(name: str) -> str:
    return name.split("[", 1)[0]  # path_challenge_on_new_path[pr426] -> path_challenge_on_new_path


def _cap(values: Iterable[int]) -> tuple[tuple[int, ...], int]:
    unique = list(dict.fromkeys(values))
    return tuple(unique[:MAX_LINKS]), max(len(unique) - MAX_LINKS, 0)


def check_evidence(check: Mapping[str, Any], packets: Sequence[Any] | None, events: Sequence[EventLine],
                   servers: Iterable[str], qlog_files: Mapping[str, Sequence[str]] | None = None) -> Evidence:
    """The links for one check of ``report.json``.

    ``packets``: the decoded server-side capture (None when it was not decoded); ``servers``: the
    server's IPs; ``qlog_files``: side (client, server) -> qlog files relative to the run directory.
    """
    name = str(check.get("name", ""))
    observed = str(check.get("observed", ""))
    source = check.get("source", "events")
    transport = check.get("transport")
    server_ips = set(servers)
    how: list[str] = []
    frames: list[int] = []
    named = [int(n) for n in _FRAME.findall(observed)] if source == "captures" else []
    if named:
        frames += named
        how.append("frames named in the observation")
    rule = FRAME_RULES.get(_rule_name(name))
    if rule is not None and packets:
        found = [f for f in rule(packets, server_ips) if f not in frames]
        if found:
            frames += found
            how.append("frames of the kind the check reads")
    lines = [int(n) for n in _LINE.findall(observed)]
    if lines:
        how.append("lines named in the observation")
    types, role = EVENT_RULES.get(_rule_name(name), ((), None))
    if types:
        found_lines = [e.number for e in events if _event_matches(e, name, types, role, transport)]
        if found_lines:
            how.append(f"{', '.join(types)} events" + (f" of the {role}" if role else ""))
        lines += [n for n in found_lines if n not in lines]
    files: list[str] = []
    if name.startswith("qlog_") and qlog_files is not None:
        files += list(qlog_files.get(name.removeprefix("qlog_"), ()))
    elif name == "cross_check_qlog" and qlog_files is not None:
        files += list(qlog_files.get("server", ()))
    linked_frames, frames_more = _cap(frames)
    linked_lines, lines_more = _cap(lines)
    return Evidence(linked_frames, frames_more, linked_lines, lines_more, tuple(files), tuple(how))
