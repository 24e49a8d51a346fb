"""`python -m lab certs`: the local CA and server certificate (made once, kept in certs/)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lab.certs import ensure_certificates
from lab.errors import LabError
from lab.topology.load import ROOT, load_topology

HELP = "create the local CA and the server certificate (first run only)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=str(ROOT / "certs"), help="where to write them (default: certs/)")


def check_dir(text: str) -> Path:
    """--dir: a directory, or a path whose directory can be made (checked before anything is written)."""
    path = Path(text)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise LabError(f"--dir {text}: {existing} is not a directory; allowed: a directory, existing or to be made")
    return path


def run(args: argparse.Namespace) -> int:
    directory = check_dir(args.dir)
    topology = load_topology()
    ips = (topology.server_address, topology.server_preferred_address, "127.0.0.1", "127.0.0.2", "127.0.0.3", "::1")
    try:
        paths, generated = ensure_certificates(directory, ("server", "localhost", "server4", "server46"), ips)
    except OSError as exc:  # no permission, a read-only or pseudo file system (/proc)
        raise LabError(f"--dir {args.dir}: cannot write there ({exc.strerror}); allowed: a directory you can "
                       "write") from None
    if generated:
        print(f"==> certificates: new local CA and server certificate in {paths.directory}")
    return 0
