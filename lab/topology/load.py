"""Read the topology from compose.yaml through `docker compose config` (the edge)."""

from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from pathlib import Path

from lab.errors import LabError
from lab.topology.model import Topology, topology_from_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"


class ComposeMissing(LabError, RuntimeError):
    """`docker compose config` could not read compose.yaml (no docker CLI, no Compose v2, a bad file)."""


def compose_command() -> list[str]:
    return ["docker", "compose", "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE)]


@lru_cache(maxsize=1)
def load_topology() -> Topology:
    try:
        result = subprocess.run([*compose_command(), "config", "--format", "json"],
                                capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise ComposeMissing("the docker CLI is missing: install Docker, then run `make up`") from None
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "unknown error"
        if "is not a docker command" in result.stderr or "unknown command" in result.stderr:
            raise ComposeMissing("`docker compose` (v2) is missing: run `make compose`")
        raise ComposeMissing(f"compose.yaml: {message}")
    return topology_from_config(json.loads(result.stdout))
