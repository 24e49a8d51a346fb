"""Goodput through the lab against loopback (the edge): the same client and server programs, unpaced.

* NAT path: the baseline scenario with its download made unpaced and ``size`` long, run and judged
  like `scenario run` (captures on the routers, qlog on both ends); goodput from the client's
  transfer_complete (bytes / the download's duration).
* Loopback: the same two programs in one short-lived container of the lab image with
  ``--network none`` (only its loopback), qlog and key logs on, and a tcpdump on ``lo`` as the
  routers run theirs (``-U -s 0``), so both sides pay for the same recording.

The two alternate, run by run, so that a change of the machine's load hits both.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from lab.bench.figures import goodput_figures, goodput_mbit
from lab.bench.runs import Say, run_times
from lab.scenario.names import topology_names
from lab.scenario.schema import Scenario, load_scenario
from lab.topology.load import ROOT
from lab.topology.model import Topology
from lab.verify.tshark import lab_image

LOOPBACK_PORT = 4433
# One container: tcpdump on lo, the lab's server, then the lab's client; the client's events on stdout.
LOOPBACK_SCRIPT = r"""
set -e
mkdir -p /tmp/run/qlog
tcpdump -i lo -U -s 0 -w /tmp/run/lo.pcap udp port {port} 2>/dev/null &
python -m lab.endpoints.server --listen 127.0.0.1 --port {port} --preferred-port {pport} --tcp-port 0 \
    --qlog-dir /tmp/run/qlog --keylog /tmp/run/server-keys.log >/tmp/run/server.log 2>&1 &
for i in $(seq 100); do ss -Hlun "sport = :{port}" | grep -q . && break; sleep 0.05; done
python -m lab.endpoints.client --server 127.0.0.1:{port} --server-name server --size {size} --migration none \
    --control-socket '' --qlog-dir /tmp/run/qlog --keylog /tmp/run/client-keys.log
"""


def unpaced(source: Path, size: int, directory: Path, topology: Topology) -> Scenario:
    """The scenario with its download unpaced and ``size`` bytes long (a file of the same name)."""
    data = yaml.safe_load(source.read_text())
    data["workload"] = {**data.get("workload", {}), "size": size}
    data["workload"].pop("rate", None)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.name
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_scenario(target, topology_names(topology))


def transfer(lines: str) -> dict[str, Any] | None:
    """The client's transfer_complete event among its JSON lines (None when it never came)."""
    for line in lines.splitlines():
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("type") == "transfer_complete" and event.get("role") == "client":
                return event
    return None


def loopback_once(size: int, timeout: float = 300.0) -> dict[str, Any]:
    """One unpaced download on the lab image's loopback: goodput, sha256 checked, or why not."""
    script = LOOPBACK_SCRIPT.format(port=LOOPBACK_PORT, pport=LOOPBACK_PORT + 1, size=size)
    command = ["docker", "run", "--rm", "--network", "none", "--cpu-shares", "4096",
               "-v", f"{ROOT / 'certs'}:/certs:ro", "--entrypoint", "sh", lab_image(), "-c", script]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout:g} s"}
    done = transfer(result.stdout)
    if done is None:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {result.returncode}: {tail[0][-200:]}"}
    return {"goodput_mbit": goodput_mbit(done.get("bytes"), done.get("duration_ms")), "ok": bool(done.get("ok")),
            "bytes": done.get("bytes"), "duration_ms": done.get("duration_ms")}


def goodput(topology: Topology, source: Path, runs: int, size: int, directory: Path, say: Say) -> dict[str, Any]:
    """``runs`` unpaced downloads through the NAT path and as many on loopback, alternating."""
    scenario = unpaced(source, size, directory / "goodput", topology)
    nat: list[dict[str, Any]] = []
    loop: list[dict[str, Any]] = []
    for number in range(1, runs + 1):
        (verdict,) = run_times(scenario, topology, 1, True, lambda text: None)
        quic = verdict.metrics.get("quic", {})
        nat.append({"goodput_mbit": quic.get("goodput_mbps"), "passed": verdict.passed,
                    "run_dir": str(verdict.run_dir)})
        loop.append(loopback_once(size))
        say(f"goodput run {number}/{runs}: NAT path {_mbit(nat[-1])}, loopback {_mbit(loop[-1])}")
    figures = goodput_figures([n["goodput_mbit"] for n in nat],
                              [lo.get("goodput_mbit") if lo.get("ok") else None for lo in loop])
    return {"method": f"{scenario.name} with an unpaced {size} B download: through the home NAT (captures on the "
                      "routers, qlog on both ends, judged like `scenario run`) against the same client and server "
                      "in one container of the lab image with --network none (qlog on, tcpdump on lo); goodput "
                      "= bytes / the client's download duration; runs alternate",
            "size": size, "runs": runs, **figures, "nat": nat, "loopback": loop}


def _mbit(entry: dict[str, Any]) -> str:
    value = entry.get("goodput_mbit")
    return f"{value:.1f} Mbit/s" if value else entry.get("error", "no figure")
