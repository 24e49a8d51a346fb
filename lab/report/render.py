"""Reports of a run: report.json for machines, report.md for people (pure functions + writers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab.verify.checks import CheckResult


def report_dict(scenario: str, run_id: str, passed: bool, checks: list[CheckResult], metrics: dict[str, Any],
                error: str | None, duration_s: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report's JSON: `metrics` holds the first transport's figures at top level (disruption_ms,
    validation_ms, handshakes, paths_seen) and every transport's under `by_transport`."""
    first = next(iter(metrics.values()), {})
    return {
        "scenario": scenario,
        "run_id": run_id,
        "passed": passed,
        "error": error,
        "duration_s": round(duration_s, 3),
        "checks": [c.to_dict() for c in checks],
        "metrics": {**first, "by_transport": metrics},
        **(extra or {}),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "not observed"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def report_markdown(report: dict[str, Any], description: str = "", plot: str | None = None) -> str:
    verdict = "PASSED" if report["passed"] else "FAILED"
    lines = [f"# {report['scenario']}: {verdict}", "", f"Run `{report['run_id']}`, {report['duration_s']:.1f} s.", ""]
    if description:
        lines += ["> " + line for line in description.strip().splitlines()] + [""]
    if report.get("error"):
        lines += [f"**Error:** {report['error']}", ""]
    lines += ["## Checks", "", "| check | transport | passed | observed | expected |", "|---|---|---|---|---|"]
    for check in report["checks"]:
        mark = "yes" if check["passed"] else "**NO**"
        lines.append(f"| {check['name']} | {check.get('transport') or ''} | {mark} | {check['observed']} | "
                     f"{check['expected']} |")
    by_transport = report["metrics"].get("by_transport", {})
    if by_transport:
        names = list(by_transport)
        keys = ["disruption_ms", "recovery_ms", "validation_ms", "handshakes", "paths_seen", "ips_seen",
                "paths_validated", "cid_changes", "migrations", "reconnects", "bytes", "goodput_mbps", "duration_s"]
        lines += ["", "## Metrics", "", "| metric | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        for key in keys:
            lines.append(f"| {key} | " + " | ".join(_fmt(by_transport[n].get(key)) for n in names) + " |")
    if plot:
        lines += ["", "## Goodput", "", f"![goodput over time with the network events]({plot})"]
    captures = report.get("captures")
    if captures:
        lines += ["", "## Capture checks (tshark)", "", "| check | passed | observed | expected |", "|---|---|---|---|"]
        for check in captures.get("checks", []):
            lines.append(f"| {check['name']} | {'yes' if check['passed'] else '**NO**'} | {check['observed']} | "
                         f"{check['expected']} |")
    lines += ["", "Artifacts: `events.jsonl` (the merged timeline), `logs/`, `client/` (qlog, key logs), "
              "`server/qlog/`, `captures/` (pcapng with the key log injected).", ""]
    return "\n".join(lines)


def write_reports(run_dir: Path, report: dict[str, Any], description: str = "", plot: str | None = None) -> None:
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (run_dir / "report.md").write_text(report_markdown(report, description, plot))
