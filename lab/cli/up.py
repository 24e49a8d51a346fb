"""`python -m lab up`: start the lab and wait until every service is healthy."""

from __future__ import annotations

import argparse
import subprocess
import time

from lab.control.docker_api import subnet_conflicts
from lab.errors import LabError
from lab.topology.load import ROOT, compose_command, load_topology
from lab.topology.model import validate

HELP = "start the lab (containers, networks) and wait until it is healthy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=int, default=90, help="seconds to wait for health (default 90)")


def run(args: argparse.Namespace) -> int:
    topology = load_topology()
    problems = validate(topology)
    if problems:  # before anything changes: a running lab is left as it was
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise LabError(f"compose.yaml: {problems[0]}{more}")
    conflicts = subnet_conflicts(topology)
    if conflicts:
        raise LabError(f"subnet already taken: {conflicts[0]} (set the *_SUBNET variables, see README)")
    if not (ROOT / "certs" / "server.crt").exists():
        raise LabError("certs/server.crt is missing: run `make certs` (or `make up`)")
    for service in ("server", "client"):
        (ROOT / "artifacts" / ".runtime" / service).mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    print("==> starting the lab (docker compose up --wait)", flush=True)
    result = subprocess.run([*compose_command(), "up", "-d", "--wait", "--wait-timeout", str(args.timeout),
                             "--remove-orphans", "--quiet-pull"], capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else "unknown error"
        if "address already in use" in result.stderr or "port is already allocated" in result.stderr:
            raise LabError(f"a port is already in use: {reason}")
        if "Pool overlaps" in result.stderr:
            raise LabError(f"a lab subnet is already taken: {reason} (set the *_SUBNET variables, see README)")
        raise LabError(f"docker compose up failed: {reason} (see `make logs`)")
    print(f"==> lab healthy in {time.monotonic() - start:.1f} s: {', '.join(sorted(topology.services))}")
    return 0
