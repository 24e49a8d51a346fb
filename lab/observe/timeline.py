"""One ordered timeline of the events every container wrote during a run.

Pure: no Docker, no sockets, no clocks. The controller hands in event streams (one per container,
each already in that container's order) and gets back one list ordered by wall-clock ``ts``; the
checks and metrics are then plain functions of that list. Keeping this pure is what lets us test
the verdicts on recorded JSONL files instead of live containers.

Also here: :class:`LineAssembler`, which turns the arbitrary byte chunks a log follower yields
(docker-py gives chunks, not lines; with a TTY, often one byte per chunk) into complete lines.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lab.events import Action, DataGap, EchoRtt, Event, Progress, SchemaError, TransferComplete, from_dict

# Controller actions that change what the network looks like to the client. The disruption of a
# run is measured from the first of these; ``impair`` and ``wait`` are deliberately absent (they
# change quality, not addresses or reachability).
NETWORK_ACTIONS: frozenset[str] = frozenset(
    {"connect", "disconnect", "route", "migrate", "rebind", "renumber", "temporary_address", "blackhole", "flap",
     "attack", "farm_rebind"}
)

# Roles whose events belong to every transport of a run (they are not endpoints).
SHARED_ROLES: frozenset[str] = frozenset({"controller", "router", "attacker"})


def _type_name(kind: str | type[Event]) -> str:
    return kind if isinstance(kind, str) else kind.TYPE


def merge(*streams: Iterable[Event]) -> list[Event]:
    """Merge per-source streams into one list ordered by ``ts``.

    The sort is stable over the concatenation, so events with equal ``ts`` keep the order of the
    streams as given, and within one stream their original order (a process may emit two events in
    the same clock tick; their causal order is the order it wrote them).
    """
    combined: list[Event] = []
    for stream in streams:
        combined.extend(stream)
    return sorted(combined, key=lambda event: event.ts)


@dataclass(frozen=True)
class Gap:
    """A stretch without application data at the client.

    ``ongoing`` means data never resumed before the timeline ends: the gap is then a lower bound.
    """

    start_ts: float
    end_ts: float
    gap_ms: float
    source: str  # data_gap | echo | stall
    ongoing: bool = False


@dataclass(frozen=True)
class Timeline:
    """An immutable, ts-ordered sequence of events with the queries checks and metrics need.

    Build one with :func:`merge` (or :meth:`from_streams`); the constructor trusts the order it is
    given so that recorded files are replayed exactly as they were written.
    """

    events: tuple[Event, ...] = field(default_factory=tuple)

    @classmethod
    def from_streams(cls, *streams: Iterable[Event]) -> Timeline:
        return cls(tuple(merge(*streams)))

    # --- basic queries ----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def start(self) -> float | None:
        """Wall-clock ts of the first event (the zero of relative times), None if empty."""
        return self.events[0].ts if self.events else None

    @property
    def end(self) -> float | None:
        return self.events[-1].ts if self.events else None

    def of(self, kind: str | type[Event], role: str | None = None) -> list[Event]:
        """All events of one type (a type name or an event class), optionally of one role."""
        name = _type_name(kind)
        return [e for e in self.events if e.TYPE == name and (role is None or e.role == role)]

    def first(self, kind: str | type[Event], role: str | None = None, since: float | None = None) -> Event | None:
        name = _type_name(kind)
        for event in self.events:
            if event.TYPE == name and (role is None or event.role == role) and (since is None or event.ts >= since):
                return event
        return None

    def last(self, kind: str | type[Event], role: str | None = None) -> Event | None:
        name = _type_name(kind)
        for event in reversed(self.events):
            if event.TYPE == name and (role is None or event.role == role):
                return event
        return None

    def count(self, kind: str | type[Event], role: str | None = None) -> int:
        return len(self.of(kind, role))

    def by_role(self, role: str) -> Timeline:
        return Timeline(tuple(e for e in self.events if e.role == role))

    def since(self, ts: float) -> Timeline:
        """Events at or after ``ts``."""
        return Timeline(tuple(e for e in self.events if e.ts >= ts))

    def until(self, ts: float) -> Timeline:
        """Events at or before ``ts``."""
        return Timeline(tuple(e for e in self.events if e.ts <= ts))

    def for_transport(self, transport: str) -> Timeline:
        """The endpoints' events of one transport, plus the controller and router events of its run.

        Controller and router events describe the network, which both transports share. When one
        timeline holds runs of several transports one after the other (tcp-vs-quic), a shared event
        keeps only the shared events of this transport's run: those after the previous run's last
        endpoint event, and, when another run follows, up to this run's last endpoint event. Between
        two runs, a shared event belongs to the later one (the controller sets a run up before its
        endpoints speak).
        """
        own = [e.ts for e in self.events if e.role not in SHARED_ROLES and e.transport == transport]
        other = [e.ts for e in self.events if e.role not in SHARED_ROLES and e.transport != transport]
        low, high = float("-inf"), float("inf")
        if own and other:
            low = max((t for t in other if t < own[0]), default=low)
            if any(t > own[-1] for t in other):
                high = own[-1]
        return Timeline(tuple(
            e for e in self.events
            if (low < e.ts <= high if e.role in SHARED_ROLES else e.transport == transport)
        ))

    def transports(self) -> list[str]:
        """Transports the endpoints used, in order of first appearance."""
        seen: list[str] = []
        for event in self.events:
            if event.role not in SHARED_ROLES and event.transport not in seen:
                seen.append(event.transport)
        return seen

    def relative(self, ts: float, t0: float | None = None) -> float:
        """Seconds from ``t0`` (default: the first event) to ``ts``."""
        zero = t0 if t0 is not None else (self.start or 0.0)
        return ts - zero

    # --- network actions and gaps -----------------------------------------------------------

    def actions(self, network_only: bool = False) -> list[Action]:
        """Controller actions, optionally only those that change addresses or reachability."""
        found = [e for e in self.events if isinstance(e, Action) and e.role == "controller"]
        if network_only:
            found = [a for a in found if a.action in NETWORK_ACTIONS]
        return found

    def first_network_action(self) -> Action | None:
        actions = self.actions(network_only=True)
        return actions[0] if actions else None

    def gaps(self, since: float | None = None) -> list[Gap]:
        """Client-side pauses in application data ending at or after ``since``.

        Three sources, because each sees a different failure: ``data_gap`` events (the client's
        own read-level measurement), gaps between successive ``echo_rtt`` replies (echo
        workloads), and a trailing stall when a download never completed (no ``data_gap`` is
        emitted then, since data never resumed).
        """
        found: list[Gap] = []
        for event in self.of(DataGap, role="client"):
            assert isinstance(event, DataGap)
            if since is None or event.end_ts >= since:
                found.append(Gap(event.start_ts, event.end_ts, float(event.gap_ms), "data_gap"))
        echoes = self.of(EchoRtt, role="client")
        for before, after in zip(echoes, echoes[1:], strict=False):
            if since is None or after.ts >= since:
                found.append(Gap(before.ts, after.ts, (after.ts - before.ts) * 1000.0, "echo"))
        # Data that stops before the run ends is a disruption still going on: measured up to the
        # end of the timeline (the runner's run_end event), a lower bound of the real stall.
        data = [e for e in self.events if e.role == "client" and isinstance(e, Progress | EchoRtt)]
        if data and self.first(TransferComplete, role="client") is None and self.end is not None:
            last = data[-1].ts
            if self.end > last and (since is None or self.end >= since):
                found.append(Gap(last, self.end, (self.end - last) * 1000.0, "stall", ongoing=True))
        return found

    def data_samples(self) -> int:
        """How many observations of application data the client made (progress, gaps, echo replies)."""
        return sum(1 for e in self.events if e.role == "client" and isinstance(e, Progress | DataGap | EchoRtt))

    def largest_gap(self, since: float | None = None) -> Gap | None:
        gaps = self.gaps(since)
        return max(gaps, key=lambda g: g.gap_ms) if gaps else None


# --- JSONL files ----------------------------------------------------------------------------


def read_events(lines: Iterable[str], strict: bool = True, source: str = "<lines>") -> list[Event]:
    """Parse event lines; blank lines and plain log text (not starting with ``{``) are skipped.

    With ``strict=False`` unknown event types or fields are skipped too, so that a timeline recorded
    by a newer lab still loads; with ``strict=True`` they raise ``SchemaError`` naming the line.
    """
    events: list[Event] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise SchemaError("not a JSON object")
            events.append(from_dict(data))
        except (json.JSONDecodeError, SchemaError, TypeError) as exc:
            if strict:
                raise SchemaError(f"{source}:{number}: {exc}") from exc
    return events


def read_jsonl(path: str | Path, strict: bool = True) -> Timeline:
    """Load a recorded timeline (one event per line), ordered by ts."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        return Timeline.from_streams(read_events(handle, strict=strict, source=str(path)))


def write_jsonl(path: str | Path, events: Iterable[Event]) -> None:
    with Path(path).open("w", encoding="utf-8") as handle:
        for event in events:
            handle.write(event.to_json() + "\n")


# --- log chunks to lines --------------------------------------------------------------------


class LineAssembler:
    """Turns arbitrary byte chunks into complete text lines.

    A log follower yields chunks cut anywhere: in the middle of a line, or in the middle of a
    multi-byte UTF-8 sequence (a TTY gives one byte per chunk). An incremental decoder keeps the
    partial sequence until its last byte arrives; invalid bytes become U+FFFD rather than killing
    the reader. Lines are returned without their ``\\n`` (or ``\\r\\n``, which a TTY produces).
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, chunk: bytes) -> list[str]:
        """Add a chunk; return the lines it completed (possibly none)."""
        self._pending += self._decoder.decode(chunk)
        if "\n" not in self._pending:
            return []
        *complete, self._pending = self._pending.split("\n")
        return [line.removesuffix("\r") for line in complete]

    def flush(self) -> list[str]:
        """End of stream: return the unterminated last line, if any."""
        self._pending += self._decoder.decode(b"", final=True)
        rest, self._pending = self._pending, ""
        rest = rest.removesuffix("\r")
        return [rest] if rest else []
