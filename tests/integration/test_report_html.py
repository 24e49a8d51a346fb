"""report.html of a real recorded run (tests/data/runs/recorded-rebinding), rendered by Chromium.

Chromium comes from Debian's packages in an image built like the lab's base
(images/browser/bootstrap.sh, built here when missing); the host needs only Docker. It runs with
``--network none`` and a network log, so a page that tried to load anything from outside would show
it in the log and could not get it. The capture is decoded by the lab image's tshark, so these need
Docker and that image, not the running lab.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.report.render import HTML, SEQUENCE_SVG, write_reports
from lab.topology.load import ROOT
from lab.verify.judge import judge_run
from lab.verify.pcap import read_quic_packets

RECORDED = ROOT / "tests" / "data" / "runs" / "recorded-rebinding"
BROWSER_DIR = ROOT / "images" / "browser"
ALLOWED_LINKS = ("https://qvis.quictools.info/",)  # documentation links for the reader, never loaded


def browser_image() -> str:
    tag = hashlib.sha256((BROWSER_DIR / "packages.txt").read_bytes()).hexdigest()[:8]
    return os.environ.get("BROWSER_IMAGE") or f"quic-migration-lab-browser:bookworm-{tag}"


@pytest.fixture(scope="module")
def image() -> str:
    name = browser_image()
    present = subprocess.run(["docker", "image", "inspect", name], capture_output=True)
    if present.returncode != 0:
        built = subprocess.run(["bash", str(BROWSER_DIR / "bootstrap.sh"), name], capture_output=True, text=True,
                               timeout=1200)
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return name


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(RECORDED, target)
    verdict = judge_run(target)
    write_reports(target, verdict.to_dict(), verdict.timeline, verdict.description, read_packets=read_quic_packets)
    os.chmod(target, 0o755)
    return target


def chromium(image: str, run_dir: Path, out: Path, *args: str, page: str = HTML) -> subprocess.CompletedProcess:
    out.mkdir(exist_ok=True)
    os.chmod(out, 0o777)
    command = ["docker", "run", "--rm", "--network", "none", "--label", "org.quic-migration-lab=browser",
               "-v", f"{run_dir}:/report:ro", "-v", f"{out}:/out", image,
               "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--enable-logging=stderr", "--v=0", *args, f"file:///report/{page}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def recorded_challenges() -> set[str]:
    """PATH_CHALLENGE data of the recorded run, from its events and from its capture."""
    events = {json.loads(line)["data"] for line in (RECORDED / "events.jsonl").read_text().splitlines()
              if '"path_challenge_sent"' in line}
    packets = read_quic_packets(RECORDED / "captures" / "server-side.pcapng", RECORDED / "client" / "keys-quic.log",
                                (443, 4443))
    captured = {d for p in packets for d in p.path_challenge}
    assert events and events == captured, (events, captured)
    return events


def test_the_report_renders_with_the_runs_path_challenge_in_the_sequence(image, run_dir, tmp_path):
    result = chromium(image, run_dir, tmp_path / "out", "--dump-dom", "--virtual-time-budget=2000")
    assert result.returncode == 0, result.stderr[-3000:]
    dom = result.stdout
    assert 'data-verdict="passed"' in dom and "recorded-rebinding" in dom
    rendered = re.search(r'data-rendered="(\d+)"', dom)
    assert rendered and int(rendered.group(1)) > 0, "the page's script ran and counted the diagram's messages"
    assert "Uncaught" not in result.stderr, result.stderr[-3000:]
    diagram = dom[dom.index('id="sequence-diagram"'):]
    diagram = diagram[:diagram.index("</svg>")]
    for data in recorded_challenges():
        assert f'data-challenge="{data}"' in diagram
        assert f"PATH_CHALLENGE {data}" in diagram and f"PATH_RESPONSE {data}" in diagram
    for check in json.loads((run_dir / "report.json").read_text())["checks"]:
        assert f'id="check-{check["transport"] or "run"}-{check["name"]}"' in dom


def page_requests(netlog: Path) -> set[str]:
    """URLs the page asked the network for: the network log's URL_REQUEST_START_JOB events made for a
    page (their initiator is an origin, ``null`` for a file). Chromium's own requests (component
    updates, time) have the initiator "not an origin" and are not the page's."""
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return {e["params"].get("url", "?") for e in log["events"] if e.get("type") == start
            and "initiator" in e.get("params", {}) and e["params"]["initiator"] != "not an origin"}


def test_no_request_leaves_the_file(image, run_dir, tmp_path):
    control = tmp_path / "control"
    control.mkdir()
    (control / "control.html").write_text('<html><body><img src="http://control.invalid/probe.png"></body></html>')
    os.chmod(control, 0o755)
    probe = chromium(image, control, tmp_path / "probe", "--dump-dom", "--log-net-log=/out/net.json",
                     page="control.html")
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert page_requests(tmp_path / "probe" / "net.json") == {"http://control.invalid/probe.png"}, \
        "the network log shows what a page loads (control: a page with one external image)"
    result = chromium(image, run_dir, tmp_path / "out", "--dump-dom", "--log-net-log=/out/net.json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert page_requests(tmp_path / "out" / "net.json") == set()


def test_the_html_references_no_external_url(run_dir):
    html = (run_dir / HTML).read_text()
    assert "<link" not in html and not re.search(r"<script[^>]*\bsrc=", html), "nothing is loaded by reference"
    assert not re.search(r"url\(|@import", html), "no CSS that loads"
    for attribute, url in re.findall(r'\b(src|href|xlink:href|action)="([a-z][a-z0-9+.-]*:[^"]*)"', html, re.I):
        assert attribute == "href" and url in ALLOWED_LINKS, (attribute, url)
    for url in re.findall(r"https?://[^\s\"'<>)]+", html):
        assert url in ALLOWED_LINKS, url


def test_screenshots_of_the_report_and_the_sequence(image, run_dir, tmp_path):
    out = tmp_path / "out"
    page = chromium(image, run_dir, out, "--window-size=1400,2400", "--screenshot=/out/report.png")
    assert page.returncode == 0, page.stderr[-3000:]
    sequence = chromium(image, run_dir, out, "--window-size=1180,900", "--screenshot=/out/sequence.png",
                        page=SEQUENCE_SVG)
    assert sequence.returncode == 0, sequence.stderr[-3000:]
    for name in ("report.png", "sequence.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, name
