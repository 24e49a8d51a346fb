"""Before a run touches anything: the daemon answers, every lab container runs and is healthy, and
no other run holds the lab. During a run: notice at once when a lab container dies, is killed,
stopped or restarted, or a lab network loses a router or the server or is removed (a fault).

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lab.control.docker_api import PROJECT_LABEL, SERVICE_LABEL, DockerUnavailable, client, containers
from lab.errors import LabError
from lab.topology.model import CLIENT, Topology


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


# Engine events that end a run. `kill` comes first for `docker kill` (SIGKILL) and for `docker stop`
# or `restart` (SIGTERM; the `die` follows only after the process exits); the controller's own
# signals to the server (SIGUSR1, SIGUSR2, SIGHUP) are not faults.
CONTAINER_FAULTS = ("kill", "die", "pause", "oom", "destroy")
NETWORK_FAULTS = ("disconnect", "destroy")
FATAL_SIGNALS = {"9": "SIGKILL", "15": "SIGTERM"}
OWN_MARGIN = 0.05  # s around a controller action in which the client's events are its own doing


@dataclass(frozen=True)
class Watched:
    """What the fault watch looks for: the lab's containers (by project label) and networks."""

    project: str
    networks: dict[str, str]  # Docker network name -> the lab's name for it
    client: str = CLIENT

    @classmethod
    def of(cls, topology: Topology) -> Watched:
        return cls(topology.project, {n.docker_name: n.name for n in topology.networks.values()})


@dataclass(frozen=True)
class Fault:
    """Something done to the lab from outside during a run, as the Engine reported it."""

    at: float  # the Engine's time of the event, s since the epoch
    cause: str  # one line naming the container or the network
    client: bool  # about the client, which the controller itself connects, disconnects and recreates


def fault_of(event: dict[str, Any], watched: Watched, services: dict[str, str]) -> Fault | None:
    """The fault an Engine event means for a run, or None (pure).

    ``services``: container id -> service name, for network events (which carry only the id).
    Only the controller moves the client between networks, and it never disconnects a router or
    the server, nor removes a network; whether a client event is its own is decided by the
    watch, from when the controller acted.
    """
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    action = event.get("Action") or event.get("status") or ""
    at = (event.get("timeNano") or 0) / 1e9 or float(event.get("time") or 0)
    if event.get("Type") == "container":
        if attributes.get(PROJECT_LABEL) != watched.project or action not in CONTAINER_FAULTS:
            return None
        name = attributes.get(SERVICE_LABEL) or attributes.get("name", "?")
        if action == "kill":
            signal = FATAL_SIGNALS.get(str(attributes.get("signal")))
            if signal is None:
                return None
            what = "killed" if signal == "SIGKILL" else "stopped or restarted"
            cause = f"the {name} container was {what} during the run ({signal})"
        elif action == "die":
            cause = f"the {name} container died during the run (exit code {attributes.get('exitCode', '?')})"
        elif action == "pause":
            cause = f"the {name} container was paused during the run"
        elif action == "oom":
            cause = f"the {name} container ran out of memory during the run"
        else:
            cause = f"the {name} container was removed during the run"
        return Fault(at, cause, name == watched.client)
    if event.get("Type") == "network":
        network = watched.networks.get(attributes.get("name", ""))
        if network is None or action not in NETWORK_FAULTS:
            return None
        docker_name = attributes["name"]
        if action == "destroy":
            return Fault(at, f"the {network} network ({docker_name}) was removed during the run", False)
        container_id = attributes.get("container", "")
        name = services.get(container_id)
        who = f"the {name} container" if name else f"a container ({container_id[:12] or '?'})"
        # An id the watch does not know is a container created during the run: the client,
        # recreated by the controller's reset.
        return Fault(at, f"{who} was disconnected from the {network} network ({docker_name}) during the run",
                     name in (None, watched.client))
    return None


def own_doing(fault: Fault, windows: list[tuple[float, float | None]]) -> bool:
    """True when a client fault falls in a window of the controller's own actions (pure)."""
    return fault.client and any(start - OWN_MARGIN <= fault.at and (end is None or fault.at <= end + OWN_MARGIN)
                                for start, end in windows)


class FaultWatch:
    """Follows the Engine's events in a thread: a lab container killed, stopped, restarted, dead,
    paused or removed, a router or the server disconnected from a lab network, a lab network
    removed. The controller marks its own actions with :meth:`own`, so that its connects,
    disconnects and recreations of the client are not taken for faults."""

    def __init__(self, topology: Topology) -> None:
        self.watched = Watched.of(topology)
        api = client()
        # Network events carry only a container id; the lab's containers are known now.
        self.services = {c.id: name for name, c in containers(topology, all_states=True).items()}
        self._faults: queue.Queue[Fault] = queue.Queue()
        self._windows: list[tuple[float, float | None]] = []
        self._stream = api.events(decode=True, filters={"type": ["container", "network"],
                                                        "event": sorted({*CONTAINER_FAULTS, *NETWORK_FAULTS})})
        self._thread = threading.Thread(target=self._follow, name="fault-watch", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends with an error when closed
            for event in self._stream:
                found = fault_of(event, self.watched, self.services)
                if found is not None:
                    self._faults.put(found)

    @contextlib.contextmanager
    def own(self) -> Iterator[None]:
        """Mark what the controller does inside as its own (the window is judged by the clock)."""
        index = len(self._windows)
        self._windows.append((time.time(), None))
        try:
            yield
        finally:
            self._windows[index] = (self._windows[index][0], time.time())

    def fault(self, wait: float = 0.0) -> str | None:
        """The cause of the first fault seen since the last call (waiting up to ``wait`` s), or None."""
        deadline = time.monotonic() + wait
        while True:
            try:
                found = self._faults.get(timeout=max(0.0, deadline - time.monotonic())) if wait \
                    else self._faults.get_nowait()
            except queue.Empty:
                return None
            if not own_doing(found, self._windows):
                return found.cause

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()
