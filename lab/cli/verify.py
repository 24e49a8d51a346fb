"""`python -m lab verify RUN_DIR`: judge a recorded run again, from its artifacts alone.

The same judge as `scenario run` (lab.verify.judge), so a run re-judged on another machine gets
the verdict it got live. Exit codes: 0 passed, 1 a check failed or was not verified, 2 not a run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lab import api
from lab.verify.result import NOT_VERIFIED, SHORT_MARKS

HELP = "judge a recorded run again from its artifacts (events, qlog, captures)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory, e.g. artifacts/NAME/latest")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--write", action="store_true", help="rewrite report.json and report.md in RUN_DIR")
    parser.add_argument("--strict", action="store_true", help="RFC 9000 MUST violations in the capture fail the run")


def run(args: argparse.Namespace) -> int:
    verdict = api.verify(args.run_dir, strict=args.strict)
    if args.write:
        verdict.write_reports()
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2, default=str))
    else:
        print(f"{verdict.scenario} {verdict.run_id}: {'PASSED' if verdict.passed else 'FAILED'}")
        for check in verdict.checks:
            mark = SHORT_MARKS[check.status]
            optional = " (optional evidence)" if check.status == NOT_VERIFIED and check.source in verdict.optional \
                else ""
            evidence = "" if check.evidence is None else f" [{check.evidence} observed]"
            print(f"  {mark} {check.transport + ':' if check.transport else ''}{check.name}{evidence}: "
                  f"{check.observed}{optional}")
        for figure in verdict.figures:
            print(f"  note {figure.name} (report only): {figure.value}")
    return 0 if verdict.passed else 1
