"""A client x server x scenario matrix of runs, as a grid in Markdown and HTML (pure).

One :class:`Cell` per run. As in the quic-interop-runner, ``unsupported`` (a stack exited 127
for the test case) is apart from ``failed``; ``error`` is a run that did not finish (the lab, not
the stack, is then to blame until shown otherwise). Each cell links to its run's own report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import Any

from lab.scenario.record import TIMEOUT_ERROR
from lab.scenario.stacks import STACK_FAILURE, UNSUPPORTED_EXIT

PASS, FAIL, UNSUPPORTED, ERROR = "pass", "fail", "unsupported", "error"
MATRIX_JSON = "matrix.json"


@dataclass(frozen=True)
class Cell:
    client: str
    server: str
    scenario: str
    status: str  # pass | fail | unsupported | error
    reason: str = ""  # the first failing check (or the error), one line
    disruption_ms: float | None = None
    validation_ms: float | None = None
    run: str = ""  # the run's directory, relative to the matrix directory
    violations: int = 0  # RFC 9000 MUST findings (reported, not counted unless --strict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cell_from_report(client: str, server: str, report: Mapping[str, Any], run: str) -> Cell:
    """A cell from a run's report.json (``lab.verify.judge.Verdict.to_dict``)."""
    checks = report.get("checks") or []
    metrics = report.get("metrics") or {}
    exit_check = next((c for c in checks if c.get("name") == "client_exit"), None)
    unsupported = exit_check is not None and f"exited {UNSUPPORTED_EXIT}" in str(exit_check.get("observed"))
    error = report.get("error")
    if error and f"exit code {UNSUPPORTED_EXIT}" in str(error):
        unsupported = True
    optional = report.get("optional_evidence") or []
    failing = [c for c in checks if c.get("status") == "failed"
               or (c.get("status") == "not verified" and c.get("source") not in optional)]
    # A timeout or a foreign server's exit is the stacks' failure (the lab played every step); any other
    # error is the lab's (an action failed, a lab container died) until shown otherwise.
    lab_error = error and not str(error).startswith((TIMEOUT_ERROR, f"{STACK_FAILURE} "))
    if unsupported:
        status, reason = UNSUPPORTED, str(exit_check.get("observed") if exit_check else error)
    elif report.get("passed"):
        status, reason = PASS, ""
    elif lab_error:
        status, reason = ERROR, str(error)
    else:
        status = FAIL
        first = failing[0] if failing else {}
        reason = f"{first.get('name', '?')}: {first.get('observed', '')}" if first else "no check passed"
    violations = sum(1 for f in report.get("conformance") or []
                     if f.get("verdict") == "violation" and f.get("level") == "MUST")
    return Cell(client, server, str(report.get("scenario", "")), status, _one_line(reason),
                metrics.get("disruption_ms"), metrics.get("validation_ms"), run, violations)


def _one_line(text: str, limit: int = 140) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def load_cells(directories: Iterable[Path]) -> list[Cell]:
    """The cells of one or more matrix directories (a sharded CI run assembles its shards)."""
    cells: list[Cell] = []
    directories = [Path(d) for d in directories]
    for directory in directories:
        data = json.loads((directory / MATRIX_JSON).read_text())
        for item in data["cells"]:
            if len(directories) > 1 and item.get("run"):  # links relative to the assembled grid's parent
                item = {**item, "run": f"{directory.name}/{item['run']}"}
            cells.append(Cell(**item))
    return cells


def _axes(cells: list[Cell]) -> tuple[list[str], list[str], list[str]]:
    def order(values: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(values))
    return (order(c.scenario for c in cells), order(c.client for c in cells), order(c.server for c in cells))


def _figures(cell: Cell) -> str:
    parts = []
    if cell.disruption_ms is not None:
        parts.append(f"disruption {cell.disruption_ms:.0f} ms")
    if cell.validation_ms is not None:
        parts.append(f"validation {cell.validation_ms:.1f} ms")
    if cell.violations:
        parts.append(f"{cell.violations} MUST violation(s)")
    return ", ".join(parts)


METHOD = ("disruption: the longest silence of the client at the server's side; validation: the slowest PATH_CHALLENGE "
          "to PATH_RESPONSE at the server; both from the server-side capture of that run (one run per cell). "
          "MUST violations: RFC 9000 conformance findings from the same capture, reported apart from the verdict.")


def grid_markdown(cells: list[Cell], title: str) -> str:
    scenarios, clients, servers = _axes(cells)
    by_key = {(c.scenario, c.client, c.server): c for c in cells}
    lines = [f"# {title}", "", "Rows: client; columns: server. " + METHOD, ""]
    for scenario in scenarios:
        lines += [f"## {scenario}", "", "| client \\ server | " + " | ".join(servers) + " |",
                  "|---|" + "---|" * len(servers)]
        for client in clients:
            row = []
            for server in servers:
                cell = by_key.get((scenario, client, server))
                if cell is None:
                    row.append("-")
                    continue
                text = f"**{cell.status}**"
                if cell.run:
                    text = f"[{text}]({cell.run}/report.md)"
                extra = "; ".join(x for x in (_figures(cell), cell.reason) if x)
                row.append(text + (f"<br>{extra.replace('|', '/')}" if extra else ""))
            lines.append(f"| {client} | " + " | ".join(row) + " |")
        lines.append("")
    tally = {s: sum(1 for c in cells if c.status == s) for s in (PASS, FAIL, UNSUPPORTED, ERROR)}
    lines.append("Cells: " + ", ".join(f"{n} {s}" for s, n in tally.items()))
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:sans-serif;margin:2em;max-width:80em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.4em .6em;vertical-align:top}
th{background:#f3f3f3}.pass{background:#e3f6e3}.fail{background:#fbe3e3}.unsupported{background:#eee}
.error{background:#fdf0d0}.status{font-weight:bold}.why{font-size:.85em;color:#444}"""


def grid_html(cells: list[Cell], title: str) -> str:
    """One self-contained page: inline CSS, no script, links to each cell's report.html."""
    scenarios, clients, servers = _axes(cells)
    by_key = {(c.scenario, c.client, c.server): c for c in cells}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1><p>Rows: client; columns: server. "
             f"{escape(METHOD)}</p>"]
    for scenario in scenarios:
        parts.append(f"<h2>{escape(scenario)}</h2><table><tr><th>client \\ server</th>"
                     + "".join(f"<th>{escape(s)}</th>" for s in servers) + "</tr>")
        for client in clients:
            parts.append(f"<tr><th>{escape(client)}</th>")
            for server in servers:
                cell = by_key.get((scenario, client, server))
                if cell is None:
                    parts.append("<td>-</td>")
                    continue
                status = escape(cell.status)
                label = (f"<a class='status' href='{escape(cell.run)}/report.html'>{status}</a>" if cell.run
                         else f"<span class='status'>{status}</span>")
                detail = "".join(f"<div class='why'>{escape(x)}</div>" for x in (_figures(cell), cell.reason) if x)
                parts.append(f"<td class='{status}'>{label}{detail}</td>")
            parts.append("</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def write_matrix(directory: Path, cells: list[Cell], title: str, extra: Mapping[str, Any] | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MATRIX_JSON).write_text(json.dumps({"title": title, **(extra or {}),
                                                      "cells": [c.to_dict() for c in cells]}, indent=1) + "\n")
    (directory / "matrix.md").write_text(grid_markdown(cells, title))
    (directory / "index.html").write_text(grid_html(cells, title))
