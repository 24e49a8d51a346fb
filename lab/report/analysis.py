"""After a run: verify the captures with tshark, cross-check them with the endpoints' events and
qlog, and draw the goodput chart. A disagreement between sources fails the run.

The captures are the independent witness: tshark is a program we did not write. Each router's
WAN capture holds the server-side view of its NAT; together they are the interop runner's
"right" trace. Keys from the client's key log are injected so every capture opens decrypted.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from lab import events as ev
from lab.observe.timeline import Timeline
from lab.report.metrics import goodput_series, network_events
from lab.report.plot import goodput_svg
from lab.verify import capture_checks
from lab.verify.checks import CheckResult
from lab.verify.pcap import QuicPacket, TsharkError, TsharkNotFound, inject_keylog, read_quic_packets


def cross_check(timeline: Timeline, packets: list[QuicPacket], server_addresses: set[str],
                qlog_challenges: set[str] | None) -> list[CheckResult]:
    """Facts that the endpoints' events, the qlog and the capture must agree on (pure)."""
    results = []
    summary = capture_checks.summarize(packets, server_addresses)
    server_events = timeline.for_transport("quic").by_role("server")
    captured_challenges = {c["data"].replace(":", "").lower() for c in summary["path_challenges"]
                           if c["src"].rsplit(":", 1)[0] in {a.rsplit(":", 1)[0] for a in server_addresses}}
    event_challenges = {e.data.lower() for e in server_events.of(ev.PathChallengeSent)}
    results.append(CheckResult("cross_check_challenges", captured_challenges == event_challenges,
                               f"capture {sorted(captured_challenges)}, events {sorted(event_challenges)}",
                               "the server's PATH_CHALLENGE data in the capture equal those in its events",
                               "quic"))
    if qlog_challenges is not None:
        results.append(CheckResult("cross_check_qlog", qlog_challenges == event_challenges,
                                   f"qlog {sorted(qlog_challenges)}, events {sorted(event_challenges)}",
                                   "the server's qlog shows the same PATH_CHALLENGE data as its events", "quic"))
    peers = set()
    for event in server_events:
        for name in ("peer", "new_peer"):
            value = getattr(event, name, None)
            if value and event.TYPE in ("handshake_completed", "path_discovered", "active_path_changed"):
                peers.add(value)
    server_ips = {a.rsplit(":", 1)[0] for a in server_addresses}
    captured_peers = {f"{p.src_ip}:{p.src_port}" for p in packets if p.src_ip not in server_ips}
    results.append(CheckResult("cross_check_paths", captured_peers == peers,
                               f"capture {sorted(captured_peers)}, events {sorted(peers)}",
                               "the client addresses the capture shows equal those the server reported", "quic"))
    return results


def qlog_challenge_data(qlog_dir: Path) -> set[str] | None:
    """PATH_CHALLENGE data the server's qlog recorded as sent, or None without a qlog."""
    files = list(qlog_dir.glob("*.qlog")) if qlog_dir.exists() else []
    if not files:
        return None
    found: set[str] = set()
    for path in files:
        data = json.loads(path.read_text())
        for trace in data.get("traces", []):
            for event in trace.get("events", []):
                if event.get("name") != "transport:packet_sent":
                    continue
                for frame in (event.get("data") or {}).get("frames", []):
                    if frame.get("frame_type") == "path_challenge":
                        found.add(str(frame.get("data", "")).lower())
    return found


def _merge(paths: list[Path], out: Path) -> Path:
    subprocess.run(["mergecap", "-w", str(out), *map(str, paths)], check=True, capture_output=True)
    return out


def analyse_run(runner: Any, result: Any) -> tuple[dict[str, Any], str | None, list[CheckResult]]:
    """Capture checks, cross-checks and the plot for a finished run. Returns (report extra, plot, checks)."""
    run_dir: Path = result.run_dir
    scenario = runner.scenario
    topology = runner.topology
    timeline = Timeline.from_streams(runner.events)
    extra: dict[str, Any] = {}
    checks: list[CheckResult] = []

    # The time axis starts with the workload, not with the reset and impairment set-up before it.
    client_times = [e.ts for e in timeline if e.role == "client"]
    t0 = min(client_times) - 0.2 if client_times else timeline.start
    series = {t: goodput_series(timeline, 100, t0, t) for t in scenario.transports}
    markers = [m for m in network_events(timeline, t0) if m.t >= 0]
    svg = goodput_svg(series, markers, f"{scenario.name}: goodput (0 s = the client starts)")
    (run_dir / "goodput.svg").write_text(svg)

    captures = sorted((run_dir / "captures").glob("*.pcap"))
    keylog = run_dir / "client" / "keys-quic.log"
    if "quic" not in scenario.transports or not captures:
        return extra, "goodput.svg", checks
    try:
        if keylog.exists() and keylog.stat().st_size:
            for pcap in captures:
                inject_keylog(pcap, keylog, pcap.with_suffix(".pcapng"))
        wan = [p for p in captures if p.stem.endswith("-wan") and p.stat().st_size > 24]
        if not wan:
            raise TsharkError("no server-side capture holds any packet")
        merged = _merge(wan, run_dir / "captures" / "server-side.pcap")
        ports = (topology.server_port, topology.server_preferred_port)
        packets = read_quic_packets(merged, keylog if keylog.exists() else None, ports)
        servers = {f"{topology.server_address}", f"{topology.server_preferred_address}"}
        # A new DCID on every new path is expected only when every path change is an active
        # migration with rotation; a NAT rebinding keeps the CID by design.
        active = (scenario.workload.migration == "active" and scenario.workload.rotate_cid
                  and not any(step.action == "rebind" for step in scenario.plan()))
        lossy = any((i.loss or i.profile) for i in scenario.initial.impair.values()) or any(
            step.action == "impair" for step in scenario.plan())
        rotating = scenario.workload.migration == "active" and scenario.workload.rotate_cid
        found = capture_checks.run_all(packets, servers, active_migration=active, lossy=lossy, rotating=rotating)
        capture_results = [CheckResult(f"capture_{c.name}", c.passed, c.observed, c.expected, "quic") for c in found]
        checks.extend(capture_results)
        checks.extend(cross_check(timeline, packets, servers, qlog_challenge_data(run_dir / "server" / "qlog")))
        if keylog.exists():
            inject_keylog(merged, keylog, merged.with_suffix(".pcapng"))
        for pcap in [*captures, merged]:  # the pcapng copies hold the same packets plus the keys
            if pcap.with_suffix(".pcapng").exists():
                pcap.unlink()
        extra["captures"] = {
            "tool": "tshark", "files": [p.name for p in sorted((run_dir / "captures").glob("*.pcapng"))],
            "checks": [c.to_dict() for c in capture_results],
            "packets": len(packets),
        }
    except (TsharkNotFound, TsharkError, subprocess.CalledProcessError, FileNotFoundError) as exc:
        checks.append(CheckResult("capture_verified", False, f"{type(exc).__name__}: {exc}",
                                  "captures decoded by tshark", "quic"))
    return extra, "goodput.svg", checks


def finish_run(runner: Any, result: Any) -> dict[str, Any]:
    """Judge a finished run on its captures too, then write report.json and report.md."""
    from lab.report.render import report_dict, write_reports

    extra, plot_name, cross = analyse_run(runner, result)
    result.checks.extend(cross)
    result.passed = result.passed and all(c.passed for c in cross)
    report = report_dict(runner.scenario.name, result.run_id, result.passed, result.checks, result.metrics,
                         result.error, result.duration_s, extra)
    write_reports(result.run_dir, report, runner.scenario.description, plot_name)
    return report

