"""`python -m lab VERB ...`: one module per verb (as netlab does), dispatched from a table.

Each verb module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Exit codes: 0 success, 1 a check failed, 2 an error (a one-line message, no traceback). Verbs
raise :class:`lab.errors.LabError` (or one of its subclasses: ActionError, DockerUnavailable,
ComposeMissing, TopologyError, ScenarioError, PreflightError, NotARunDir, ...) and never
translate: ``main`` catches it once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from lab.errors import LabError

__all__ = ["LabError", "VERBS", "build_parser", "main"]

VERBS = {
    "up": "lab.cli.up",
    "down": "lab.cli.down",
    "status": "lab.cli.status",
    "certs": "lab.cli.certs",
    "scenario": "lab.cli.scenario",
    "demo": "lab.cli.demo",
    "impair": "lab.cli.impair",
    "bench": "lab.cli.bench",
    "explain": "lab.cli.explain",
    "walkthrough": "lab.cli.walkthrough",
    "verify": "lab.cli.verify",
    "open": "lab.cli.open",
    "matrix": "lab.cli.matrix",
    "soak": "lab.cli.soak",
}




class OneLineParser(argparse.ArgumentParser):
    """argparse's refusals as the lab's other errors: one line, ``error:``, exit 2 (no usage block).

    Subparsers are made of the parent's class, so every verb's options are refused the same way.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m lab", description="QUIC connection-migration lab")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, module_name in VERBS.items():
        module = importlib.import_module(module_name)
        verb_parser = sub.add_parser(verb, help=module.HELP, description=module.HELP)
        module.add_arguments(verb_parser)
        verb_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except LabError as exc:  # every user-facing error, caught here only; a scenario's lists all its problems
        print(f"{exc.prefix}{exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lab verify RUN | head`: the reader left; say nothing more, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush would raise again
        return 141  # 128 + SIGPIPE, what a shell reports for a program killed by the closed pipe
    except KeyboardInterrupt as exc:  # a run restores the lab before it lets Ctrl-C through (RunInterrupted)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # one more Ctrl-C on the way out is no traceback
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return 130
