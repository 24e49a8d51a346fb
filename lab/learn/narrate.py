"""The narration of a run, built only from what was observed.

Every narrated line ends with the evidence it rests on, ``[event_type]`` for an event or
``[capture frame N]`` for a packet, and every value it prints (addresses, challenge data, times, CIDs)
is a field of that event or packet. The only text not derived from observations is the scenario's own
teaching text (its description and each step's description, from the YAML file), printed as such.

:class:`Narrator` is pure (events and notes in, lines out); :class:`NarratingView` adapts it to the
runner's view interface (``start``, ``event``, ``note``, ``stop``, as ``PlainView``); :func:`replay`
narrates a recorded run directory; :func:`packet_view` reads the run's server-side capture.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab import events as ev
from lab.observe.describe import describe, worth_showing
from lab.observe.live import PlainView
from lab.observe.timeline import NETWORK_ACTIONS, read_jsonl

Write = Callable[[str], None]
Pause = Callable[[str], None]
INITIAL_ACTIONS = frozenset({"reset", "capture"})


def _no_pause(_prompt: str) -> None:
    pass


def terminal_pause(prompt: str) -> None:
    """Wait for Enter when both ends are a terminal; otherwise go on."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        try:
            input(f"   [Enter] {prompt} ")
        except EOFError:
            pass


@dataclass
class StepInfo:
    """What the narration knows of a step before it runs: its action text and the YAML's teaching text."""

    label: str
    description: str | None = None


@dataclass
class _Segment:
    events: list[ev.Event] = field(default_factory=list)


class Narrator:
    """Observed events in, teaching lines out (pure apart from ``write`` and ``pause``)."""

    def __init__(self, write: Write, pause: Pause = _no_pause, pause_between_steps: bool = True) -> None:
        self.write = write
        self.pause = pause
        self.pause_between_steps = pause_between_steps
        self.t0: float | None = None
        self.segment = _Segment()
        self.step_label = "before the first step"
        self.steps_started = 0
        self.challenges: dict[str, ev.PathChallengeSent] = {}  # data -> the challenge
        self.validated: set[str] = set()  # peers validated so far (by role:peer)
        self.client_path: dict[str, tuple[str | None, str | None]] = {}  # transport -> (local, peer)

    # --- structure -------------------------------------------------------------------------

    def intro(self, title: str, description: str) -> None:
        self.write(f"== {title}")
        for line in description.strip().splitlines():
            self.write(f"   | {line}")  # the scenario's own teaching text (YAML)

    def step(self, info: StepInfo) -> None:
        self.close_step()
        if self.steps_started and self.pause_between_steps:
            self.pause("next step")
        self.steps_started += 1
        self.step_label = info.label
        self.write("")
        self.write(f"-- {info.label}")
        if info.description:
            self.write(f"   | {info.description.strip()}")

    def close_step(self) -> None:
        """After a step: what each container saw during it, from its events only."""
        seen = self.segment.events
        self.segment = _Segment()
        if not seen:
            return
        lines = self._summary(seen)
        if lines:
            self.write(f"   what each side saw ({self.step_label}):")
            for line in lines:
                self.write(f"     {line}")

    # --- events ----------------------------------------------------------------------------

    def _rel(self, ts: float) -> float:
        if self.t0 is None:
            self.t0 = ts
        return ts - self.t0

    def event(self, event: ev.Event, source: str | None = None) -> None:
        self.segment.events.append(event)
        text = self.sentence(event)
        if text is None:
            return
        who = source or event.role
        if isinstance(event, ev.NatMapping):
            who = event.router or who
        tag = f" ({event.transport})" if event.transport == "tcp" else ""
        self.write(f"{self._rel(event.ts):8.3f}s {who:<13}{tag} {text}  [{event.TYPE}]")

    def sentence(self, event: ev.Event) -> str | None:
        """One sentence from the event's fields, with what it means; None when not narrated."""
        if not worth_showing(event):
            return None
        base = describe(event)
        match event:
            case ev.Progress():
                if event.local is None or event.peer is None:
                    return None
                key = f"{event.role}:{event.transport}"
                now = (event.local, event.peer)
                before = self.client_path.get(key)
                self.client_path[key] = now
                if before is None or before == now or event.role != "client":
                    return None
                return f"data now arrives from {event.peer} on local {event.local}"
            case ev.EchoRtt():
                return None
            case ev.NatMapping():
                if event.inside == event.outside:
                    return None  # a conntrack entry without translation (the server's side of a flow)
                if event.change == "new":
                    return f"{base}: the server sees this client as {event.outside}"
                return base
            case ev.Action():
                return base
            case ev.PathDiscovered() if event.role == "server":
                return f"{base}: a known connection ID arrived from an address not seen before"
            case ev.PathDiscovered():
                return f"{base}: a server address the client can probe"
            case ev.ActivePathChanged():
                if event.old_peer == event.new_peer:
                    return f"the client moved to this server address: replies now leave from {event.local}"
                return f"{base}: sends to {event.new_peer} from now on"
            case ev.PathChallengeSent():
                self.challenges[event.data] = event
                return f"{base}: 8 bytes only a peer reachable at {event.peer} can echo"
            case ev.PathResponseReceived():
                sent = self.challenges.get(event.data)
                if sent is not None and sent.role == event.role:
                    waited = (event.ts - sent.ts) * 1000
                    return f"{base}: matches the challenge sent {waited:.1f} ms earlier"
                return f"{base}: matches no challenge narrated here"
            case ev.PathValidated():
                self.validated.add(f"{event.role}:{event.peer}")
                return base
            case ev.AmplificationLimited():
                return f"{base} (limit 3 x {event.bytes_received} = {3 * event.bytes_received} B)"
            case ev.DataGap():
                return f"{base} (received {event.bytes} B before it)"
            case ev.Segment():
                verdict = "sha256 ok" if event.sha256_ok else "sha256 MISMATCH"
                return (f"segment {event.index + 1} of {event.count} ({event.bytes} B) arrived in "
                        f"{event.download_ms:.0f} ms, {verdict}; the player has {event.buffer_s:.1f} s of video "
                        f"buffered")
            case ev.CallFreeze():
                noticed = "a caller notices" if event.freeze_ms > 150 else "under the 150 ms a caller notices"
                still = ", and still silent when the call ended" if event.ongoing else ""
                return (f"no call message {event.direction}stream for {event.freeze_ms:.0f} ms{still} "
                        f"({noticed})")
            case ev.CallStats():
                return (f"call over: {event.received} of {event.sent} messages back, longest silence "
                        f"{max(event.max_freeze_ms.values(), default=0):.0f} ms")
        return base

    # --- summaries ----------------------------------------------------------------------------

    def _summary(self, seen: list[ev.Event]) -> list[str]:
        lines: list[str] = []
        actions = [e for e in seen if isinstance(e, ev.Action) and e.action not in INITIAL_ACTIONS]
        for action in actions:
            lines.append(f"controller: {describe(action)}  [action]")
        mappings = [e for e in seen if isinstance(e, ev.NatMapping) and e.change == "new" and e.inside != e.outside]
        for m in mappings:
            lines.append(f"{m.router}: {m.inside} is now {m.outside} on the internet side  [nat_mapping]")
        server = [e for e in seen if e.role == "server"]
        for e in server:
            if isinstance(e, ev.ActivePathChanged) and e.old_peer != e.new_peer:
                kind = "new IP" if e.address_changed else "same IP, new port"
                lines.append(f"server: peer {e.old_peer} -> {e.new_peer} ({kind})  [active_path_changed]")
            elif isinstance(e, ev.PathValidated):
                took = f" in {e.validation_ms:.1f} ms" if e.validation_ms is not None else ""
                lines.append(f"server: validated {e.peer}{took}  [path_validated]")
            elif isinstance(e, ev.PeerCidChanged):
                lines.append(f"server: sends to CID {e.new_cid} (was {e.old_cid})  [peer_cid_changed]")
            elif isinstance(e, ev.CongestionReset):
                lines.append(f"server: cwnd {e.cwnd_before} -> {e.cwnd_after} B  [congestion_reset]")
        client = [e for e in seen if e.role == "client"]
        gaps = [e for e in client if isinstance(e, ev.DataGap)]
        if gaps:
            worst = max(gaps, key=lambda g: g.gap_ms)
            lines.append(f"client{' (' + worst.transport + ')' if worst.transport == 'tcp' else ''}: "
                         f"longest data pause {worst.gap_ms:.0f} ms  [data_gap]")
        for e in client:
            if isinstance(e, ev.PeerCidChanged):
                lines.append(f"client: sends to CID {e.new_cid} (was {e.old_cid})  [peer_cid_changed]")
            elif isinstance(e, ev.MigrationCompleted):
                lines.append(f"client: {describe(e)}  [migration_completed]")
            elif isinstance(e, ev.Reconnected):
                lines.append(f"client (tcp): {describe(e)}  [reconnected]")
        segments = [e for e in client if isinstance(e, ev.Segment)]
        for transport in sorted({e.transport for e in segments}):
            mine = [e for e in segments if e.transport == transport]
            slowest = max(mine, key=lambda e: e.download_ms)
            lines.append(f"client ({transport}): {len(mine)} segment(s), the slowest {slowest.download_ms:.0f} ms; "
                         f"buffer at least {min(e.buffer_s for e in mine):.1f} s after each  [segment]")
        freezes = [e for e in client if isinstance(e, ev.CallFreeze)]
        for transport in sorted({e.transport for e in freezes}):
            worst = max((e for e in freezes if e.transport == transport), key=lambda e: e.freeze_ms)
            lines.append(f"client ({transport}): longest call freeze {worst.freeze_ms:.0f} ms "
                         f"{worst.direction}stream  [call_freeze]")
        return lines


class NarratingView(PlainView):
    """The runner's view interface (as PlainView), narrating each step as it is observed.

    The k-th ``note`` from the runner is the k-th step of ``plan``; the plan supplies the YAML's teaching
    text. Live, the pause comes once, before the run: a paused step would let the paced download run on
    without it, so steps are never held back.
    """

    def __init__(self, plan: list[Any] | None = None, write: Write | None = None, pause: Pause = _no_pause) -> None:
        super().__init__()
        self.plan = list(plan or [])
        self.pause = pause
        out = write or (lambda text: print(text, flush=True))
        self.narrator = Narrator(out, pause=_no_pause, pause_between_steps=False)
        self.notes = 0

    def start(self, title: str, description: str) -> None:
        self.narrator.intro(title, description)
        self.pause("start the run (the network will not wait for you once it starts)")

    def event(self, event: ev.Event, source: str) -> None:
        self.narrator.event(event, source)

    def note(self, text: str) -> None:
        step = self.plan[self.notes] if self.notes < len(self.plan) else None
        self.notes += 1
        description = getattr(step, "description", None)
        origin = getattr(step, "origin", None)
        if origin and not origin.endswith(" 1/" + origin.rsplit("/", 1)[-1]):
            description = None  # a flap's teaching text is shown once, at its first switch
        label = text.split(" ", 2)[:2]
        self.narrator.step(StepInfo(" ".join(label) + " " + _action_words(step, text), description))

    def stop(self) -> None:
        self.narrator.close_step()


def _action_words(step: Any, fallback: str) -> str:
    if step is None:
        return fallback
    target = step.network or step.router or ""
    return f"{step.action} {target}".strip()


# --- replay of a recorded run ------------------------------------------------------------------


def _raw_scenario(run_dir: Path, scenarios: Path) -> tuple[str, dict[str, Any]]:
    """The scenario's name and its raw YAML (for teaching text only; no topology needed)."""
    import json

    candidates = []
    report = run_dir / "report.json"
    if report.exists():
        candidates.append(str(json.loads(report.read_text()).get("scenario") or ""))
    candidates += [run_dir.name, run_dir.parent.name]
    for name in candidates:
        path = scenarios / f"{name}.yaml"
        if name and path.exists():
            return name, yaml.safe_load(path.read_text()) or {}
    return run_dir.name, {}


def step_infos(actions: list[ev.Action], raw: dict[str, Any]) -> dict[int, StepInfo]:
    """Map each step's action event (by index in ``actions``) to its label and YAML teaching text."""
    steps = raw.get("steps") or []
    initial_impairs = len((raw.get("initial") or {}).get("impair") or {})
    infos: dict[int, StepInfo] = {}
    plain_steps = [i for i, s in enumerate(steps) if isinstance(s, dict) and s.get("action") != "flap"]
    next_plain = 0
    number = 0
    for index, action in enumerate(actions):
        if action.action in INITIAL_ACTIONS:
            continue
        if action.action == "impair" and initial_impairs:
            initial_impairs -= 1
            continue
        number += 1
        origin = str(action.detail.get("step") or "")
        description = None
        if origin.startswith("steps["):
            k = int(origin[len("steps["):origin.index("]")])
            if " 1/" in origin and k < len(steps):
                description = steps[k].get("description")
        elif next_plain < len(plain_steps):
            description = steps[plain_steps[next_plain]].get("description")
            next_plain += 1
        infos[index] = StepInfo(f"step {number}: {action.action} {action.target}".strip(), description)
    return infos


def replay(run_dir: Path, write: Write, pause: Pause = _no_pause, scenarios: Path | None = None) -> list[ev.Event]:
    """Narrate a recorded run (events.jsonl) as it was observed; returns its events."""
    from lab.topology.load import ROOT

    timeline = read_jsonl(run_dir / "events.jsonl", strict=False)
    events = list(timeline)
    name, raw = _raw_scenario(run_dir, scenarios or ROOT / "scenarios")
    narrator = Narrator(write, pause=pause)
    narrator.intro(f"{name} (recorded run {run_dir.resolve().name})", str(raw.get("description") or ""))
    actions = [e for e in events if isinstance(e, ev.Action)]
    infos = step_infos(actions, raw)
    by_id = {id(a): infos.get(i) for i, a in enumerate(actions)}
    for event in events:
        info = by_id.get(id(event)) if isinstance(event, ev.Action) else None
        if info is not None:
            narrator.step(info)
        narrator.event(event)
    narrator.close_step()
    return events


# --- the packet view ---------------------------------------------------------------------------


def _addr(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def server_addresses(events: Iterable[ev.Event]) -> set[str]:
    """The server's addresses as the client saw them (handshake peer, preferred address)."""
    out: set[str] = set()
    for e in events:
        if e.role != "client" or e.transport != "quic":
            continue
        if isinstance(e, ev.HandshakeCompleted):
            out.add(e.peer)
        elif isinstance(e, ev.ActivePathChanged):
            out.add(e.new_peer)
    return out


def packet_view(run_dir: Path, events: list[ev.Event], write: Write, per_path: int = 4) -> bool:
    """The first packets on each 4-tuple of the server-side capture, matched against the events.

    Returns False when there is no capture or tshark cannot read it (the reason is written).
    """
    from lab.verify.pcap import TsharkError, read_quic_packets

    capture = run_dir / "captures" / "server-side.pcapng"
    write("")
    write("== packet view (server-side capture, keys injected)")
    if not capture.exists():
        write(f"   no {capture.name} in {run_dir}: packet view skipped")
        return False
    servers = server_addresses(events)
    if not servers:
        write("   no QUIC handshake in the events: packet view skipped")
        return False
    ports = {int(a.rsplit(":", 1)[1]) for a in servers}
    try:
        packets = read_quic_packets(capture, None, ports)
    except (TsharkError, FileNotFoundError) as exc:
        write(f"   packet view skipped: {str(exc).splitlines()[0]}")
        return False
    write(f"   $ tshark -n -r {capture} " + " ".join(f"-d udp.port=={p},quic" for p in sorted(ports)))
    t0 = min((e.ts for e in events), default=packets[0].time if packets else 0.0)
    order: list[tuple[str, str]] = []
    shown: dict[tuple[str, str], int] = {}
    previous_dcid: dict[str, str] = {}  # direction -> DCID on the previous path
    quic = [e for e in events if e.transport == "quic"]
    for p in packets:
        src, dst = _addr(p.src_ip, p.src_port), _addr(p.dst_ip, p.dst_port)
        if dst in servers:
            path, direction = (src, dst), "client->server"
        elif src in servers:
            path, direction = (dst, src), "server->client"
        else:
            continue
        if path not in shown:
            order.append(path)
            shown[path] = 0
            write("")
            write(f"   4-tuple {len(order)}: client {path[0]} <-> server {path[1]}, first packet "
                  f"at {p.time - t0:.3f}s  [capture frame {p.frame}]")
            write(f"     events: {_events_for_path(path, quic)}")
        if shown[path] < per_path and p.index_in_datagram == 0:
            shown[path] += 1
            frames = ", ".join(dict.fromkeys(p.frame_names)) or "(not decrypted)"
            note = ""
            if p.packet_type == "1rtt":
                last = previous_dcid.get(direction)
                if last is not None and shown[path] == 1 and len(order) > 1:
                    note = "  same DCID as on the previous 4-tuple (linkable)" if last == p.dcid \
                        else f"  new DCID (was {last})"
            write(f"     {p.time - t0:8.3f}s {direction} {p.packet_type:<9} DCID {p.dcid or '-':<16} "
                  f"{frames}{note}  [capture frame {p.frame}]")
        if p.packet_type == "1rtt":
            previous_dcid[direction] = p.dcid
        for data in p.path_challenge:
            match = next((e for e in quic if isinstance(e, ev.PathChallengeSent) and e.data == data), None)
            seen = f"= {match.role} event path_challenge_sent at {match.ts - t0:.3f}s" if match \
                else "no path_challenge_sent event has this data"
            write(f"     PATH_CHALLENGE {data} {direction} on {path[0]}: {seen}  [capture frame {p.frame}]")
        for data in p.path_response:
            match = next((e for e in quic if isinstance(e, ev.PathResponseReceived) and e.data == data), None)
            seen = f"= {match.role} event path_response_received at {match.ts - t0:.3f}s" if match \
                else "no path_response_received event has this data"
            write(f"     PATH_RESPONSE  {data} {direction} on {path[0]}: {seen}  [capture frame {p.frame}]")
    if not order:
        write("   the capture holds no QUIC packet to or from the server")
    return True


def _events_for_path(path: tuple[str, str], events: list[ev.Event]) -> str:
    client, server = path
    for e in events:
        if e.role == "server" and isinstance(e, ev.HandshakeCompleted) and e.peer == client:
            return f"the server's handshake_completed names {client}"
        if e.role == "server" and isinstance(e, ev.PathDiscovered) and e.peer == client:
            return f"the server's path_discovered names {client}"
        if e.role == "client" and isinstance(e, (ev.PathDiscovered, ev.PathChallengeSent)) and e.peer == server:
            return f"the client's {e.TYPE} names {server}"
    return f"no server event names {client}"


def network_actions(events: Iterable[ev.Event]) -> list[ev.Action]:
    return [e for e in events if isinstance(e, ev.Action) and e.action in NETWORK_ACTIONS]
