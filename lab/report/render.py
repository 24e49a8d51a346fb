"""Reports of a judged run: report.json for machines, report.md for people, goodput.svg to look at.

Pure functions from a verdict's dict (``Verdict.to_dict()`` in lab.verify.judge) and the run's
timeline to text, plus one writer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab.observe.timeline import Timeline
from lab.report.metrics import goodput_series, network_events
from lab.report.plot import goodput_svg

PLOT = "goodput.svg"
MARKS = {"passed": "yes", "not verified": "**not verified**"}  # anything else: failed


def _fmt(value: Any) -> str:
    if value is None:
        return "not observed"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def report_markdown(report: dict[str, Any], description: str = "", plot: str | None = None) -> str:
    verdict = "PASSED" if report["passed"] else "FAILED"
    tally = ", ".join(f"{n} {status}" for status, n in sorted(report.get("tally", {}).items()))
    lines = [f"# {report['scenario']}: {verdict}", "", f"Run `{report['run_id']}`, {report['duration_s']:.1f} s; "
             f"checks: {tally}.", ""]
    if description:
        lines += ["> " + line for line in description.strip().splitlines()] + [""]
    if report.get("error"):
        lines += [f"**Error:** {report['error']}", ""]
    if report.get("optional_evidence"):
        lines += [f"Optional evidence (may be not verified without failing): {', '.join(report['optional_evidence'])}",
                  ""]
    lines += ["## Checks", "", "| check | transport | source | verdict | evidence | observed | expected |",
              "|---|---|---|---|---|---|---|"]
    for check in report["checks"]:
        mark = MARKS.get(check.get("status", ""), "**NO**")
        evidence = "" if check.get("evidence") is None else check["evidence"]
        lines.append(f"| {check['name']} | {check.get('transport') or ''} | {check.get('source', '')} | {mark} | "
                     f"{evidence} | {check['observed']} | {check['expected']} |")
    if report.get("figures"):
        lines += ["", "## Observed (report only, not checks)", "", "| figure | source | value |", "|---|---|---|"]
        for figure in report["figures"]:
            lines.append(f"| {figure['name']} | {figure['source']} | {figure['value']} |")
    by_transport = report["metrics"].get("by_transport", {})
    if by_transport:
        names = list(by_transport)
        keys = ["disruption_ms", "disruption_ongoing", "recovery_ms", "validation_ms", "handshakes", "paths_seen",
                "ips_seen", "paths_validated", "cid_changes", "migrations", "reconnects", "bytes", "goodput_mbps",
                "duration_s"]
        lines += ["", "## Metrics", "", "| metric | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        for key in keys:
            lines.append(f"| {key} | " + " | ".join(_fmt(by_transport[n].get(key)) for n in names) + " |")
    if plot:
        lines += ["", "## Goodput", "", f"![goodput over time with the network events]({plot})"]
    lines += ["", "Artifacts: `events.jsonl` (the merged timeline), `logs/`, `client/` (qlog, key logs), "
              "`server/qlog/`, `captures/` (pcapng with the key log injected). Re-judge with "
              "`python -m lab verify <this directory>`.", ""]
    return "\n".join(lines)


def goodput_chart(timeline: Timeline, transports: list[str], title: str) -> str:
    # The time axis starts with the workload, not with the reset and impairment set-up before it.
    client_times = [e.ts for e in timeline if e.role == "client"]
    t0 = min(client_times) - 0.2 if client_times else timeline.start
    series = {t: goodput_series(timeline, 100, t0, t) for t in transports}
    markers = [m for m in network_events(timeline, t0) if m.t >= 0]
    return goodput_svg(series, markers, f"{title}: goodput (0 s = the client starts)")


def write_reports(run_dir: Path, report: dict[str, Any], timeline: Timeline, description: str = "") -> None:
    """report.json, report.md and goodput.svg in the run directory."""
    plot = None
    if len(timeline):
        (run_dir / PLOT).write_text(goodput_chart(timeline, list(report["metrics"]["by_transport"]),
                                                  report["scenario"]))
        plot = PLOT
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (run_dir / "report.md").write_text(report_markdown(report, description, plot))
