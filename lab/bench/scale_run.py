"""`bench scale` on the live lab (the edge): N lab clients at once through one change.

The clients run in the client container, each with its own control socket and its own events
file under the run's runtime directory (a bind mount, read from the host); the qlog and the key
log are off for them (N files written at once would measure the disk, not migration). The
server's CPU time comes from the Engine's stats of its container, before and after the round.
"""

from __future__ import annotations

import shlex
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from lab import events as ev
from lab.bench.scale import Round, connection, rate_for
from lab.control.actions import ActionError, Lab
from lab.control.docker_api import client
from lab.control.preflight import RunLock, check_lab
from lab.scenario.runner import LOCK, RUNTIME
from lab.topology.model import CLIENT, SERVER

Say = Callable[[str], None]
START_WAIT_S = 120.0  # N interpreters starting on 2 cores
LEAD_S = 1.0  # every connection moves data for this long before the change
NETWORKS = ("home", "cellular")  # home carries the default route; cellular is the way out


def transfer_s(count: int) -> float:
    """Long enough that the last client to start is still downloading well after the change."""
    return 8.0 + 0.3 * count


def _cpu_s(lab: Lab) -> float | None:
    try:
        stats = client().api.stats(lab.ctr(SERVER).id, stream=False)
        return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
    except Exception:  # noqa: BLE001 - a figure the Engine does not give is reported as missing, not made up
        return None


def _read(path: Path) -> list[ev.Event]:
    found = []
    if not path.exists():
        return found
    for line in path.read_text(errors="replace").splitlines():
        try:
            event = ev.parse_line(line)
        except ev.SchemaError as exc:
            event = ev.Error(role="client", message=f"{path.name}: {exc}")
        if event is not None:
            found.append(event)
    return found


def _count(events: list[ev.Event], kind: type[ev.Event]) -> int:
    return sum(isinstance(e, kind) for e in events)


def run_round(lab: Lab, change: str, count: int, say: Say) -> Round:
    topology = lab.topology
    lab.reset(NETWORKS)
    rate = rate_for(count)
    size = int(rate * transfer_s(count))
    tag = f"scale-{change}-{count}-{time.time_ns()}"
    host_dir, inside = RUNTIME / CLIENT / "runs" / tag, f"/logs/runs/{tag}"
    host_dir.mkdir(parents=True, exist_ok=True)
    command = ["python", "-m", "lab.endpoints.client", f"--server={topology.server_address}:{topology.server_port}",
               "--transport=quic", "--workload=download", f"--size={size}", f"--rate={rate}",
               "--migration=passive", "--no-rotate-cid", "--keylog=", "--qlog-dir="]
    script = (f"for i in $(seq 1 {count}); do {shlex.join(command)} --control-socket=/run/lab/scale-$i.sock "
              f"> {inside}/$i.jsonl 2>&1 & done; wait")
    cpu_before, started = _cpu_s(lab), time.time()
    lab.ctr(CLIENT).exec_run(["sh", "-c", script], detach=True)
    files = [host_dir / f"{i}.jsonl" for i in range(1, count + 1)]
    try:
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            ready = sum(_count(_read(f), ev.HandshakeCompleted) > 0 for f in files)
            if ready == count:
                break
            time.sleep(0.5)
        else:
            raise ActionError(f"bench scale: only {ready} of {count} clients had connected after {START_WAIT_S:g} s")
        say(f"{change} N={count}: {count} connections up after {time.time() - started:.1f} s, each at "
            f"{rate / 1000:g} kB/s")
        time.sleep(LEAD_S)
        change_ts = time.time()
        if change == "handoff":
            lab.disconnect("home")  # break-before-make: the default route moves to cellular
        else:
            lab.rebind("home-router")  # every flow through the home NAT gets a new port at once
        deadline = time.monotonic() + transfer_s(count) + 60
        while time.monotonic() < deadline:
            if all(_count(found, ev.TransferComplete) or _count(found, ev.ConnectionClosed)
                   for found in map(_read, files)):
                break
            time.sleep(0.5)
    finally:
        lab.ctr(CLIENT).exec_run(["sh", "-c", "pkill -f lab.endpoints.client; true"])
    duration = time.time() - started
    cpu_after = _cpu_s(lab)
    connections = tuple(connection(i, _read(f), change_ts) for i, f in enumerate(files, 1))
    shutil.rmtree(host_dir, ignore_errors=True)
    lab.reset(topology.client_start_networks)
    cpu = None if cpu_before is None or cpu_after is None else round(cpu_after - cpu_before, 3)
    return Round(change, count, rate, connections, cpu, duration)


def scale(lab: Lab, counts: list[int], changes: list[str], say: Say) -> list[Round]:
    """Every N through every change, holding the lab as a scenario run does."""
    check_lab(lab.topology)
    lock = RunLock(LOCK).acquire("bench scale")
    try:
        return [run_round(lab, change, count, say) for change in changes for count in counts]
    finally:
        lock.release()
