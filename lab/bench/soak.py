"""The soak: every catalogue scenario N times, its pass rate per scenario and the failing checks of
every failed run (pure: runs in, tallies, tables and a chart out; `lab.cli.soak` drives the lab).

A run is the verdict of one `scenario run` (captures on, judged as always); a run the lab could
not finish (a fault, a timeout) is a failed run with its error. The goal is N/N everywhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from html import escape
from typing import Any

from lab.bench.figures import Distribution


@dataclass(frozen=True)
class FailedCheck:
    """A check that stood in the way of a pass (``lab.verify.judge.Verdict.counts``)."""

    name: str
    status: str  # failed | not verified | unexpected pass
    observed: str
    transport: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.transport})" if self.transport else self.name


@dataclass(frozen=True)
class SoakRun:
    """One run of one scenario in the soak."""

    scenario: str
    number: int  # 1..N
    passed: bool
    duration_s: float
    run_dir: str
    error: str | None = None
    failed: tuple[FailedCheck, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SoakRun:
        return cls(**{**data, "failed": tuple(FailedCheck(**c) for c in data.get("failed", ()))})


@dataclass(frozen=True)
class Tally:
    """A scenario's runs: how many passed, and which checks failed in how many runs."""

    scenario: str
    runs: int
    passed: int
    failing: dict[str, int] = field(default_factory=dict)  # check label (or "error") -> runs it failed in
    duration_s: Distribution = field(default_factory=lambda: Distribution.of([]))

    @property
    def rate(self) -> float:
        return self.passed / self.runs if self.runs else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "runs": self.runs, "passed": self.passed, "pass_rate": round(self.rate, 4),
                "failing": self.failing, "duration_s": self.duration_s.to_dict()}


def tally(runs: Iterable[SoakRun]) -> list[Tally]:
    """One tally per scenario, in the order the scenarios first ran (pure)."""
    by_scenario: dict[str, list[SoakRun]] = {}
    for run in runs:
        by_scenario.setdefault(run.scenario, []).append(run)
    tallies = []
    for scenario, found in by_scenario.items():
        failing: Counter[str] = Counter()
        for run in found:
            labels = {c.label for c in run.failed} | ({"error"} if run.error else set())
            failing.update(labels)
        tallies.append(Tally(scenario, len(found), sum(r.passed for r in found),
                             dict(sorted(failing.items(), key=lambda kv: (-kv[1], kv[0]))),
                             Distribution.of(r.duration_s for r in found)))
    return tallies


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_line(run: SoakRun, total: int) -> str:
    """The progress line of one run (pure)."""
    verdict = "PASS" if run.passed else "FAIL"
    line = f"soak: {run.scenario} run {run.number}/{total}: {verdict} ({run.duration_s:.1f} s, {run.run_dir})"
    if run.error:
        line += f": {_short(run.error)}"
    elif run.failed:
        line += ": " + ", ".join(c.label for c in run.failed)
    return line


def failure_lines(runs: Iterable[SoakRun]) -> list[str]:
    """Every failed run with the failing checks and what they observed (pure)."""
    lines = []
    for run in runs:
        if run.passed:
            continue
        lines.append(f"{run.scenario} run {run.number} ({run.run_dir}):")
        if run.error:
            lines.append(f"  error: {_short(run.error)}")
        for check in run.failed:
            lines.append(f"  {check.label}: {check.status}: {_short(check.observed)}")
    return lines


def text_table(tallies: list[Tally]) -> list[str]:
    """The pass rates as aligned text lines (pure)."""
    width = max([len(t.scenario) for t in tallies] + [8])
    lines = [f"{'scenario':<{width}}  passed  rate    failing checks (runs)"]
    for t in tallies:
        failing = ", ".join(f"{name} x{n}" for name, n in t.failing.items()) or "-"
        lines.append(f"{t.scenario:<{width}}  {t.passed:>2}/{t.runs:<3}  {t.rate * 100:5.1f}%  {failing}")
    total_runs, total_passed = sum(t.runs for t in tallies), sum(t.passed for t in tallies)
    lines.append(f"{'all':<{width}}  {total_passed:>2}/{total_runs:<3}  "
                 f"{(total_passed / total_runs * 100 if total_runs else 0):5.1f}%")
    return lines


def markdown(tallies: list[Tally], runs: list[SoakRun], title: str) -> str:
    """soak.md: the table, then every failed run (pure)."""
    out = [f"# {title}", "", "| scenario | passed | pass rate | failing checks (runs) | run time (median) |",
           "|---|---:|---:|---|---:|"]
    for t in tallies:
        failing = ", ".join(f"`{name}` x{n}" for name, n in t.failing.items()) or "-"
        median = t.duration_s.median
        out.append(f"| {t.scenario} | {t.passed}/{t.runs} | {t.rate * 100:.0f}% | {failing} | "
                   f"{'-' if median is None else f'{median:.1f} s'} |")
    failures = failure_lines(runs)
    out += ["", "## Failed runs", ""] + ([f"    {line}" for line in failures] if failures else ["None."])
    return "\n".join(out) + "\n"


def svg(tallies: list[Tally], width: int = 720) -> str:
    """soak.svg: one bar per scenario, its length the pass rate, labelled k/N (pure)."""
    row, left, right, top = 22, 220, 80, 30
    height = top + row * len(tallies) + 30
    span = width - left - right
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="12"><text x="{left}" y="18">pass rate per scenario</text>']
    for i, t in enumerate(tallies):
        y = top + i * row
        colour = "#2e7d32" if t.passed == t.runs else ("#f9a825" if t.rate >= 0.9 else "#c62828")
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{escape(t.scenario)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{span}" height="{row - 6}" fill="#eee"/>')
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{span * t.rate:.1f}" height="{row - 6}" fill="{colour}"/>')
        parts.append(f'<text x="{left + span + 6}" y="{y + 14}">{t.passed}/{t.runs}</text>')
    parts.append("</svg>")
    return "".join(parts)


def report(tallies: list[Tally], runs: list[SoakRun], **context: Any) -> dict[str, Any]:
    """soak.json: the method and context, the tallies, every run (pure)."""
    return {**context, "scenarios": [t.to_dict() for t in tallies], "runs": [r.to_dict() for r in runs],
            "all": {"runs": len(runs), "passed": sum(r.passed for r in runs)}}
