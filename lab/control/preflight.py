"""Before a run touches anything: the daemon answers, every lab container runs and is healthy, and
no other run holds the lab. During a run: notice at once when a lab container dies.

Each failure is a :class:`PreflightError` (a ``LabError``: one line on stderr, exit 2, no report).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import threading
import time
from pathlib import Path
from typing import IO

from lab.control.docker_api import PROJECT_LABEL, SERVICE_LABEL, DockerUnavailable, client, containers
from lab.errors import LabError
from lab.topology.model import Topology


class PreflightError(LabError):
    pass


def check_lab(topology: Topology) -> None:
    """Raise unless the daemon answers and every service's container is running and healthy."""
    try:
        found = containers(topology, all_states=True)
    except DockerUnavailable as exc:
        raise PreflightError(str(exc)) from None
    for service in topology.services:
        ctr = found.get(service)
        if ctr is None:
            raise PreflightError(f"the {service} container does not exist: start the lab with `make up`")
        state = ctr.attrs.get("State") or {}
        if state.get("Status") != "running":
            raise PreflightError(f"the {service} container is {state.get('Status', 'not running')} "
                                 f"(exit code {state.get('ExitCode')}): restart the lab with `make up`")
        health = (state.get("Health") or {}).get("Status")
        if health not in (None, "healthy"):
            raise PreflightError(f"the {service} container is {health}, not healthy: see `docker compose logs "
                                 f"{service}`, or restart the lab with `make up`")


class RunLock:
    """One run at a time: an exclusive ``flock`` on a file that names its holder.

    The kernel drops a flock when its process dies, so a lock file left by a killed run is stale
    by construction: the next run takes it over and says so.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None
        self.stale: dict | None = None  # the holder a stale lock named, when one was taken over

    def acquire(self, scenario: str) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            handle.close()
            since = time.strftime("%H:%M:%S", time.localtime(holder.get("started", 0)))
            raise PreflightError(f"another run holds the lab: pid {holder.get('pid', '?')} (scenario "
                                 f"{holder.get('scenario', '?')}, since {since}); wait for it to finish") from None
        previous = _holder(handle)
        if previous:
            self.stale = previous
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "scenario": scenario, "started": time.time()}))
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            self._handle.seek(0)
            self._handle.truncate()
            fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(handle: IO[str]) -> dict:
    handle.seek(0)
    try:
        data = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


class DeathWatch:
    """Follows the Engine's ``die`` events for the lab's containers in a thread."""

    def __init__(self, topology: Topology) -> None:
        self._deaths: queue.Queue[str] = queue.Queue()
        self._stream = client().events(decode=True, filters={"event": "die",
                                                             "label": f"{PROJECT_LABEL}={topology.project}"})
        self._thread = threading.Thread(target=self._follow, name="death-watch", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends with an error when closed
            for event in self._stream:
                attributes = (event.get("Actor") or {}).get("Attributes") or {}
                name = attributes.get(SERVICE_LABEL) or attributes.get("name", "?")
                self._deaths.put(f"the {name} container died during the run (exit code "
                                 f"{attributes.get('exitCode', '?')})")

    def death(self) -> str | None:
        """The first death seen since the last call, or None."""
        try:
            return self._deaths.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()
