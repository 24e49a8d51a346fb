"""`python -m lab certs`: the local CA and server certificate (made once, kept in certs/)."""

from __future__ import annotations

import argparse

from lab.certs import ensure_certificates
from lab.topology.load import ROOT, load_topology

HELP = "create the local CA and the server certificate (first run only)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=str(ROOT / "certs"), help="where to write them (default: certs/)")


def run(args: argparse.Namespace) -> int:
    topology = load_topology()
    ips = (topology.server_address, topology.server_preferred_address, "127.0.0.1", "127.0.0.2", "127.0.0.3", "::1")
    paths, generated = ensure_certificates(args.dir, ("server", "localhost", "server4", "server46"), ips)
    if generated:
        print(f"==> certificates: new local CA and server certificate in {paths.directory}")
    return 0
