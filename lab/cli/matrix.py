"""`python -m lab matrix`: every client x server pair of QUIC stacks through the chosen scenarios.

Each cell is one black-box run (`scenario run --client-image C --server-image S`), judged as any
run is, with its artifacts copied under ``artifacts/matrix/<run>/cells/``; the grid is written as
matrix.md, index.html and matrix.json. ``assemble`` joins the matrix directories of several
shards (the CI jobs) into one grid.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

from rich.console import Console

from lab import api
from lab.cli import options
from lab.errors import LabError
from lab.report.matrix import ERROR, Cell, cell_from_report, grid_markdown, load_cells, write_matrix
from lab.scenario.runner import ARTIFACTS
from lab.topology.load import load_topology

HELP = "run QUIC stacks against each other (client x server x scenario) and write the grid"
MATRIX = ARTIFACTS / "matrix"
SKIP = ("www",)  # the served bytes: their sha256 is in run.json; the download stays, to be judged again


def _names(text: str, what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise LabError(f"--{what}: name at least one (comma-separated)")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", default="aioquic,qh3", help="comma-separated stacks or images")
    parser.add_argument("--servers", default="aioquic,qh3", help="comma-separated stacks or images")
    parser.add_argument("--scenarios", default="nat-rebinding,wifi-to-cellular", help="comma-separated scenarios")
    parser.add_argument("--cross-only", action="store_true", help="only pairs of different stacks")
    parser.add_argument("--out", type=Path, default=None, help="matrix directory (default artifacts/matrix/<time>)")
    parser.add_argument("--no-capture", action="store_true", help="skip captures (most checks are then not verified)")
    parser.add_argument("--assemble", nargs="+", type=Path, metavar="DIR", default=None,
                        help="join these matrix directories (CI shards) into one grid in --out; runs nothing")


def matrix_json_problem(path: Path) -> str | None:
    """Why a shard's matrix.json cannot be joined (not JSON, no list of cells with their fields), or None."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        return exc.strerror or exc.__class__.__name__
    except ValueError as exc:
        return f"not JSON: {exc}"
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list):
        return "no list of cells"
    known = {f.name for f in dataclasses.fields(Cell)}
    required = {f.name for f in dataclasses.fields(Cell) if f.default is dataclasses.MISSING}
    bad = next((i for i, c in enumerate(cells) if not isinstance(c, dict) or not required <= set(c) <= known), None)
    return None if bad is None else f"cells[{bad}] is not a matrix cell"


def _copy_run(run_dir: Path, target: Path) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        relative = Path(directory).relative_to(run_dir)
        return {n for n in names if str(relative / n).removeprefix("./") in SKIP}

    shutil.copytree(run_dir, target, ignore=ignore, dirs_exist_ok=True, symlinks=True)


def run_matrix(args: argparse.Namespace) -> int:
    clients, servers = _names(args.clients, "clients"), _names(args.servers, "servers")
    for client in clients:
        options.stack("--clients", client, "client")
    for server in servers:
        options.stack("--servers", server, "server")
    scenarios = [api.scenario(name) for name in _names(args.scenarios, "scenarios")]
    pairs = [(c, s) for c in clients for s in servers if not (args.cross_only and c == s)]
    if not pairs:
        raise LabError("no pair to run: --cross-only needs two different stacks")
    out = args.out or MATRIX / time.strftime("%Y%m%d-%H%M%S")
    title = f"QUIC stacks matrix {out.name}"
    console = Console()
    topology = load_topology()
    cells: list[Cell] = []
    total = len(pairs) * len(scenarios)
    for scenario in scenarios:
        for client, server in pairs:
            console.print(f"[{len(cells) + 1}/{total}] {scenario.name}: {client} -> {server}")
            started = time.monotonic()
            result = api.run_scenario(scenario, topology, capture=not args.no_capture, client=client, server=server)
            cell_dir = Path("cells") / f"{scenario.name}--{client}--{server}".replace("/", "_").replace(":", "_")
            _copy_run(result.run_dir, out / cell_dir)
            report = result.verdict.to_dict() if result.verdict is not None else {"error": result.error}
            cell = cell_from_report(client, server, {**report, "scenario": scenario.name}, str(cell_dir))
            if result.verdict is None:
                cell = Cell(client, server, scenario.name, ERROR, str(result.error), run=str(cell_dir))
            cells.append(cell)
            console.print(f"    {cell.status}" + (f": {cell.reason}" if cell.reason else "")
                          + f" ({time.monotonic() - started:.0f} s)")
            write_matrix(out, cells, title, {"clients": clients, "servers": servers,
                                             "scenarios": [s.name for s in scenarios]})
    console.print(grid_markdown(cells, title), markup=False, highlight=False)
    console.print(f"matrix: {out}/index.html, {out}/matrix.md")
    return 0 if all(c.status in ("pass", "unsupported") for c in cells) else 1


def check_out(out: Path | None) -> None:
    """--out must be a directory, or nothing yet: a file there failed the write once the first cell had run."""
    if out is not None and out.exists() and not out.is_dir():
        raise LabError(f"--out {out}: not a directory; allowed: a matrix directory, existing or to be made")


def run(args: argparse.Namespace) -> int:
    check_out(args.out)
    if args.assemble:
        if args.out is None:
            raise LabError("--assemble needs --out DIR for the joined grid")
        missing = [str(d) for d in args.assemble if not (d / "matrix.json").is_file()]
        if missing:
            raise LabError(f"not a matrix directory (no matrix.json): {', '.join(missing)}")
        unreadable = [f"{d / 'matrix.json'} ({reason})" for d in args.assemble
                      if (reason := matrix_json_problem(d / "matrix.json"))]
        if unreadable:
            raise LabError(f"--assemble: unreadable matrix.json: {', '.join(unreadable)}; allowed: the matrix "
                           "directories `lab matrix` wrote")
        cells = load_cells(args.assemble)
        write_matrix(args.out, cells, f"QUIC stacks matrix ({len(args.assemble)} shards)")
        print(grid_markdown(cells, "QUIC stacks matrix"))
        return 0 if all(c.status in ("pass", "unsupported") for c in cells) else 1
    return run_matrix(args)
