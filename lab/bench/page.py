"""A bench run's report.html (pure): every figure with its runs, its limit and links to its runs.

One self-contained file next to bench.json: inline CSS and SVG, no script, nothing loaded from
anywhere. Each figure links to the run directories it was computed from (their own report.html).
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import Any

from lab.bench.figures import histogram_svg

_CSS = """body{font-family:sans-serif;margin:2em;max-width:75em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f3f3f3}.bad{color:#b00}.good{color:#070}code{background:#f6f6f6;padding:0 .2em}"""


def _dist(d: dict[str, Any] | None) -> str:
    if not d or not d.get("runs"):
        return "-"
    return f"{d['median']:.0f} [{d['minimum']:.0f}-{d['maximum']:.0f}] ms"


def _runs(dirs: list[str], base: Path) -> str:
    links = []
    for number, run in enumerate(dirs, start=1):
        target = Path(run) / "report.html"
        href = os.path.relpath(target, base) if Path(run).is_absolute() else str(target)
        links.append(f'<a href="{escape(href)}">{number}</a>')
    return " ".join(links)


def bench_html(results: dict[str, Any], directory: Path) -> str:
    """The page for ``results`` (bench.json's content) written in ``directory``."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>bench {escape(directory.name)}</title>"
             f"<style>{_CSS}</style></head><body><h1>bench {escape(directory.name)}</h1>",
             "<p>Every figure is a distribution over its runs: median [min-max]. The numbers link to the runs "
             "(their own report.html). Limits: docs/references.md, \"Physical limits of migration\".</p>"]
    noise = results.get("noise")
    if noise:
        floor = noise["noise_floor_ms"]
        ok = noise["within_limit"] == noise["runs"]
        parts.append(f"<h2>Noise floor</h2><p>{escape(noise['method'])}.</p><p class='{'good' if ok else 'bad'}'>"
                     f"longest gap {_dist(floor)} over {noise['runs']} runs; {noise['within_limit']}/{noise['runs']} "
                     f"within {noise['limit_ms']:g} ms (ratio max/limit "
                     f"{(noise['ratio_to_limit'] or 0):.2f}). Runs: {_runs(noise['run_dirs'], directory)}</p>")
        delivery = noise.get("delivery_floor_ms")
        if delivery and delivery.get("runs"):
            parts.append(f"<p>The same data as the client's application read it, its own scheduling delay included: "
                         f"longest gap {_dist(delivery)}; {noise['delivery_within_limit']}/{noise['runs']} within "
                         f"{noise['limit_ms']:g} ms.</p>")
        parts.append(histogram_svg(noise))
        wakeups = noise.get("machine_wakeups")
        if wakeups:
            parts.append(f"<p>The machine, lab idle: a thread sleeping {wakeups['period_ms']:g} ms at a time for "
                         f"{wakeups['seconds']:g} s was woken up to {wakeups['worst_ms']:.1f} ms late "
                         f"({wakeups['late_3ms']} of {wakeups['sleeps']} sleeps 3 ms late or more), so a sender "
                         f"paced every {wakeups['tick_ms']:g} ms can have gaps of {wakeups['paced_floor_ms']:.1f} ms "
                         "from its wake-ups alone.</p>")
        share = noise.get("machine_share")
        if share and share["lab_floor_ms"].get("runs"):
            parts.append(f"<p>The machine's share, measured beside the runs: {escape(share['method'])}. "
                         f"{share['gaps_with_machine']} of the {share['gaps_at_limit']} gaps &ge; "
                         f"{noise['limit_ms']:g} ms had the machine holding a core ({share['machine_ms_in_gaps']:.1f}"
                         f" ms of them). The lab's floor less that share: {_dist(share['lab_floor_ms'])}; "
                         f"{share['lab_within_limit']}/{noise['runs']} within {noise['limit_ms']:g} ms.</p>")
            if share.get("steal_ms_per_run") is not None:
                steal = ", ".join("?" if v is None else f"{v:.0f}" for v in share["steal_ms_per_run"])
                parts.append(f"<p>Steal during each run's transfer: {steal} ms. In the {share['calm_runs']} calm "
                             f"runs (steal &le; {share['calm_steal']:.0%} of the cores' time): "
                             f"{share['calm_within_limit']}/{share['calm_runs']} within {noise['limit_ms']:g} ms."
                             "</p>")
        machine = noise.get("machine_floor") or []
        if machine:
            parts.append("<p>The machine itself, lab idle (busy clock readers, lab.bench.machine):</p><table><tr>"
                         "<th>busy cores</th><th>seconds</th><th>longest gap</th><th>gaps &ge; limit</th>"
                         "<th>stolen by the hypervisor</th></tr>")
            for entry in machine:
                parts.append(f"<tr><td>{entry['busy_cores']}</td><td>{entry['seconds']:g}</td>"
                             f"<td>{entry['longest_gap_ms']:.1f} ms</td><td>{entry['gaps_at_limit']}</td>"
                             f"<td>{entry['stolen_gaps']} gaps, {entry['stolen_ms']:.0f} ms</td></tr>")
            parts.append("</table>")
    migration = results.get("migration")
    if migration:
        parts.append("<h2>Migration</h2><table><tr><th>scenario</th><th>r</th><th>transport</th><th>disruption</th>"
                     "<th>recovery</th><th>validation</th><th>limit</th><th>ratio</th><th>runs</th></tr>")
        for entry in migration:
            for transport, figures in entry["transports"].items():
                limit = figures.get("limit") or {}
                ratio = limit.get("ratio_of_median")
                ratio_text = "-" if ratio is None else f"{ratio:.2f}"
                limit_text = f"{limit['limit_ms']:.0f} ms ({escape(limit['rule'])})" if limit else "-"
                parts.append(f"<tr><td>{escape(entry['scenario'])}</td><td>{entry['rtt_ms']:g} ms</td>"
                             f"<td>{escape(transport)}</td><td>{_dist(figures.get('disruption_ms'))}</td>"
                             f"<td>{_dist(figures.get('recovery_ms'))}</td><td>{_dist(figures.get('validation_ms'))}"
                             f"</td><td>{limit_text}</td><td>{ratio_text}</td>"
                             f"<td>{_runs(entry['run_dirs'], directory)}</td></tr>")
        parts.append("</table>")
    found = results.get("detection")
    if found:
        parts.append(f"<h2>Detection delay</h2><p>{escape(found['method'])} ({escape(found['scenario'])}).</p>"
                     "<table><tr><th>probe_after</th><th>disruption</th><th>probes sent</th><th>runs</th></tr>")
        for row in found["rows"]:
            probes = row["probes"]
            shown = "-" if not probes.get("runs") else \
                f"{probes['median']:g} [{probes['minimum']:g}-{probes['maximum']:g}]"
            parts.append(f"<tr><td>{row['probe_after_ms']:g} ms</td><td>{_dist(row['disruption_ms'])}</td>"
                         f"<td>{shown}</td><td>{_runs(row['run_dirs'], directory)}</td></tr>")
        parts.append("</table>")
    impair = results.get("impair")
    if impair:
        parts.append(f"<h2>Impairment accuracy</h2><p>mode {escape(str(impair.get('mode', '?')))} on "
                     f"{escape(str(impair.get('network', '?')))}</p><table><tr><th>figure</th><th>measured</th>"
                     "<th>ratio to configured</th></tr>")
        for key in ("rtt", "loss", "rate"):
            data = impair.get(key) or {}
            shown = {k: v for k, v in data.items() if k != "ratio" and not isinstance(v, dict | list)}
            ratio = data.get("ratio")
            parts.append(f"<tr><td>{key}</td><td>{escape(str(shown))}</td>"
                         f"<td>{'-' if ratio is None else f'{ratio:.3f}'}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
