"""Is the lab ready: every service's own readiness command (its ``org.quic-migration-lab.ready``
label in compose.yaml) succeeds in its container.

The lab's measured services have no Docker healthcheck: each probe is a ``docker exec`` (~65 ms
of CPU in runc, containerd and dockerd), and on 2 cores every probe stalled the endpoints' data by
11-16 ms, more than the lab measures. Readiness is checked here instead, when the lab starts or
is restarted (`lab up`), a few execs in all; the containers are left alone during runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lab.control.docker_api import containers
from lab.errors import LabError
from lab.topology.model import Topology

READY_LABEL = "org.quic-migration-lab.ready"
POLL_S = 0.2

Probe = Callable[[str, str], bool]  # (service, shell command) -> ready


def not_ready(commands: Mapping[str, str | None], probe: Probe) -> list[str]:
    """The services whose readiness command fails (a service without one is ready once it runs)."""
    waiting = [s for s, command in commands.items() if command]
    with ThreadPoolExecutor(max_workers=max(1, len(waiting))) as pool:
        results = dict(zip(waiting, pool.map(lambda s: probe(s, commands[s] or ""), waiting), strict=True))
    return sorted(s for s, ok in results.items() if not ok)


def _exec_probe(found: Mapping[str, Any]) -> Probe:
    def probe(service: str, command: str) -> bool:
        return found[service].exec_run(["sh", "-c", command]).exit_code == 0
    return probe


def wait_ready(topology: Topology, timeout: float = 60.0, sleep: Callable[[float], None] = time.sleep) -> float:
    """Wait until every service of the topology runs and is ready; the seconds it took.

    Raises LabError naming the services still missing or not ready after ``timeout``.
    """
    start = time.monotonic()
    while True:
        found = containers(topology)
        missing = sorted(set(topology.services) - set(found))
        commands = {s: found[s].labels.get(READY_LABEL) for s in topology.services if s in found}
        waiting = missing + not_ready(commands, _exec_probe(found))
        if not waiting:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise LabError(f"not ready after {timeout:.0f} s: {', '.join(waiting)} "
                           "(see `docker compose logs`, or restart the lab with `make up`)")
        sleep(POLL_S)
