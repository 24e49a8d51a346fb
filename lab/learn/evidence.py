"""Figures for `python -m lab explain`, read from the latest recorded runs, never typed in.

Every sentence names the file it came from. When no run is recorded (or the recorded run did not measure
what the topic needs), the sentence says so and gives the command that measures it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab import events as ev
from lab.observe.timeline import Timeline, read_jsonl
from lab.report.call import caller_sentence
from lab.report.player import viewer_sentence
from lab.topology.load import ROOT


def _latest(root: Path, scenario: str) -> Path | None:
    run = root / "artifacts" / scenario / "latest"
    return run.resolve() if run.exists() else None


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _missing(scenario: str) -> list[str]:
    return [f"No recorded `{scenario}` run yet: run `make scenario NAME={scenario}` to measure it."]


def _timeline(root: Path, scenario: str) -> tuple[Timeline, str] | None:
    run = _latest(root, scenario)
    if run is None or not (run / "events.jsonl").exists():
        return None
    return read_jsonl(run / "events.jsonl", strict=False), _rel(root, run / "events.jsonl")


def tcp_vs_quic(root: Path) -> list[str]:
    """The disruption of each transport from artifacts/tcp-vs-quic/latest/report.json, when valid."""
    run = _latest(root, "tcp-vs-quic")
    if run is None or not (run / "report.json").exists():
        return _missing("tcp-vs-quic")
    source = _rel(root, run / "report.json")
    report: dict[str, Any] = json.loads((run / "report.json").read_text())
    by_transport = (report.get("metrics") or {}).get("by_transport") or {}
    checks = report.get("checks", [])
    valid: dict[str, float] = {}
    problems: list[str] = []
    for transport in ("quic", "tcp"):
        metrics = by_transport.get(transport) or {}
        done = [c for c in checks if c.get("name") == "transfer_complete" and c.get("transport") == transport]
        disruption = metrics.get("disruption_ms")
        if disruption is not None and done and all(c.get("passed") for c in done) and metrics.get("bytes"):
            valid[transport] = float(disruption)
        else:
            failed = [f"{c['name']}: {c.get('observed')}" for c in checks
                      if c.get("transport") == transport and not c.get("passed")]
            problems.append(f"{transport.upper()} was not measured ({'; '.join(failed) or 'no data'})")
    lines = []
    for transport in ("quic", "tcp"):
        if transport in valid:
            metrics = by_transport[transport]
            lines.append(f"{transport.upper()}: longest data pause after the first network action "
                         f"**{valid[transport]:.0f} ms**, {metrics.get('handshakes')} handshake(s), "
                         f"{metrics.get('reconnects')} reconnect(s) (run `{report.get('run_id')}`, {source}).")
    if len(valid) == 2 and valid["quic"] > 0:
        lines.append(f"Measured ratio TCP/QUIC: {valid['tcp'] / valid['quic']:.1f}x in that one run "
                     "(one run, one RTT and one detection timer; not a general figure).")
    if problems:
        error = f" The run ended with: {report['error']}." if report.get("error") else ""
        lines.append(f"The latest recorded run `{report.get('run_id')}` ({source}) is no valid comparison: "
                     f"{'; '.join(problems)}.{error} Run `make scenario NAME=tcp-vs-quic` to measure it.")
    return lines


def second_migration(root: Path) -> list[str]:
    """How many server path changes needed a PATH_CHALLENGE in the latest flapping run."""
    loaded = _timeline(root, "flapping")
    if loaded is None:
        return _missing("flapping")
    timeline, source = loaded
    server = timeline.by_role("server").for_transport("quic")
    changes = [e for e in server.of(ev.ActivePathChanged) if e.old_peer != e.new_peer]
    challenges = server.of(ev.PathChallengeSent)
    validated: set[str] = set()
    returns = 0
    for event in server:  # in time order: was the new peer already validated when the server moved to it?
        if isinstance(event, ev.HandshakeCompleted):
            validated.add(event.peer)
        elif isinstance(event, ev.PathValidated):
            validated.add(event.peer)
        elif isinstance(event, ev.ActivePathChanged) and event.old_peer != event.new_peer:
            returns += event.new_peer in validated
    resets = len(server.of(ev.CongestionReset))
    return [f"In the latest `flapping` run ({source}) the server changed its active path {len(changes)} times, "
            f"sent {len(challenges)} PATH_CHALLENGE(s) and validated {len(server.of(ev.PathValidated))} path(s); "
            f"{returns} change(s) returned to an address it had already validated, and it reset "
            f"congestion control {resets} time(s)."]


def _server_validation(root: Path, scenario: str) -> list[str]:
    loaded = _timeline(root, scenario)
    if loaded is None:
        return _missing(scenario)
    timeline, source = loaded
    server = timeline.by_role("server")
    lines = []
    for sent in server.of(ev.PathChallengeSent):
        response = next((r for r in server.of(ev.PathResponseReceived) if r.data == sent.data), None)
        done = next((v for v in server.of(ev.PathValidated) if v.peer == sent.peer and v.ts >= sent.ts), None)
        echoed = f"echoed by the client {(response.ts - sent.ts) * 1000:.1f} ms later" if response else "never echoed"
        took = f", path validated in {done.validation_ms:.1f} ms" if done and done.validation_ms is not None else ""
        lines.append(f"`{scenario}` ({source}): challenge `{sent.data}` to {sent.peer}, {echoed}{took}.")
    return lines or [f"`{scenario}` ({source}): the server sent no PATH_CHALLENGE in that run."]


def amplification(root: Path) -> list[str]:
    loaded = _timeline(root, "nat-rebinding")
    if loaded is None:
        return _missing("nat-rebinding")
    timeline, source = loaded
    limited = timeline.of(ev.AmplificationLimited, role="server")
    if not limited:
        return [f"The latest `nat-rebinding` run ({source}) recorded no `amplification_limited` event."]
    return [f"`nat-rebinding` ({source}): {e.bytes_sent} B sent to unvalidated {e.peer} for {e.bytes_received} B "
            f"received (limit {3 * e.bytes_received} B)." for e in limited]


def network_switch(root: Path) -> list[str]:
    loaded = _timeline(root, "wifi-to-cellular")
    if loaded is None:
        return _missing("wifi-to-cellular")
    timeline, source = loaded
    lines = []
    for change in timeline.of(ev.ActivePathChanged, role="server"):
        lines.append(f"`wifi-to-cellular` ({source}): server path {change.old_peer} -> {change.new_peer} "
                     f"({'address' if change.address_changed else 'port-only'} change).")
    for reset in timeline.of(ev.CongestionReset, role="server"):
        lines.append(f"Congestion window reset {reset.cwnd_before} -> {reset.cwnd_after} bytes for {reset.peer}.")
    gap = timeline.largest_gap(since=(timeline.first_network_action().ts if timeline.first_network_action() else None))
    if gap is not None:
        lines.append(f"Longest client data pause after the first network action: {gap.gap_ms:.0f} ms.")
    return lines


def preferred_address(root: Path) -> list[str]:
    loaded = _timeline(root, "preferred-address")
    if loaded is None:
        return _missing("preferred-address")
    timeline, source = loaded
    moves = timeline.of(ev.ActivePathChanged, role="client")
    cids = timeline.of(ev.PeerCidChanged, role="client")
    lines = [f"`preferred-address` ({source}): client path {m.old_peer} -> {m.new_peer}." for m in moves]
    lines += [f"Client DCID {c.old_cid} -> {c.new_cid}." for c in cids]
    return lines or [f"`preferred-address` ({source}): the client never moved in that run."]


def cid_privacy(root: Path) -> list[str]:
    loaded = _timeline(root, "cid-privacy")
    if loaded is None:
        return _missing("cid-privacy")
    timeline, source = loaded
    changes = timeline.of(ev.PeerCidChanged, role="client")
    rebinds = [a for a in timeline.actions() if a.action == "rebind"]
    return [f"`cid-privacy` ({source}): {len(rebinds)} rebinding(s), {len(changes)} client CID change(s)"
            + (": " + ", ".join(f"{c.old_cid} -> {c.new_cid}" for c in changes) if changes else "") + "."]


def _experience(root: Path, scenario: str, key: str) -> list[str]:
    """The viewer or caller line of each transport, from the latest run's report.json (lab.report)."""
    run = _latest(root, scenario)
    if run is None or not (run / "report.json").exists():
        return _missing(scenario)
    source = _rel(root, run / "report.json")
    report: dict[str, Any] = json.loads((run / "report.json").read_text())
    by_transport = (report.get("metrics") or {}).get("by_transport") or {}
    sentence = viewer_sentence if key == "viewer" else caller_sentence
    lines = [f"{transport.upper()}: {sentence(metrics[key])} (run `{report.get('run_id')}`, {source})."
             for transport, metrics in by_transport.items() if metrics.get(key)]
    if not lines:
        return [f"The latest `{scenario}` run ({source}) measured no {key}: run `make scenario NAME={scenario}`."]
    if key == "viewer" and {"quic", "tcp"} <= set(by_transport):
        seconds = {t: (by_transport[t].get(key) or {}).get("rebuffer_ms") for t in ("quic", "tcp")}
        if None not in seconds.values():
            lines.append(f"Rebuffering in that one run: QUIC {seconds['quic'] / 1000:.2f} s, "
                         f"TCP {seconds['tcp'] / 1000:.2f} s.")
    return lines


FARM_SCENARIOS = ("lb-four-tuple", "lb-cid-routing", "lb-preferred-address")
FARM_QUOTES = ("farm_balancer_flows", "farm_other_replica_reaction", "farm_connection_broke", "farm_holder_validated",
               "farm_preferred_address")


def _recorded_runs(root: Path, scenario: str) -> list[dict[str, Any]]:
    """Every judged run of a scenario (its report.json), oldest first."""
    reports = []
    for path in sorted((root / "artifacts" / scenario).glob("*/report.json")):
        if path.parent.is_symlink():
            continue
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return reports


def load_balancers(root: Path) -> list[str]:
    """Each farm scenario's recorded runs (how many passed) and its latest farm checks and disruption."""
    lines = []
    for scenario in FARM_SCENARIOS:
        run = _latest(root, scenario)
        if run is None or not (run / "report.json").exists():
            lines += _missing(scenario)
            continue
        report: dict[str, Any] = json.loads((run / "report.json").read_text())
        source = _rel(root, run / "report.json")
        runs = _recorded_runs(root, scenario)
        passed = sum(1 for r in runs if r.get("passed"))
        lines.append(f"`{scenario}`: {len(runs)} recorded run(s), {passed} passed; the latest, "
                     f"`{report.get('run_id')}` ({source}), {'passed' if report.get('passed') else 'failed'}.")
        checks = {c["name"]: c for c in report.get("checks", [])}
        for name in FARM_QUOTES:
            if name in checks:
                lines.append(f"`{scenario}` {name} {checks[name].get('status')}: {checks[name].get('observed')}")
        disruption = (report.get("metrics") or {}).get("disruption_ms")
        if scenario != "lb-four-tuple" and disruption is not None:
            lines.append(f"`{scenario}`: longest data pause after the first network action "
                         f"**{float(disruption):.0f} ms** in the latest run.")
        moved = [((r.get("farm") or {}).get("farm_balancer_flows") or {}).get("rebindings_until_moved")
                 for r in runs if any(c.get("name") == "farm_balancer_flows" and c.get("passed")
                                      for c in r.get("checks", []))]
        if scenario == "lb-four-tuple" and moved:
            counts = ", ".join(f"{n} in {moved.count(n)}" for n in sorted({m for m in moved if m is not None}))
            lines.append(f"`{scenario}`: rebindings until the flow reached the other replica, over {len(moved)} "
                         f"run(s): {counts}.")
    return lines


ATTACK_SCENARIOS = ("amplification-attack", "spoofed-migration", "off-path-forwarding")


def attacks(root: Path) -> list[str]:
    """Each attack scenario's latest verdicts on the attack checks, from its report.json."""
    lines = []
    for scenario in ATTACK_SCENARIOS:
        run = _latest(root, scenario)
        if run is None or not (run / "report.json").exists():
            lines += _missing(scenario)
            continue
        checks = {c["name"]: c for c in json.loads((run / "report.json").read_text()).get("checks", [])}
        source = _rel(root, run / "report.json")
        for name in ("capture_attack_amplification", "capture_attack_old_path_probed"):
            check = checks.get(name)
            if check is not None:
                lines.append(f"`{scenario}` ({source}): {name} {check.get('status')}: {check.get('observed')}")
    return lines


def reconnect_vs_migrate(root: Path) -> list[str]:
    """Each strategy's disruption and ratio to migration from artifacts/reconnect-vs-migrate/latest/report.json,
    and their medians over every recorded run of the scenario."""
    from lab.report.strategies import summarise

    run = _latest(root, "reconnect-vs-migrate")
    if run is None or not (run / "report.json").exists():
        return _missing("reconnect-vs-migrate")
    source = _rel(root, run / "report.json")
    report: dict[str, Any] = json.loads((run / "report.json").read_text())
    rows = report.get("strategies") or []
    if not rows:
        return [f"The latest recorded run `{report.get('run_id')}` ({source}) has no strategies table"
                f"{': ' + report['error'] if report.get('error') else ''}. "
                "Run `make scenario NAME=reconnect-vs-migrate` to measure it."]
    lines = [f"The latest run, `{report.get('run_id')}` ({source}):"]
    for row in rows:
        if row.get("disruption_ms") is None or not row.get("ok"):
            lines.append(f"{row['name']}: not measured (transfer {'ok' if row.get('ok') else 'not verified'}, "
                         f"disruption {row.get('disruption_ms')}).")
            continue
        ratio = f", {row['ratio']:.2f}x migration's" if row.get("ratio") is not None and row["name"] != "quic" else ""
        recovery = f", recovery {row['recovery_ms']:.0f} ms" if row.get("recovery_ms") is not None else ""
        trips = f", {row['round_trips']} round trip(s) to the first byte (capture)" \
            if row.get("round_trips") is not None else ""
        resumed = f", session resumed {row['resumed']}, 0-RTT {row['early_data']}" \
            if row.get("resumed") is not None else ""
        lines.append(f"{row['name']}: longest data pause **{row['disruption_ms']:.0f} ms**{ratio}{recovery}{trips}"
                     f"{resumed}.")
    tables = [r.get("strategies") or [] for r in _recorded_runs(root, "reconnect-vs-migrate") if r.get("passed")]
    for name, figures in summarise(tables).items():
        ratio, recovery = figures.get("ratio"), figures.get("recovery_ratio")
        if name == "quic" or ratio is None:
            continue
        lines.append(f"Over {figures['runs']} recorded passed run(s), {name} / migration: disruption "
                     f"{ratio['median']:.2f}x [{ratio['min']:.2f}-{ratio['max']:.2f}]"
                     + (f", recovery {recovery['median']:.2f}x [{recovery['min']:.2f}-{recovery['max']:.2f}]"
                        if recovery else "") + ".")
    return lines


EVIDENCE: dict[str, Callable[[Path], list[str]]] = {
    "video-stall": lambda root: _experience(root, "wifi-to-cellular-video", "viewer"),
    "call-freeze": lambda root: _experience(root, "wifi-to-cellular-call", "caller"),
    "tcp-vs-quic": tcp_vs_quic,
    "second-migration": second_migration,
    "path-validation": lambda root: _server_validation(root, "nat-rebinding"),
    "nat-rebinding": lambda root: _server_validation(root, "nat-rebinding"),
    "ip-change": lambda root: _server_validation(root, "ip-change"),
    "amplification": amplification,
    "network-switch": network_switch,
    "preferred-address": preferred_address,
    "cid-privacy": cid_privacy,
    "load-balancers": load_balancers,
    "attacks": attacks,
    "reconnect-vs-migrate": reconnect_vs_migrate,
}


def evidence_for(name: str, root: Path = ROOT) -> list[str]:
    """Measured sentences for a topic (empty when the topic quotes no figure)."""
    function = EVIDENCE.get(name)
    if function is None:
        return []
    try:
        return function(root)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"Could not read the recorded run: {exc}."]
