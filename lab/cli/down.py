"""`python -m lab down`: remove the lab's containers and networks; artifacts stay."""

from __future__ import annotations

import argparse
import subprocess

from lab.errors import LabError
from lab.topology.load import compose_command

HELP = "remove the lab's containers and networks (artifacts are kept)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    result = subprocess.run([*compose_command(), "down", "--remove-orphans", "-t", "2"], capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise LabError(f"docker compose down failed: {result.stderr.strip().splitlines()[-1:]}")
    print("==> lab removed (artifacts/ kept)")
    return 0
