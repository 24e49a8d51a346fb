"""Read the topology from compose.yaml through `docker compose config` (the edge)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.topology.model import Topology, topology_from_config
from lab.topology.overrides import (
    Variable,
    check_overrides,
    compose_variables,
    field_variables,
    read_dotenv,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
DOTENV = ROOT / ".env"  # Compose reads it from the project directory


class ComposeMissing(LabError, RuntimeError):
    """`docker compose config` could not read compose.yaml (no docker CLI, no Compose v2, a bad file)."""


class BadOverride(LabError, ValueError):
    """A value given to a compose.yaml variable (environment or .env) is not one its field takes."""


def overrides_problems(variables: Mapping[str, Variable], environ: Mapping[str, str], dotenv: Path) -> list[str]:
    """What is wrong with the overrides in ``environ`` and the ``dotenv`` file (one line each)."""
    if not dotenv.is_file():
        return check_overrides(variables, environ)
    data = dotenv.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return [f"{dotenv.name}:{line}: byte {data[exc.start]:#04x} is not UTF-8; allowed: NAME=value lines in "
                "UTF-8 text"]
    settings, problems = read_dotenv(text, dotenv.name)
    return problems + check_overrides(variables, environ, settings)


def compose_command() -> list[str]:
    return ["docker", "compose", "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE)]


def compose_config() -> dict[str, Any]:
    """compose.yaml as Compose resolves it (every variable substituted): the Docker CLI edge."""
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
    return json.loads(result.stdout)


@lru_cache(maxsize=1)
def load_topology() -> Topology:
    """The lab's topology; malformed overrides are refused first, naming the variable, before Compose runs."""
    variables = compose_variables(COMPOSE_FILE.read_text())
    problems = overrides_problems(variables, os.environ, DOTENV)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BadOverride(problems[0] + more)
    return topology_from_config(compose_config(), field_variables(variables))
