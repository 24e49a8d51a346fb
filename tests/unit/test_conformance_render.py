"""The conformance section of report.md and report.html: ``report["conformance"]`` (Finding.to_dict() each, here
from the lab's recorded rebinding run, tests/data/conformance) by endpoint, violations first with their frames,
apart from the checks; "not judged" without the key."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lab.report.html import CONFORMANCE_TITLE, HtmlInputs, report_html
from lab.report.render import report_markdown
from lab.verify.conformance import evaluate
from lab.verify.pcap import packets_from_json

DATA = Path(__file__).resolve().parents[1] / "data" / "conformance"
ENTRY = next(e for e in json.loads((DATA / "traces.json").read_text()) if e["name"] == "run-recorded-rebinding")
PACKETS = packets_from_json((DATA / ENTRY["packets"]).read_text())
FINDINGS = [f.to_dict() for f in evaluate(PACKETS, ENTRY["server_addresses"])]
CHECK = {"name": "transfer_complete", "passed": True, "status": "passed", "observed": "done", "expected": "done",
         "transport": "quic", "source": "events"}


def report(**extra):
    return {"scenario": "recorded-rebinding", "passed": True, "run_id": "r1", "duration_s": 3.0,
            "tally": {"passed": 1}, "checks": [CHECK], "metrics": {"by_transport": {}}, **extra}


def section(text: str, start: str, end: str) -> str:
    """From ``start`` to the next ``end`` after it (or the end of the text)."""
    i = text.index(start)
    j = text.find(end, i + len(start))
    return text[i:j if j >= 0 else len(text)]


def test_markdown_groups_by_endpoint_violations_first_with_frames():
    md = report_markdown(report(conformance=FINDINGS))
    assert md.index("## Checks") < md.index(f"## {CONFORMANCE_TITLE}")  # apart from the checks, after them
    conf = md[md.index(f"## {CONFORMANCE_TITLE}"):]
    assert conf.index("### server") < conf.index("### client")
    server = section(conf, "### server", "### client")
    rows = [line for line in server.splitlines() if line.startswith("| ") and "verdict" not in line]
    assert rows[0].startswith("| **violation** | RFC 9000 §8.2.3 | MUST |")
    assert rows[0].endswith("| 248, 249 |")
    verdicts = [row.split(" | ")[0].strip("|* ") for row in rows]
    assert verdicts == sorted(verdicts, key=["violation", "compliant", "not observed"].index)
    assert "1 violation(s), 1 of a MUST." in conf
    assert "transfer_complete" not in conf  # the checks stay in their table


def test_markdown_without_findings_says_not_judged():
    md = report_markdown(report())
    assert f"## {CONFORMANCE_TITLE}\n\nNot judged" in md


def test_html_section_links_the_frames_to_the_packet_table():
    page = report_html(HtmlInputs(report=report(conformance=FINDINGS), events=[], t0=PACKETS[0].time,
                                  packets=PACKETS, packets_note="decoded"))
    conf = section(page, '<section id="conformance">', "<section")
    assert conf.index("<h3>server</h3>") < conf.index("<h3>client</h3>")
    server = section(conf, "<h3>server</h3>", "<h3>")
    classes = re.findall(r'<tr class="([a-z-]+)">', server)
    assert classes[0] == "violation" and classes == sorted(classes, key=["violation", "compliant",
                                                                         "not-observed"].index)
    assert '<a href="#f-248">frame 248</a>' in server and '<a href="#f-249">frame 249</a>' in server
    assert 'id="f-248"' in page and 'id="f-249"' in page  # the frames are in the packets table
    assert page.index('id="checks"') < page.index('id="conformance"') < page.index('id="sequence"')
    assert '<a href="#conformance">' in page


def test_html_without_findings_says_not_judged_and_frames_are_named_unlinked_without_packets():
    page = report_html(HtmlInputs(report=report(), events=[], t0=0.0))
    assert "Not judged: this report has no conformance findings." in page
    page = report_html(HtmlInputs(report=report(conformance=FINDINGS), events=[], t0=0.0))
    assert 'href="#f-248"' not in page and "frame 248</span>" in page


def test_html_escapes_the_findings():
    bad = [{**FINDINGS[0], "summary": "<script>alert(1)</script>", "verdict": "violation", "frames": [1]}]
    page = report_html(HtmlInputs(report=report(conformance=bad), events=[], t0=0.0))
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page
