"""The live view of a run: one coloured line per observed event and a status panel.

Three renderers share one interface (`start`, `event`, `note`, `stop`): rich on a terminal, plain
lines when the output is not a terminal, and JSON lines (`--json`) for machines.
"""

from __future__ import annotations

import json
import sys
from collections import deque
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from lab import events as ev
from lab.observe.describe import describe, worth_showing

COLOURS = {"controller": "bold magenta", "client": "cyan", "server": "green", "router": "yellow"}
NOISY = (ev.Progress, ev.EchoRtt)  # shown at most once a second per source


@dataclass
class Status:
    """What the status panel shows, updated from events only."""

    client_local: str = "?"
    server_peer: str = "?"
    server_sees: str = "?"
    bytes: int = 0
    total: int | None = None
    goodput_mbps: float = 0.0
    validations: int = 0
    handshakes: int = 0
    migrations: int = 0
    last_rtt_ms: float | None = None
    step: str = ""
    _last_progress: tuple[float, int] | None = field(default=None, repr=False)

    def update(self, event: ev.Event) -> None:
        match event:
            case ev.Progress() if event.role == "client":
                if self._last_progress and event.ts > self._last_progress[0]:
                    dt = event.ts - self._last_progress[0]
                    self.goodput_mbps = (event.bytes - self._last_progress[1]) * 8 / dt / 1e6
                self._last_progress = (event.ts, event.bytes)
                self.bytes, self.total = event.bytes, event.total
                self.client_local = event.local or self.client_local
                self.server_peer = event.peer or self.server_peer
            case ev.HandshakeCompleted() if event.role == "server" and event.transport == "quic":
                self.server_sees = event.peer
            case ev.ActivePathChanged() if event.role == "server":
                self.server_sees = event.new_peer
            case ev.PathValidated() if event.role == "server":
                self.validations += 1
            case ev.HandshakeCompleted() if event.role == "client":
                self.handshakes += 1
            case ev.MigrationCompleted():
                self.migrations += 1
            case ev.EchoRtt():
                self.last_rtt_ms = event.rtt_ms


def source_of(event: ev.Event, service: str) -> str:
    return service if event.role in ("router",) else (event.role or service)


class PlainView:
    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.t0: float | None = None
        self._last_noisy: dict[str, float] = {}

    def start(self, title: str, description: str) -> None:
        print(f"== {title}", file=self.stream)
        for line in description.strip().splitlines():
            print(f"   {line}", file=self.stream)

    def _rel(self, ts: float) -> float:
        if self.t0 is None:
            self.t0 = ts
        return ts - self.t0

    def _throttled(self, event: ev.Event, source: str) -> bool:
        if not worth_showing(event):
            return True
        if isinstance(event, NOISY):
            key = f"{source}:{event.TYPE}:{event.transport}"
            if event.ts - self._last_noisy.get(key, 0.0) < 1.0:
                return True
            self._last_noisy[key] = event.ts
        return False

    def event(self, event: ev.Event, source: str) -> None:
        if self._throttled(event, source):
            return
        tag = f"[{event.transport}]" if event.transport == "tcp" else ""
        print(f"{self._rel(event.ts):8.3f}s {source:<14}{tag} {describe(event)}", file=self.stream, flush=True)

    def note(self, text: str) -> None:
        print(f"   -- {text}", file=self.stream, flush=True)

    def stop(self) -> None:
        pass


class JsonView(PlainView):
    def start(self, title: str, description: str) -> None:
        pass

    def event(self, event: ev.Event, source: str) -> None:
        data = event.to_dict()
        data["source"] = source
        print(json.dumps(data), file=self.stream, flush=True)

    def note(self, text: str) -> None:
        pass


class RichView(PlainView):
    def __init__(self, console: Console | None = None) -> None:
        super().__init__()
        self.console = console or Console()
        self.rows: deque[tuple[float, str, str, bool]] = deque(maxlen=22)
        self.status = Status()
        self.title = ""
        self.live: Live | None = None

    def start(self, title: str, description: str) -> None:
        self.title = title
        self.console.print(Panel(description.strip(), title=f"[bold]{title}[/]", border_style="blue"))
        self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False)
        self.live.start()

    def _render(self) -> Group:
        table = Table(expand=True, show_edge=False, box=None, padding=(0, 1))
        table.add_column("t", justify="right", width=8)
        table.add_column("who", width=14)
        table.add_column("observed")
        for rel, source, text, is_action in self.rows:
            style = COLOURS.get("controller" if is_action else source.split("-")[0], "white")
            if source.endswith(("router", "nat")):
                style = COLOURS["router"]
            table.add_row(f"{rel:.3f}s", Text(source, style=style),
                          Text(text, style="bold reverse magenta" if is_action else ""))
        s = self.status
        total = f" / {s.total / 1e6:.1f} MB" if s.total else ""
        rtt = f"   echo rtt {s.last_rtt_ms:.1f} ms" if s.last_rtt_ms is not None else ""
        panel = Panel(
            f"path  client {s.client_local} -> server {s.server_peer}; the server sees the client as {s.server_sees}\n"
            f"data  {s.bytes / 1e6:.2f} MB{total}   goodput {s.goodput_mbps:.1f} Mbit/s{rtt}\n"
            f"seen  handshakes {s.handshakes}   paths validated by server {s.validations}   "
            f"migrations {s.migrations}\n"
            f"step  {s.step}",
            title="status (from events)", border_style="cyan")
        return Group(table, panel)

    def event(self, event: ev.Event, source: str) -> None:
        self.status.update(event)
        if not self._throttled(event, source):
            self.rows.append((self._rel(event.ts), source, describe(event), isinstance(event, ev.Action)))
        if self.live:
            self.live.update(self._render())

    def note(self, text: str) -> None:
        self.status.step = text
        if self.live:
            self.live.update(self._render())
        else:  # after the live display stopped (restoring the lab after Ctrl-C): a plain line
            self.console.print(f"   -- {text}", markup=False, highlight=False)

    def stop(self) -> None:
        if self.live:
            self.live.update(self._render())
            self.live.stop()
            self.live = None


def make_view(json_output: bool = False) -> PlainView:
    if json_output:
        return JsonView()
    if sys.stdout.isatty():
        return RichView()
    return PlainView()
