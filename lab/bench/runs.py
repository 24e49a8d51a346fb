"""Benchmarks that replay scenarios on the live lab (the edge): repeated runs, judged as always.

Every run goes through the same runner and judge as `scenario run` and leaves its artifacts; the
bench keeps each run's directory in bench.json, so every figure can be traced to its runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab import api
from lab.bench import machine, stalls
from lab.bench.figures import NOISE_LIMIT_MS, Distribution, limit_for, ratio
from lab.bench.page import bench_html
from lab.scenario.names import topology_names
from lab.scenario.runner import ARTIFACTS
from lab.scenario.schema import Scenario, load_scenario
from lab.topology.model import Topology
from lab.verify.judge import Verdict

BENCH = ARTIFACTS / "bench"
MACHINE_S = 10.0  # seconds of each machine-floor measurement (lab.bench.machine)
CALM_STEAL = 0.01  # a noise run is calm when steal took at most this share of the cores' time
Say = Callable[[str], None]


@dataclass
class BenchRun:
    """One bench invocation: its directory under artifacts/bench/ and what it found."""

    directory: Path
    results: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls) -> BenchRun:
        directory = BENCH / time.strftime("%Y%m%d-%H%M%S")
        directory.mkdir(parents=True, exist_ok=True)
        latest = BENCH / "latest"
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(directory.name)
        return cls(directory)

    def write(self) -> Path:
        """bench.json, and report.html beside it (every figure linked to its runs)."""
        path = self.directory / "bench.json"
        path.write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        (self.directory / "report.html").write_text(bench_html(self.results, self.directory))
        return path


def run_times(scenario: Scenario, topology: Topology, runs: int, capture: bool, say: Say) -> list[Verdict]:
    """``runs`` runs of a scenario, each judged (and reported) like `scenario run`."""
    verdicts = []
    for number in range(1, runs + 1):
        result = api.run_scenario(scenario, topology, capture=capture)  # as `scenario run` does
        verdict = result.verdict
        verdicts.append(verdict)
        say(f"{scenario.name} run {number}/{runs}: {'PASS' if verdict.passed else 'FAIL'} "
            f"({result.run_dir.relative_to(ARTIFACTS.parent)})")
    return verdicts


def with_probe_after(source: Path, probe_after_ms: float, directory: Path, topology: Topology) -> Scenario:
    """The scenario with the client's detection delay set to ``probe_after_ms`` (a file of the same name)."""
    data = yaml.safe_load(source.read_text())
    data.setdefault("workload", {})["probe_after"] = f"{probe_after_ms:g}ms"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.name
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_scenario(target, topology_names(topology))


def detection(topology: Topology, source: Path, runs: int, delays_ms: list[float], directory: Path,
              say: Say) -> dict[str, Any]:
    """The detection-delay trade-off: a passive migration at several delays, disruption against probes sent."""
    rows = []
    for delay in delays_ms:
        scenario = with_probe_after(source, delay, directory / f"probe-after-{delay:g}ms", topology)
        verdicts = run_times(scenario, topology, runs, False, say)
        metrics = [v.metrics.get("quic", {}) for v in verdicts]
        rows.append({"probe_after_ms": delay, "runs": len(verdicts), "passed": [v.passed for v in verdicts],
                     "disruption_ms": Distribution.of(m.get("disruption_ms") for m in metrics).to_dict(),
                     "probes": Distribution.of(m.get("probes") for m in metrics).to_dict(),
                     "run_dirs": [str(v.run_dir) for v in verdicts]})
    return {"scenario": source.stem, "method": "the same passive migration with the client's detection delay "
            "(workload.probe_after) set to each value; probes = the PINGs it sent (probe_sent events)", "rows": rows}


def with_rtt(source: Path, rtt_ms: float, directory: Path, topology: Topology) -> Scenario:
    """The scenario with every client network given a round-trip time of ``rtt_ms`` (r/2 each way).

    Written as a file of the same name under ``directory`` (a run records its scenario's file);
    explicit impairments of the scenario are replaced, since the bench states r itself.
    """
    data = yaml.safe_load(source.read_text())
    initial = data.setdefault("initial", {})
    initial["impair"] = {network: {"delay": f"{rtt_ms / 2:g}ms"} for network in topology.gateways} if rtt_ms else {}
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.name
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_scenario(target, topology_names(topology))


def noise(topology: Topology, source: Path, runs: int, say: Say) -> dict[str, Any]:
    """The lab's noise floor: the baseline scenario (no network change, captures and qlog on)."""
    scenario = load_scenario(source, topology_names(topology))
    say(f"... the machine's own floor first: busy clock readers, then a sleeper, lab idle, {MACHINE_S:g} s each")
    floor_of_machine = machine.machine_floor(MACHINE_S)
    wakeups_of_machine = machine.wakeups(MACHINE_S)
    steal_before = machine.read_steal_ms()
    with machine.Witness() as witness:
        verdicts = run_times(scenario, topology, runs, True, say)
    steal_after = machine.read_steal_ms()
    floors = [v.metrics.get("quic", {}).get("noise_floor_ms") for v in verdicts]
    histogram: dict[str, int] = {}
    delivery: list[float | None] = []  # per run: the longest gap as the client's application read the data
    net: list[float | None] = []  # per run: the longest gap less the machine's share of it (Witness)
    shares: list[tuple[stalls.Gap, float]] = []
    stolen: list[float | None] = []  # per run: steal of every core during its transfer (ms)
    transfer_ms: list[float | None] = []
    for verdict in verdicts:
        found = last = None
        for event in verdict.timeline:
            if event.TYPE == "gap_histogram" and event.role == "client":
                found, last = event.delivery_max_ms, event  # type: ignore[attr-defined]
                for ms, count in event.counts.items():  # type: ignore[attr-defined]
                    histogram[ms] = histogram.get(ms, 0) + count
        delivery.append(found)
        events = verdict.run_dir / "events.jsonl"
        gaps = stalls.gaps_of(json.loads(line) for line in events.read_text().splitlines()
                              if line.strip()) if events.is_file() else []
        done = next((e for e in verdict.timeline if e.TYPE == "transfer_complete" and e.role == "client"), None)
        took = getattr(done, "duration_ms", None)
        stolen.append(None if done is None or not took else
                      machine.steal_between(witness.steal, done.mono - took / 1000, done.mono))
        transfer_ms.append(took)
        run_shares = machine.machine_share(gaps, witness.late)
        shares += run_shares
        net.append(None if last is None else machine.lab_floor(
            run_shares, last.counts, last.threshold_ms, last.max_ms))  # type: ignore[attr-defined]
    within = sum(1 for f in floors if f is not None and f <= NOISE_LIMIT_MS)
    # A calm run: the hypervisor took at most CALM_STEAL of the cores' time during its transfer.
    cores = len(witness.cores)
    calm = [f for f, st, ms in zip(floors, stolen, transfer_ms, strict=True)
            if f is not None and st is not None and ms and st <= CALM_STEAL * ms * cores]
    dist = Distribution.of(floors)
    causes = stall_causes([v.run_dir for v in verdicts])
    return {**({"stall_causes": causes} if causes else {}),
        "method": f"{scenario.name} ({scenario.workload.size} B at {scenario.workload.rate} B/s, no network change, "
                  "captures and qlog on); noise floor = the longest gap between arrivals of application data at "
                  "the client, each timed by the kernel's receive time of its datagram, from its 1 ms gap "
                  "histogram; delivery = the same as the client's application read the data",
        "limit_ms": NOISE_LIMIT_MS, "runs": len(verdicts), "within_limit": within,
        "noise_floor_ms": dist.to_dict(), "ratio_to_limit": ratio(dist.maximum, NOISE_LIMIT_MS),
        "delivery_floor_ms": Distribution.of(delivery).to_dict(),
        "delivery_within_limit": sum(1 for f in delivery if f is not None and f <= NOISE_LIMIT_MS),
        "passed": [v.passed for v in verdicts], "run_dirs": [str(v.run_dir) for v in verdicts],
        "gap_histogram_ms": dict(sorted(histogram.items(), key=lambda kv: int(kv[0]))),
        "machine_floor": floor_of_machine, "machine_wakeups": wakeups_of_machine,
        "machine_share": {
            "method": f"a sleeper pinned to each of the {cores} cores ran beside the runs, "
                      f"{machine.SLEEP_S * 1000:g} ms at a time ({witness.sleeps} sleeps); the machine's share of "
                      "a gap is its longest overlap with a span in which a sleeper was due to wake and the machine "
                      "did not wake it (its run-queue wait left out); the lab's floor is each run's longest gap "
                      "less that share; each run's steal is every core's over its transfer (/proc/stat, "
                      f"10 ms steps, sampled every {machine.STEAL_EVERY} sleeps), and a run is calm when it is "
                      f"at most {CALM_STEAL:.0%} of the cores' time",
            "cores": cores, "sleeps": witness.sleeps,
            "witness_late_3ms": sum(1 for o in witness.late if o.ms >= 3.0),
            "gaps_at_limit": sum(1 for gap, _ in shares if gap.ms >= NOISE_LIMIT_MS),
            "gaps_with_machine": sum(1 for gap, share in shares if gap.ms >= NOISE_LIMIT_MS and share >= 1.0),
            "machine_ms_in_gaps": round(sum(share for _, share in shares), 3),
            "lab_floor_ms": Distribution.of(net).to_dict(),
            "lab_within_limit": sum(1 for f in net if f is not None and f <= NOISE_LIMIT_MS),
            "steal_ms_per_run": stolen, "transfer_ms_per_run": transfer_ms,
            "calm_steal": CALM_STEAL, "calm_runs": len(calm),
            "calm_within_limit": sum(1 for f in calm if f <= NOISE_LIMIT_MS),
            "calm_noise_floor_ms": Distribution.of(calm).to_dict(),
            "gaps": [{"start": gap.start, "ms": gap.ms, "machine_ms": share} for gap, share in shares
                     if gap.ms >= NOISE_LIMIT_MS],
            "witness_late": [asdict(o) for o in witness.late if o.ms >= 2.0],  # to read a gap's by hand
        },
        # The lab's floor against the machine's own for a paced sender (its worst wake-up + the tick),
        # both measured in this bench: near 1, the lab adds nothing of its own to the machine's.
        "ratio_to_machine": ratio(dist.maximum, wakeups_of_machine["paced_floor_ms"]),
        "steal_ms_during_runs": None if steal_before is None or steal_after is None
        else round(steal_after - steal_before, 1),
    }


def stall_causes(run_dirs: list[Path]) -> dict[str, dict[str, float]]:
    """The client's data gaps of these runs put down to loop stalls, when the endpoints recorded them
    (LAB_LOOP_STALLS, see lab.bench.stalls); empty when they did not."""
    gaps: list[stalls.Gap] = []
    found: dict[str, list[dict[str, Any]]] = {"client": [], "server": []}
    for run_dir in run_dirs:
        for path in sorted((run_dir / "client" / "qlog").glob("*.loop-stalls.json")):
            odcid = path.name.split("_", 1)[0]
            found["client"] += json.loads(path.read_text())["stalls"]
            server = ARTIFACTS / ".runtime" / "server" / "qlog" / f"{odcid}_server.loop-stalls.json"
            if server.is_file():
                found["server"] += json.loads(server.read_text())["stalls"]
        events = run_dir / "events.jsonl"
        if events.is_file() and found["client"]:
            gaps += stalls.gaps_of(json.loads(line) for line in events.read_text().splitlines() if line.strip())
    return stalls.attribute(gaps, found) if found["client"] else {}


def migration(topology: Topology, source: Path, runs: int, rtt_ms: float, directory: Path,
              say: Say) -> dict[str, Any]:
    """A migration scenario at round-trip time r = ``rtt_ms``: its figures against its physical limit."""
    scenario = with_rtt(source, rtt_ms, directory / f"r{rtt_ms:g}ms", topology)
    verdicts = run_times(scenario, topology, runs, False, say)
    out: dict[str, Any] = {"scenario": scenario.name, "rtt_ms": rtt_ms, "runs": len(verdicts),
                           "passed": [v.passed for v in verdicts], "run_dirs": [str(v.run_dir) for v in verdicts],
                           "transports": {}}
    found = limit_for(scenario.tags, scenario.workload.migration)
    for transport in scenario.transports:
        metrics = [v.metrics.get(transport, {}) for v in verdicts]
        figures = {key: Distribution.of(m.get(key) for m in metrics)
                   for key in ("disruption_ms", "recovery_ms", "validation_ms", "noise_floor_ms")}
        entry: dict[str, Any] = {key: d.to_dict() for key, d in figures.items()}
        entry["probes"] = Distribution.of(m.get("probes") for m in metrics).to_dict()
        if found is not None and transport == "quic":
            kind, limit = found
            detection = metrics[0].get("detection_delay_ms") or scenario.workload.probe_after * 1000
            floor = figures["noise_floor_ms"].maximum or NOISE_LIMIT_MS
            value = limit.value(rtt_ms, detection, floor)
            measured = figures[limit.figure].median
            entry["limit"] = {"kind": kind, "figure": limit.figure, "rule": limit.rule, "limit_ms": round(value, 1),
                              "detection_delay_ms": detection, "ratio_of_median": ratio(measured, value)}
        out["transports"][transport] = entry
    return out
