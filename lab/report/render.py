"""Reports of a judged run: report.json for machines, report.md for people, goodput.svg to look at,
report.html to explore (with goodput.csv and sequence.svg).

Pure functions from a verdict's dict (``Verdict.to_dict()`` in lab.verify.judge) and the run's
timeline to text, plus one writer, :func:`write_reports`, the edge that reads the run directory's
files (events.jsonl, topology.json, the qlog) and has the captures decoded.

Decoding the captures is the judge's business (``lab.verify.pcap.read_quic_packets``, the lab
image's tshark): ``lab.verify`` sits above ``lab.report``, so the writer is handed that function as
``read_packets`` rather than importing it. Without it, or when decoding fails (no Docker, no
image), report.html is still written, and says why it shows no packets.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lab.observe.timeline import Timeline
from lab.report.call import caller_sentence
from lab.report.charts import build_charts, goodput_csv, time_zero
from lab.report.evidence import event_lines
from lab.report.html import (
    CONFORMANCE_NOTE,
    CONFORMANCE_TITLE,
    HtmlInputs,
    conformance_groups,
    conformance_tally,
    report_html,
)
from lab.report.metrics import goodput_series, network_events
from lab.report.player import viewer_sentence
from lab.report.plot import goodput_svg
from lab.report.qlog import QlogTrace, qlog_traces
from lab.report.sequence import SequenceDiagram, build_sequence, sequence_svg
from lab.report.strategies import markdown as strategies_markdown
from lab.scenario.record import CAPTURES, EVENTS, KEYLOG, SERVER_CAPTURE, TOPOLOGY_COPY
from lab.topology.model import TopologyError, topology_from_config

PLOT = "goodput.svg"
HTML = "report.html"
GOODPUT_CSV = "goodput.csv"
SEQUENCE_SVG = "sequence.svg"
# (pcap, keylog or None, UDP ports decoded as QUIC) -> packets: lab.verify.pcap.read_quic_packets
PacketReader = Callable[[Path, Path | None, Iterable[int]], Sequence[Any]]
# anything else: failed
MARKS = {"passed": "yes", "not verified": "**not verified**", "not applicable": "not applicable",
         "expected failure": "expected failure", "unexpected pass": "**unexpected pass**"}


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
    known = [c for c in report["checks"] if c.get("known_failure")]
    if known:
        lines += ["", "## Known failures (recorded in the scenario, shown, not counted)", ""]
        lines += [f"- **{c['name']}** ({c.get('status')}): {c['known_failure']}" for c in known]
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
    lines += experience_markdown(by_transport)
    lines += strategies_markdown(report.get("strategies") or [])
    lines += conformance_markdown(report.get("conformance"))
    if plot:
        lines += ["", "## Goodput", "", f"![goodput over time with the network events]({plot})"]
    lines += ["", "Artifacts: `events.jsonl` (the merged timeline), `logs/`, `client/` (qlog, key logs), "
              "`server/qlog/`, `captures/` (pcapng with the key log injected). Re-judge with "
              "`python -m lab verify <this directory>`.", ""]
    return "\n".join(lines)


def experience_markdown(by_transport: dict[str, dict[str, Any]]) -> list[str]:
    """A plain "viewer"/"caller" line per transport: did a person notice, judged from the measured
    buffer and message arrivals (lab.report.player, lab.report.call); nothing when neither was measured."""
    lines = []
    for name, metrics in by_transport.items():
        if metrics.get("viewer"):
            lines.append(f"- **viewer ({name})**: {viewer_sentence(metrics['viewer'])}")
        if metrics.get("caller"):
            lines.append(f"- **caller ({name})**: {caller_sentence(metrics['caller'])}")
    return ["", "## What a person would notice", "", *lines] if lines else []


def conformance_markdown(findings: Sequence[dict[str, Any]] | None) -> list[str]:
    """report.md's conformance section: ``report["conformance"]`` by endpoint, violations first with their frames."""
    lines = ["", f"## {CONFORMANCE_TITLE}", ""]
    if findings is None:
        return lines + ["Not judged: this report has no conformance findings."]
    if not findings:
        return lines + ["No findings."]
    lines.append(f"{CONFORMANCE_NOTE} {conformance_tally(findings)}")
    for endpoint, group in conformance_groups(findings):
        lines += ["", f"### {endpoint}", "", "| verdict | rule | level | what it asks | what the capture shows | "
                  "frames (server-side.pcapng) |", "|---|---|---|---|---|---|"]
        for f in group:
            verdict = f"**{f.get('verdict')}**" if f.get("verdict") == "violation" else str(f.get("verdict", ""))
            frames = ", ".join(str(n) for n in f.get("frames") or ())
            cells = [verdict, f.get("rule", ""), f.get("level", ""), f.get("title", ""), f.get("summary", ""), frames]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return lines


def goodput_chart(timeline: Timeline, transports: list[str], title: str) -> str:
    # The time axis starts with the workload, not with the reset and impairment set-up before it.
    client_times = [e.ts for e in timeline if e.role == "client"]
    t0 = min(client_times) - 0.2 if client_times else timeline.start
    series = {t: goodput_series(timeline, 100, t0, t) for t in transports}
    markers = [m for m in network_events(timeline, t0) if m.t >= 0]
    return goodput_svg(series, markers, f"{title}: goodput (0 s = the client starts)")


def write_reports(run_dir: Path, report: dict[str, Any], timeline: Timeline, description: str = "",
                  read_packets: PacketReader | None = None) -> None:
    """report.json, report.md, goodput.svg, report.html, goodput.csv (and sequence.svg) in the run directory.

    ``read_packets``: the judge's capture decoder (``lab.verify.pcap.read_quic_packets``), for the
    packet sequence and the evidence links of report.html.
    """
    run_dir = Path(run_dir)
    plot = None
    if len(timeline):
        (run_dir / PLOT).write_text(goodput_chart(timeline, list(report["metrics"]["by_transport"]),
                                                  report["scenario"]))
        plot = PLOT
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (run_dir / "report.md").write_text(report_markdown(report, description, plot))
    write_html(run_dir, report, timeline, description, read_packets)


# --- report.html: the edge that gathers the run directory's files ------------------------------------------------


@functools.lru_cache(maxsize=2)
def _qlog_document(path: str, mtime_ns: int, size: int) -> Any:
    return json.loads(Path(path).read_text())


def read_qlog_document(path: Path) -> Any:
    """A qlog file parsed, once per version of the file: the judge and report.html read the same
    files one after the other (a flapping run's two are 16 and 19 MB, 0.4-0.8 s each to parse)."""
    stat = path.stat()
    return _qlog_document(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def read_qlogs(run_dir: Path) -> tuple[list[QlogTrace], dict[str, list[str]], list[str]]:
    """Both sides' qlog traces, side -> files (relative to the run directory), and the unreadable files."""
    traces: list[QlogTrace] = []
    files: dict[str, list[str]] = {}
    bad: list[str] = []
    for side in ("client", "server"):
        for path in sorted((run_dir / side / "qlog").glob("*.qlog")):
            relative = path.relative_to(run_dir).as_posix()
            files.setdefault(side, []).append(relative)
            try:
                traces += qlog_traces(read_qlog_document(path), relative)
            except (OSError, ValueError) as exc:
                bad.append(f"{relative}: unreadable ({exc})")
    return traces, files, bad


def _decode(read_packets: PacketReader, captures: dict[str, Path], keylog: Path | None, ports: tuple[int, ...]
            ) -> dict[str, Sequence[Any]]:
    """Decode several captures at once (each is a container of the lab image)."""
    with ThreadPoolExecutor(max_workers=max(len(captures), 1)) as pool:
        futures = {name: pool.submit(read_packets, path, keylog, ports) for name, path in captures.items()}
        return {name: future.result() for name, future in futures.items()}


def decode_captures(run_dir: Path, read_packets: PacketReader | None, servers: set[str], routers: dict[str, str],
                    ports: tuple[int, ...]) -> tuple[Sequence[Any] | None, dict[str, Sequence[Any]], str]:
    """The server side's packets (None when not decoded), router -> its client side's packets, and a note."""
    capture = run_dir / SERVER_CAPTURE
    if not capture.is_file():
        return None, {}, f"there is no {SERVER_CAPTURE} (a run made with --no-capture has none)"
    if read_packets is None:
        return None, {}, ("report.html was written without a capture decoder; `python -m lab open --rebuild "
                          "RUN_DIR` writes it again with the captures decoded")
    keylog = run_dir / KEYLOG
    key = keylog if keylog.is_file() else None
    started = time.monotonic()
    try:
        wan = _decode(read_packets, {"server": capture}, key, ports)["server"]
        crossed = {p.src_ip for p in wan} | {p.dst_ip for p in wan}
        lans = {router: run_dir / CAPTURES / f"{router}-lan.pcapng" for router, ip in routers.items()
                if ip in crossed and (run_dir / CAPTURES / f"{router}-lan.pcapng").is_file()}
        lan = _decode(read_packets, lans, key, ports) if lans else {}
    except Exception as exc:  # noqa: BLE001 - any failure of the decoder (no Docker, no image): the page says it
        message = str(exc).splitlines()[0] if str(exc).strip() else repr(exc)
        return None, {}, f"decoding {SERVER_CAPTURE} failed: {message}"
    names = ", ".join([SERVER_CAPTURE] + [f"{CAPTURES}/{r}-lan.pcapng" for r in lan])
    return wan, dict(lan), (f"{len(wan):,} QUIC packets in {SERVER_CAPTURE}; decoded {names} with the lab image's "
                            f"tshark in {time.monotonic() - started:.1f} s.")


def write_html(run_dir: Path, report: dict[str, Any], timeline: Timeline, description: str = "",
               read_packets: PacketReader | None = None) -> Path:
    """report.html and goodput.csv (and sequence.svg when the captures draw one)."""
    events_file = run_dir / EVENTS
    events = event_lines(events_file.read_text(encoding="utf-8", errors="replace")) if events_file.is_file() else []
    t0 = time_zero(timeline)
    servers: set[str] = set()
    routers: dict[str, str] = {}
    ports: tuple[int, ...] = ()
    topology_note = ""
    try:
        topology = topology_from_config(json.loads((run_dir / TOPOLOGY_COPY).read_text()))
        servers = {topology.server_address, topology.server_preferred_address}
        routers = {r: topology.router_public_address(r) for r in topology.routers}
        ports = (topology.server_port, topology.server_preferred_port)
    except (OSError, ValueError, KeyError, TopologyError) as exc:
        topology_note = f"{TOPOLOGY_COPY} unreadable ({exc}): the lanes and directions are unknown"
    packets, lan, packets_note = (None, {}, topology_note) if topology_note else decode_captures(
        run_dir, read_packets, servers, routers, ports)
    sequence: SequenceDiagram | None = None
    sequence_note = ""
    if packets is not None:
        pairs = [(e.number, e.data) for e in events if e.data]
        sequence = build_sequence(packets, lan, servers=servers, routers=routers, events=pairs, t0=t0)
        if not sequence.messages:
            sequence_note = f"no QUIC datagram between the client and the server in {SERVER_CAPTURE}"
    else:
        sequence_note = packets_note
    traces, qlog_files, bad = read_qlogs(run_dir)
    transports = list((report.get("metrics") or {}).get("by_transport") or {}) or timeline.transports()
    charts = build_charts(timeline, transports, traces, t0)
    (run_dir / GOODPUT_CSV).write_text(goodput_csv(charts.goodput))
    if sequence is not None and sequence.messages:
        (run_dir / SEQUENCE_SVG).write_text(sequence_svg(sequence, standalone=True))
    else:
        (run_dir / SEQUENCE_SVG).unlink(missing_ok=True)  # a diagram of an earlier writing would not match this page
    artifacts = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")
                       if p.is_file() and p.name != HTML)
    inputs = HtmlInputs(report=report, events=events, t0=t0, description=description, packets=packets,
                        packets_note=packets_note, sequence=sequence, sequence_note=sequence_note,
                        charts=charts.svgs, chart_notes=tuple(bad) + charts.notes, servers=frozenset(servers),
                        qlog_files=qlog_files, artifacts=artifacts)
    path = run_dir / HTML
    path.write_text(report_html(inputs), encoding="utf-8")
    return path
