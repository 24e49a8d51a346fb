"""`python -m lab open [RUN_DIR]`: open a run's report.html in a browser, or print where it is.

Without RUN_DIR, the most recent run: of every ``artifacts/*/latest``, the one whose run started
last (its run.json). Nothing is written unless asked: ``--rebuild`` judges the run again from its
artifacts and writes its reports with the captures decoded by the lab image's tshark (as
`lab verify --write` does, plus the capture decoder for the page), e.g. for a run recorded before
the lab wrote report.html.

A browser is started only where one can show a page: on macOS and Windows, or on Linux with a
graphical session (DISPLAY or WAYLAND_DISPLAY), through Python's ``webbrowser`` (xdg-open and the
desktop's browser). Elsewhere (a server, CI, a container) the path and its file:// URL are printed
and nothing is started. Exit codes: 0, or 2 when there is no run or no report to open.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import webbrowser
from collections.abc import Mapping
from pathlib import Path

from lab.errors import LabError
from lab.report.render import HTML, write_reports
from lab.scenario.record import RECORD
from lab.scenario.runner import ARTIFACTS
from lab.verify.judge import judge_run
from lab.verify.pcap import read_quic_packets

HELP = "open a run's report.html in a browser (default: the latest run), or print its path"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, nargs="?", metavar="RUN_DIR",
                        help="a run directory (default: the most recent artifacts/*/latest)")
    parser.add_argument("--rebuild", action="store_true",
                        help="judge the run again and write its reports (captures decoded) before opening")
    parser.add_argument("--print", dest="print_only", action="store_true",
                        help="only print the report's path, never start a browser")


def _started(run_dir: Path) -> float:
    try:
        return float(json.loads((run_dir / RECORD).read_text()).get("started") or 0.0)
    except (OSError, ValueError, AttributeError):
        return run_dir.stat().st_mtime


def latest_run(artifacts: Path = ARTIFACTS) -> Path:
    """The most recent ``artifacts/*/latest`` (by its run's start time)."""
    runs = [p for p in artifacts.glob("*/latest") if p.is_dir()]
    if not runs:
        raise LabError(f"no run in {artifacts}/ (run one: make scenario), or name a run directory")
    return max(runs, key=_started)


def can_show_a_page(environ: Mapping[str, str], platform: str) -> bool:
    """Whether a started browser could show anything: a desktop OS, or a graphical session on Linux."""
    if platform == "darwin" or platform.startswith("win"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def rebuild(run_dir: Path) -> Path:
    """Judge ``run_dir`` again and write its reports, report.html with the captures decoded."""
    verdict = judge_run(run_dir)
    write_reports(run_dir, verdict.to_dict(), verdict.timeline, verdict.description, read_packets=read_quic_packets)
    return run_dir / HTML


def run(args: argparse.Namespace) -> int:
    run_dir = (args.run_dir or latest_run()).resolve()
    if not run_dir.is_dir():
        what = "not a directory" if run_dir.exists() else "no such directory"
        raise LabError(f"RUN_DIR {args.run_dir}: {what}; allowed: a run directory such as artifacts/NAME/latest")
    page = run_dir / HTML
    if args.rebuild:
        print(f"==> judging {run_dir} again and writing its reports (captures decoded by the lab image's tshark)",
              flush=True)
        page = rebuild(run_dir)
    elif not page.is_file():
        raise LabError(f"{run_dir}: no {HTML} (a run recorded before the lab wrote one?); write it with "
                       f"`python -m lab open --rebuild {run_dir}`")
    uri = page.as_uri()
    print(page)
    if args.print_only or not can_show_a_page(os.environ, sys.platform):
        print(f"open it in a browser: {uri}")
        return 0
    try:
        opened = webbrowser.open(uri)
    except webbrowser.Error:
        opened = False
    if not opened:
        print(f"no browser could be started; open it yourself: {uri}")
    return 0
