"""`python -m lab status`: the lab's containers, their health and addresses."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from lab.control.docker_api import containers
from lab.topology.load import load_topology

HELP = "show the lab's containers, health and addresses"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table")


def collect() -> list[dict]:
    topology = load_topology()
    running = containers(topology, all_states=True)
    rows = []
    for name in sorted(topology.services):
        ctr = running.get(name)
        if ctr is None:
            rows.append({"service": name, "state": "absent", "health": "", "addresses": {}})
            continue
        nets = ctr.attrs["NetworkSettings"]["Networks"]
        addresses = {}
        for docker_name, info in nets.items():
            short = next((n.name for n in topology.networks.values() if n.docker_name == docker_name), docker_name)
            addresses[short] = info.get("IPAddress", "")
        health = (ctr.attrs["State"].get("Health") or {}).get("Status", "")
        rows.append({"service": name, "state": ctr.status, "health": health, "addresses": addresses})
    return rows


def run(args: argparse.Namespace) -> int:
    rows = collect()
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="quic-migration-lab")
    for column in ("service", "state", "health", "addresses"):
        table.add_column(column)
    for row in rows:
        addresses = "  ".join(f"{net}={ip}" for net, ip in sorted(row["addresses"].items()))
        table.add_row(row["service"], row["state"], row["health"], addresses)
    Console().print(table)
    return 0
