"""report.html: one self-contained file for a judged run (pure: data in, text out).

Everything is inline (CSS, a few lines of JS, SVG); the page loads nothing, so it opens the same
with no network. Sections: the verdict and every check with links to its evidence (capture frames,
event lines, qlog files), the RFC 9000 conformance findings per endpoint (apart from the checks),
the figures and metrics, the packet sequence of the migration drawn from the captures,
goodput/RTT/cwnd over time from the qlog, the packets the page refers to, every event, and how to
open the artifacts in qvis and Wireshark. Every value shown is read from the run's files
(report.json from the judge, events.jsonl, the qlog, the captures decoded by the lab image's
tshark); where a source is missing the page says so instead of drawing anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from lab.report.evidence import EventLine, Evidence, check_evidence
from lab.report.sequence import Message, SequenceDiagram, describe_packet, sequence_svg

__all__ = ["CONFORMANCE_NOTE", "CONFORMANCE_TITLE", "HtmlInputs", "QVIS", "conformance_groups", "conformance_tally",
           "event_summary", "report_html"]

QVIS = "https://qvis.quictools.info/"  # a link for the reader, never loaded by the page
BULK = frozenset({"progress", "data_gap"})  # event kinds folded away by default (shown when linked)
_SKIP_KEYS = ("type", "ts", "mono", "role", "conn", "transport")
CONFORMANCE_TITLE = "Conformance (RFC 9000, from the server-side capture)"
CONFORMANCE_NOTE = ("Findings about the endpoints (what each one sent, judged against RFC 9000 by "
                    "lab/verify/conformance.py), apart from the checks: they do not change the verdict. "
                    "\"not observed\": nothing in the capture to judge, or nothing a server-side capture can tell.")
_VERDICT_ORDER = {"violation": 0, "compliant": 1, "not observed": 2}
_CONFORMANCE_CELLS = (("rule", "mono"), ("level", ""), ("title", ""), ("direction", "mono"), ("summary", "mono"))


@dataclass(frozen=True)
class HtmlInputs:
    report: Mapping[str, Any]  # report.json (Verdict.to_dict())
    events: Sequence[EventLine]
    t0: float  # the zero of every relative time on the page (epoch s)
    description: str = ""
    packets: Sequence[Any] | None = None  # server-side.pcapng decoded; None: not decoded
    packets_note: str = ""  # why not, or what was decoded
    sequence: SequenceDiagram | None = None
    sequence_note: str = ""
    charts: Sequence[str] = ()  # inline SVG
    chart_notes: Sequence[str] = ()
    servers: frozenset[str] = frozenset()  # the server's IPs
    qlog_files: Mapping[str, Sequence[str]] = field(default_factory=dict)  # side -> paths in the run dir
    artifacts: Sequence[str] = ()  # files of the run directory to list (relative paths)


CSS = """
:root { --ok: #1a7f37; --fail: #cf222e; --nv: #9a6700; --muted: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2328; background: #fff; }
header { padding: 16px 24px; border-bottom: 1px solid var(--line); background: #f6f8fa; }
header h1 { margin: 0 0 6px; font-size: 22px; }
nav a { margin-right: 14px; font-size: 14px; }
main { padding: 0 24px 40px; max-width: 1400px; }
section { margin-top: 28px; }
h2 { font-size: 18px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; color: #fff; font-weight: 600; }
.badge.passed { background: var(--ok); } .badge.failed { background: var(--fail); }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { border: 1px solid var(--line); padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #f6f8fa; }
td.status { font-weight: 600; white-space: nowrap; }
tr.passed td.status { color: var(--ok); } tr.failed td.status { color: var(--fail); }
tr.not-verified td.status { color: var(--nv); }
tr.expected-failure td.status { color: var(--nv); } tr.unexpected-pass td.status { color: var(--fail); }
tr.failed, tr.violation { background: #fff5f5; }
tr.violation td.status { color: var(--fail); } tr.compliant td.status { color: var(--ok); }
tr.not-observed td.status { color: var(--muted); }
.mono, td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.links a { margin-right: 6px; white-space: nowrap; }
.muted { color: var(--muted); }
.note { color: var(--muted); font-size: 13px; margin: 4px 0; }
blockquote { margin: 8px 0; padding: 4px 12px; border-left: 4px solid var(--line); color: #333; white-space: pre-line; }
tr:target, tr.hl { background: #fff8c5 !important; }
tr.bulk { display: none; } body.show-bulk tr.bulk, tr.bulk:target { display: table-row; }
.scroll { overflow-x: auto; }
svg text { white-space: pre; }
svg a text { text-decoration: underline; }
code { background: #f6f8fa; padding: 1px 4px; border-radius: 4px; }
"""

JS = """
(function () {
  var toggle = document.getElementById('show-bulk');
  if (toggle) toggle.addEventListener('change', function () {
    document.body.classList.toggle('show-bulk', toggle.checked);
  });
  function reveal() {
    var target = location.hash && document.getElementById(location.hash.slice(1));
    if (target && target.classList.contains('bulk')) target.style.display = 'table-row';
  }
  window.addEventListener('hashchange', reveal);
  reveal();
  document.body.setAttribute('data-rendered', String(document.querySelectorAll('#sequence-diagram .message').length));
})();
"""


def _rel(ts: float | None, t0: float) -> str:
    return "" if ts is None else f"{ts - t0:+.3f}"


def event_summary(line: EventLine) -> str:
    """The event's own fields (those beyond type, time, role, connection and transport), compact."""
    if not line.data:
        return line.raw[:200]
    rest = {k: v for k, v in line.data.items() if k not in _SKIP_KEYS}
    text = ", ".join(f"{k}={json.dumps(v, separators=(',', ':')) if not isinstance(v, str) else v}"
                     for k, v in rest.items())
    return text if len(text) <= 240 else text[:237] + "..."


def _frame_link(frame: int, linked: set[int]) -> str:
    if frame in linked:
        return f'<a href="#f-{frame}">frame {frame}</a>'
    return f'<span title="server-side.pcapng, Wireshark filter frame.number == {frame}">frame {frame}</span>'


def _evidence_cell(evidence: Evidence, linked_frames: set[int]) -> str:
    parts = []
    if evidence.frames:
        frames = " ".join(_frame_link(f, linked_frames) for f in evidence.frames)
        more = f' <span class="muted">+{evidence.frames_more} more</span>' if evidence.frames_more else ""
        parts.append(f"<div>server-side.pcapng: {frames}{more}</div>")
    if evidence.events:
        lines = " ".join(f'<a href="#ev-{n}">events.jsonl:{n}</a>' for n in evidence.events)
        more = f' <span class="muted">+{evidence.events_more} more</span>' if evidence.events_more else ""
        parts.append(f"<div>{lines}{more}</div>")
    if evidence.files:
        parts.append("<div>" + " ".join(f'<a href="{escape(f)}">{escape(f)}</a>' for f in evidence.files) + "</div>")
    if evidence.how:
        parts.append(f'<div class="muted">({escape("; ".join(evidence.how))})</div>')
    return "".join(parts) or '<span class="muted">none located</span>'


def _checks(inputs: HtmlInputs, linked_frames: set[int]) -> str:
    report = inputs.report
    optional = set(report.get("optional_evidence") or [])
    rows = []
    for check in report.get("checks", []):
        status = str(check.get("status", "passed" if check.get("passed") else "failed"))
        evidence = check_evidence(check, inputs.packets, inputs.events, inputs.servers, inputs.qlog_files)
        opt = " (optional evidence)" if status == "not verified" and check.get("source") in optional else ""
        if check.get("known_failure"):
            opt += f' <span class="muted">(known: {escape(str(check["known_failure"]))})</span>'
        name = escape(str(check["name"]))
        anchor = escape(f"check-{check.get('transport') or 'run'}-{check['name']}")
        rows.append(
            f'<tr id="{anchor}" class="{status.replace(" ", "-")}"><td class="status">{escape(status)}{opt}</td>'
            f'<td class="mono">{name}</td><td>{escape(str(check.get("transport") or ""))}</td>'
            f'<td>{escape(str(check.get("source", "")))}</td>'
            f'<td>{"" if check.get("evidence") is None else escape(str(check["evidence"]))}</td>'
            f'<td class="mono">{escape(str(check.get("observed", "")))}</td>'
            f'<td class="mono">{escape(str(check.get("expected", "")))}</td>'
            f'<td class="links">{_evidence_cell(evidence, linked_frames)}</td></tr>')
    head = ("<tr><th>verdict</th><th>check</th><th>transport</th><th>source</th><th>observations</th>"
            "<th>observed</th><th>expected</th><th>evidence</th></tr>")
    note = ""
    if inputs.packets is None:
        note = (f'<p class="note">Capture frames are named but not linked: {escape(inputs.packets_note)}</p>')
    return (f'<section id="checks"><h2>Checks</h2>{note}<div class="scroll"><table>{head}{"".join(rows)}</table>'
            "</div></section>")


def conformance_groups(findings: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """``report["conformance"]`` (Finding.to_dict() each) by endpoint (server first), violations first, then
    MUST before SHOULD, in the judge's order otherwise."""
    endpoints = sorted({str(f.get("endpoint", "")) for f in findings}, key=lambda e: (e != "server", e))
    return [(endpoint, sorted((f for f in findings if str(f.get("endpoint", "")) == endpoint),
                              key=lambda f: (_VERDICT_ORDER.get(str(f.get("verdict")), 3), f.get("level") != "MUST")))
            for endpoint in endpoints]


def conformance_tally(findings: Sequence[Mapping[str, Any]]) -> str:
    broken = [f for f in findings if f.get("verdict") == "violation"]
    return f"{len(broken)} violation(s), {sum(1 for f in broken if f.get('level') == 'MUST')} of a MUST."


def conformance_frames(report: Mapping[str, Any]) -> list[int]:
    return [int(n) for f in report.get("conformance") or () for n in f.get("frames") or ()]


def _conformance(report: Mapping[str, Any], linked_frames: set[int]) -> str:
    head = f'<section id="conformance"><h2>{escape(CONFORMANCE_TITLE)}</h2>'
    findings = report.get("conformance")
    if findings is None:
        return f'{head}<p class="note">Not judged: this report has no conformance findings.</p></section>'
    if not findings:
        return f'{head}<p class="note">No findings.</p></section>'
    parts = [head, f'<p class="note">{escape(CONFORMANCE_NOTE)} {escape(conformance_tally(findings))}</p>']
    for endpoint, group in conformance_groups(findings):
        rows = []
        for f in group:
            verdict = str(f.get("verdict", ""))
            frames = " ".join(_frame_link(int(n), linked_frames) for n in f.get("frames") or ())
            cells = "".join(f'<td class="{cls}">{escape(str(f.get(key, "")))}</td>' for key, cls in _CONFORMANCE_CELLS)
            rows.append(f'<tr class="{escape(verdict.replace(" ", "-"))}"><td class="status">{escape(verdict)}</td>'
                        f'{cells}<td class="links">{frames}</td></tr>')
        parts.append(f"<h3>{escape(endpoint)}</h3><div class=\"scroll\"><table><tr><th>verdict</th><th>rule</th>"
                     "<th>level</th><th>what it asks</th><th>sent</th><th>what the capture shows</th>"
                     f"<th>frames</th></tr>{''.join(rows)}</table></div>")
    return "".join(parts) + "</section>"


def _figures_and_metrics(report: Mapping[str, Any]) -> str:
    parts = []
    if report.get("figures"):
        rows = "".join(f'<tr><td class="mono">{escape(str(f["name"]))}</td><td>{escape(str(f.get("source", "")))}'
                       f'</td><td class="mono">{escape(str(f.get("value", "")))}</td></tr>' for f in report["figures"])
        parts.append('<section id="figures"><h2>Observed (report only, not checks)</h2><table><tr><th>figure</th>'
                     f"<th>source</th><th>value</th></tr>{rows}</table></section>")
    by_transport = (report.get("metrics") or {}).get("by_transport") or {}
    if by_transport:
        names = list(by_transport)
        keys = [k for k in next(iter(by_transport.values())) if k != "transport"]

        def fmt(value: Any) -> str:
            if value is None:
                return '<span class="muted">not observed</span>'
            return escape(f"{value:.1f}" if isinstance(value, float) else str(value))

        rows = "".join(f'<tr><td class="mono">{escape(k)}</td>'
                       + "".join(f"<td>{fmt(by_transport[n].get(k))}</td>" for n in names) + "</tr>" for k in keys)
        head = "".join(f"<th>{escape(n)}</th>" for n in names)
        parts.append(f'<section id="metrics"><h2>Metrics</h2><table><tr><th>metric</th>{head}</tr>{rows}</table>'
                     "</section>")
    return "".join(parts)


def _sequence(inputs: HtmlInputs) -> str:
    diagram = inputs.sequence
    if diagram is None or not diagram.messages:
        why = inputs.sequence_note or "no packets to draw"
        return f'<section id="sequence"><h2>Packet sequence</h2><p class="note">Not drawn: {escape(why)}</p></section>'
    sources = ", ".join(f"<code>captures/{escape(c)}</code>" for c in diagram.captures)
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in diagram.notes)
    extra = f'<p class="note">{escape(inputs.sequence_note)}</p>' if inputs.sequence_note else ""
    return (
        '<section id="sequence"><h2>Packet sequence</h2>'
        f'<p class="note">Drawn from {sources} ({diagram.datagrams:,} server-side datagrams). Time runs downwards '
        "(rows in order, not to scale; times in s from the client's start). Each arrow is one UDP datagram as "
        "captured: between the client and its NAT from the router's <code>-lan</code> capture, between the NAT and "
        "the server from the server side; the labels are the 4-tuples each side saw, the line below is the "
        "datagram's QUIC packets (decrypted with the key log). Drawn: the first and last datagram in each direction "
        "on every path, every one with PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID, RETIRE_CONNECTION_ID, "
        "HANDSHAKE_DONE or CONNECTION_CLOSE, and the first of each run of datagrams one side holds and the other "
        "does not; purple lines are the controller's network actions, grey dots the routers' nat_mapping events."
        f"</p>{extra}{notes}"
        f'<div class="scroll">{sequence_svg(diagram)}</div></section>')


def _packet_rows(inputs: HtmlInputs, frames: Sequence[int]) -> str:
    by_frame: dict[int, list[Any]] = {}
    for packet in inputs.packets or ():
        by_frame.setdefault(packet.frame, []).append(packet)
    messages = {m.wan.frame: m for m in (inputs.sequence.messages if inputs.sequence else []) if m.wan}
    rows = []
    for frame in frames:
        group = by_frame.get(frame)
        if not group:
            continue
        first = group[0]
        message: Message | None = messages.get(frame)
        lan = ""
        if message is not None and message.lan is not None:
            lan = (f"{escape(message.lan.capture)} frame {message.lan.frame}: "
                   f"{escape(message.lan.src)} &gt; {escape(message.lan.dst)}")
        elif message is not None:
            lan = '<span class="muted">not found on the client side</span>' if message.lan_captured else \
                '<span class="muted">client side not captured</span>'
        why = escape("; ".join(message.reasons)) if message is not None else ""
        content = "<br>".join(escape(describe_packet(p)) for p in group)
        rows.append(f'<tr id="f-{frame}"><td>{frame}</td><td>{_rel(first.time, inputs.t0)}</td>'
                    f'<td class="mono">{escape(first.src_ip)}:{first.src_port} &gt; {escape(first.dst_ip)}:'
                    f'{first.dst_port}</td><td class="mono">{lan}</td><td>{first.udp_payload_length}</td>'
                    f'<td class="mono">{content}</td><td class="muted">{why}</td></tr>')
    return "".join(rows)


def _packets(inputs: HtmlInputs, frames: Sequence[int]) -> str:
    if inputs.packets is None:
        return (f'<section id="packets"><h2>Packets</h2><p class="note">The capture was not decoded for this page: '
                f"{escape(inputs.packets_note)}</p></section>")
    head = ("<tr><th>frame</th><th>t (s)</th><th>server side (4-tuple)</th><th>client side</th><th>UDP bytes</th>"
            "<th>QUIC packets</th><th>drawn because</th></tr>")
    lan_only = [m for m in (inputs.sequence.messages if inputs.sequence else []) if m.wan is None and m.lan]
    extra = ""
    if lan_only:
        rows = "".join(f'<tr id="l-{escape(m.lan.capture)}-{m.lan.frame}"><td>{escape(m.lan.capture)} '
                       f'{m.lan.frame}</td><td>{_rel(m.time, inputs.t0)}</td><td class="mono">{escape(m.lan.src)} &gt; '
                       f'{escape(m.lan.dst)}</td><td class="mono">'
                       + "<br>".join(escape(describe_packet(p)) for p in m.packets)
                       + f'</td><td class="muted">{escape("; ".join(m.reasons))}</td></tr>'
                       for m in lan_only if m.lan is not None)
        extra = ("<h3>Datagrams only the client side holds</h3><table><tr><th>capture, frame</th><th>t (s)</th>"
                 f"<th>4-tuple</th><th>QUIC packets</th><th>drawn because</th></tr>{rows}</table>")
    return (f'<section id="packets"><h2>Packets the page refers to</h2><p class="note">{escape(inputs.packets_note)} '
            "Frame numbers are those of <code>captures/server-side.pcapng</code> (Wireshark: "
            "<code>frame.number == N</code>).</p>"
            f'<div class="scroll"><table>{head}{_packet_rows(inputs, frames)}</table>{extra}</div></section>')


def _charts(inputs: HtmlInputs) -> str:
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in inputs.chart_notes)
    body = "".join(f"<div>{svg}</div>" for svg in inputs.charts) or '<p class="note">No series to plot.</p>'
    return ('<section id="charts"><h2>Over time</h2><p class="note">0 s is 0.2 s before the client\'s first event; '
            "dashed purple lines are the controller's network actions; the shaded band is each transport's "
            "disruption (the longest gap in the client's data after the first network action, the "
            "<code>disruption_ms</code> metric). The goodput series is also in <a href=\"goodput.csv\">goodput.csv"
            f"</a>.</p>{notes}{body}</section>")


def _events(inputs: HtmlInputs) -> str:
    rows = []
    for line in inputs.events:
        kind = line.type
        cls = ' class="bulk"' if kind in BULK else ""
        data = line.data
        rows.append(f'<tr id="ev-{line.number}"{cls}><td>{line.number}</td><td>{_rel(line.ts, inputs.t0)}</td>'
                    f'<td>{escape(str(data.get("role", "")))}</td><td>{escape(str(data.get("transport") or ""))}</td>'
                    f'<td class="mono">{escape(kind)}</td><td class="mono">{escape(event_summary(line))}</td></tr>')
    bulk = sum(1 for line in inputs.events if line.type in BULK)
    toggle = (f'<label><input type="checkbox" id="show-bulk"> show the {bulk} progress and data_gap events</label>'
              if bulk else "")
    return ('<section id="events"><h2>Events</h2><p class="note">Every line of <a href="events.jsonl">events.jsonl'
            f"</a>, numbered as the file is (t in s from the client's start). {toggle}</p>"
            '<div class="scroll"><table><tr><th>line</th><th>t (s)</th><th>role</th><th>transport</th><th>type</th>'
            f'<th>fields</th></tr>{"".join(rows)}</table></div></section>')


def _artifacts(inputs: HtmlInputs) -> str:
    qlogs = [f for files in inputs.qlog_files.values() for f in files]
    qlog_items = "".join(f'<li><a href="{escape(f)}">{escape(f)}</a></li>' for f in qlogs) or "<li>none</li>"
    files = "".join(f'<li><a href="{escape(f)}">{escape(f)}</a></li>' for f in inputs.artifacts)
    return (
        '<section id="artifacts"><h2>Open the artifacts</h2>'
        f'<p><b>qlog in qvis.</b> Open <a href="{QVIS}">qvis</a> (qvis.quictools.info) in a browser, choose '
        "<i>Load a file</i> and pick a file below (it is read by your browser; this page loads nothing). The "
        "sequence and congestion views show the same connection from each side.</p>"
        f"<ul>{qlog_items}</ul>"
        "<p><b>Captures in Wireshark.</b> The <code>captures/*.pcapng</code> files carry the TLS key log "
        "(a Decryption Secrets Block), so Wireshark opens them decrypted: <code>wireshark "
        "captures/server-side.pcapng</code>, then the display filter <code>quic.frame_type == 0x1a || "
        "quic.frame_type == 0x1b</code> for PATH_CHALLENGE and PATH_RESPONSE, or <code>frame.number == N</code> "
        "for a frame this page names. The <code>-lan</code> files are the client side of each NAT, the "
        "<code>-wan</code> files its server side.</p>"
        f"<p>Files of this run:</p><ul>{files}</ul>"
        "<p>Judge the run again: <code>python -m lab verify &lt;this directory&gt;</code>.</p></section>")


def _frames_to_list(inputs: HtmlInputs, packets_linked: set[int]) -> list[int]:
    frames: list[int] = []
    if inputs.sequence is not None:
        frames += [m.wan.frame for m in inputs.sequence.messages if m.wan]
    for check in inputs.report.get("checks", []):
        evidence = check_evidence(check, inputs.packets, inputs.events, inputs.servers, inputs.qlog_files)
        frames += list(evidence.frames)
    frames += conformance_frames(inputs.report)
    present = {p.frame for p in inputs.packets or ()}
    return sorted({f for f in frames if f in present} | packets_linked)


def report_html(inputs: HtmlInputs) -> str:
    report = inputs.report
    passed = bool(report.get("passed"))
    verdict = "PASSED" if passed else "FAILED"
    tally = ", ".join(f"{n} {status}" for status, n in sorted((report.get("tally") or {}).items()))
    frames = _frames_to_list(inputs, set())
    linked = set(frames)
    description = (f"<blockquote>{escape(inputs.description.strip())}</blockquote>"
                   if inputs.description.strip() else "")
    error = f'<p><b>Error:</b> {escape(str(report["error"]))}</p>' if report.get("error") else ""
    optional = (f'<p class="note">Optional evidence (may be not verified without failing): '
                f'{escape(", ".join(report["optional_evidence"]))}</p>' if report.get("optional_evidence") else "")
    title = f"{report.get('scenario', 'run')}: {verdict}"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{CSS}</style></head>",
        f'<body data-verdict="{verdict.lower()}">',
        f'<header><h1>{escape(str(report.get("scenario", "")))} <span class="badge {verdict.lower()}">{verdict}</span>'
        f'</h1><div>Run <code>{escape(str(report.get("run_id", "")))}</code>, '
        f'{float(report.get("duration_s") or 0):.1f} s; checks: {escape(tally)}.</div>',
        '<nav><a href="#checks">checks</a><a href="#conformance">conformance</a><a href="#metrics">metrics</a>'
        '<a href="#sequence">packet sequence</a>'
        '<a href="#charts">over time</a><a href="#packets">packets</a><a href="#events">events</a>'
        '<a href="#artifacts">open the artifacts</a></nav></header>',
        f"<main>{description}{error}{optional}",
        _checks(inputs, linked),
        _conformance(report, linked),
        _figures_and_metrics(report),
        _sequence(inputs),
        _charts(inputs),
        _packets(inputs, frames),
        _events(inputs),
        _artifacts(inputs),
        '<p class="note">Written by <code>lab/report/html.py</code> from this directory\'s files; it loads '
        "nothing from the network.</p></main>",
        f"<script>{JS}</script>",
        "</body></html>",
    ])
