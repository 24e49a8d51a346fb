"""Live log streaming from containers (the edge).

docker-py's log and exec streams block and yield chunks, not lines, so each source gets its own
reader thread with a `LineAssembler`; complete lines go into one queue as (source, line, ts).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from docker.models.containers import Container

from lab.observe.timeline import LineAssembler


@dataclass(frozen=True)
class Line:
    source: str
    text: str
    received: float  # the controller's wall clock when the line arrived


class LineQueue:
    def __init__(self) -> None:
        self.queue: queue.Queue[Line] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self.open_sources: set[str] = set()
        self._lock = threading.Lock()

    def _pump(self, source: str, chunks: Iterable[bytes]) -> None:
        assembler = LineAssembler()
        try:
            for chunk in chunks:
                for text in assembler.feed(chunk):
                    self.queue.put(Line(source, text, time.time()))
        except Exception as exc:  # a closed stream ends its reader, nothing else
            self.queue.put(Line(source, f"[stream ended: {exc.__class__.__name__}]", time.time()))
        finally:
            for text in assembler.flush():
                self.queue.put(Line(source, text, time.time()))
            with self._lock:
                self.open_sources.discard(source)

    def add(self, source: str, chunks: Iterable[bytes]) -> None:
        with self._lock:
            self.open_sources.add(source)
        thread = threading.Thread(target=self._pump, args=(source, chunks), name=f"log-{source}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def follow_container(self, source: str, container: Container, since: float) -> None:
        self.add(source, container.logs(stream=True, follow=True, since=since, stdout=True, stderr=True))

    def get(self, timeout: float) -> Line | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> list[Line]:
        lines = []
        while True:
            try:
                lines.append(self.queue.get_nowait())
            except queue.Empty:
                return lines


class ExecStream:
    """A command run in a container whose output is streamed; its exit code is read at the end."""

    def __init__(self, container: Container, command: list[str], environment: dict[str, str] | None = None) -> None:
        api = container.client.api
        self._api = api
        self.exec_id = api.exec_create(container.id, command, environment=environment, stdout=True, stderr=True)["Id"]
        self.output = api.exec_start(self.exec_id, stream=True, demux=False)

    def exit_code(self) -> int | None:
        info = self._api.exec_inspect(self.exec_id)
        return None if info.get("Running") else info.get("ExitCode")
