"""`python -m lab up`: start the lab and wait until every service is healthy (lab.api.up)."""

from __future__ import annotations

import argparse

from lab import api
from lab.cli.options import Bounds, whole

HELP = "start the lab (containers, networks) and wait until it is healthy"
TIMEOUT = Bounds(1, 3600, "seconds")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=int, default=90, help="seconds to wait for health (default 90)")


def run(args: argparse.Namespace) -> int:
    api.up(whole("--timeout", args.timeout, TIMEOUT))  # compose's --wait-timeout takes any number
    return 0
