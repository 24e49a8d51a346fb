"""`python -m lab bench [impair|noise|goodput|migration|all]`: measured figures, each with its runs and method.

* noise: the lab's own noise floor (baseline scenario, N runs), against its 5 ms limit.
* goodput: unpaced goodput through the NAT path against the same endpoints on loopback (>= 0.8).
* migration: migration scenarios at r = 0 and r = 50 ms, N runs each, against their physical limits.
* impair: measured accuracy of the link impairments, configured vs measured.

Every part writes artifacts/bench/<run>/bench.json (and a histogram of the noise floor).

The impairment part:

From the client, through the router of NETWORK (the client must be on it, routed through it), to
the server; every measurement is bounded in packets and time, and the network is reset at the end.

* RTT: ping (ICMP) with `delay` applied, vs 2 x delay (+ the unimpaired baseline).
* Loss: a paced UDP stream client -> server, counted at the receiver (one direction).
* Rate: a UDP blast at 2 x the limit for a few seconds, received rate at the server
  (on-wire bits: payload + UDP/IP/Ethernet headers, as tbf and netem count them).
* Delay line ceiling (fallback mode): an unpaced UDP blast through the delay line (1 ms) vs none.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

from lab.bench import goodput as goodput_run
from lab.bench import scale as scale_figures
from lab.bench import scale_run
from lab.bench.figures import histogram_svg
from lab.bench.runs import BenchRun, detection, migration, noise
from lab.control.actions import ActionError, Lab
from lab.errors import LabError
from lab.scenario.schema import Impairment
from lab.topology.load import ROOT, load_topology
from lab.topology.model import CLIENT, SERVER
from lab.units import parse_bit_rate, parse_duration, parse_percent, parse_size

HELP = "measured figures: noise floor, goodput against loopback, migration against its limits, impairments"
PARTS = ("all", "noise", "goodput", "migration", "detection", "impair", "scale")  # all: every part but scale (minutes)
SCENARIOS = ROOT / "scenarios"
MIGRATION_SCENARIOS = "wifi-to-cellular-active,nat-rebinding,wifi-to-cellular,preferred-address,tcp-vs-quic"
PORT = 5201
HEADERS = 8 + 20 + 14  # UDP + IPv4 + Ethernet: what the qdisc counts beyond the payload

RECEIVER = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.settimeout(float(sys.argv[2]))
n = b = 0; first = last = None; end = time.monotonic() + float(sys.argv[3])
try:
    while time.monotonic() < end:
        data = s.recv(65535); now = time.monotonic()
        first = now if first is None else first
        n += 1; b += len(data); last = now
except socket.timeout:
    pass
print(json.dumps({"packets": n, "bytes": b, "seconds": (last - first) if n > 1 else 0.0}))
"""

SENDER = r"""
import json, socket, sys, time
dest, port, size, count, seconds, pps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), \
    float(sys.argv[5]), float(sys.argv[6])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"x" * size; n = 0; start = time.monotonic(); end = start + seconds
while n < count and time.monotonic() < end:
    if pps:
        wait = start + n / pps - time.monotonic()
        if wait > 0: time.sleep(wait)
    try:
        s.sendto(payload, (dest, port)); n += 1
    except OSError:
        time.sleep(0.0005)
print(json.dumps({"sent": n, "seconds": time.monotonic() - start}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("part", nargs="?", choices=PARTS, default="all", help="which figures (default all)")
    parser.add_argument("--network", default="home", help="the client network to impair (default home)")
    parser.add_argument("--delay", default="25ms", help="one-way delay to measure (RTT = 2 x delay)")
    parser.add_argument("--loss", default="5%", help="per-direction loss to measure")
    parser.add_argument("--rate", default="10mbit", help="rate limit to measure")
    parser.add_argument("--packets", type=int, default=10000, help="UDP packets for the loss measurement")
    parser.add_argument("--pings", type=int, default=200, help="pings for the RTT measurement")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--force", action="store_true", help="run even while a scenario's client is active")
    parser.add_argument("--runs", type=int, default=3, help="runs per migration scenario and RTT (default 3)")
    parser.add_argument("--noise-runs", type=int, default=5, help="runs of the baseline for the noise floor (5)")
    parser.add_argument("--goodput-runs", type=int, default=3,
                        help="unpaced downloads through the NAT path and on loopback, each (default 3)")
    parser.add_argument("--goodput-size", default="40MB", help="size of each goodput download (default 40MB)")
    parser.add_argument("--rtts", default="0,50", help="round-trip times r in ms to run the migrations at (0,50)")
    parser.add_argument("--probe-after", default="50,100,200",
                        help="detection delays in ms for the trade-off on nat-rebinding (50,100,200)")
    parser.add_argument("--connections", default=",".join(map(str, scale_figures.COUNTS)),
                        help="scale: numbers of concurrent connections (1,10,50,100)")
    parser.add_argument("--changes", default=",".join(scale_figures.CHANGES),
                        help="scale: the changes they go through (handoff,rebinding)")
    parser.add_argument("--scenarios", default=MIGRATION_SCENARIOS,
                        help="migration scenarios to measure (comma separated)")


def _out(container: Any, command: list[str], detach: bool = False) -> str:
    code, output = container.exec_run(command)
    return output.decode(errors="replace") if output else ""


def ping(lab: Lab, count: int, interval: float = 0.02) -> dict[str, Any]:
    out = _out(lab.ctr(CLIENT), ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", "2",
                                 lab.topology.server_address])
    stats = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", out)
    lost = re.search(r"([\d.]+)% packet loss", out)
    if not stats:
        return {"error": out.strip()[-200:] or "no ping output"}
    low, avg, high, mdev = (float(x) for x in stats.groups())
    return {"count": count, "min_ms": low, "avg_ms": avg, "max_ms": high, "mdev_ms": mdev,
            "loss_pct": float(lost.group(1)) if lost else None}


def udp(lab: Lab, size: int, count: int, seconds: float, pps: float) -> dict[str, Any]:
    """Send from the client, count at the server (a receiver started first, stopped by idleness)."""
    server = lab.ctr(SERVER)
    result_file = f"/tmp/lab-bench-{time.time_ns()}.json"
    server.exec_run(["sh", "-c", f"python3 -c '{RECEIVER}' {PORT} 1.5 {seconds + 10} > {result_file}"], detach=True)
    time.sleep(0.5)
    sent = json.loads(_out(lab.ctr(CLIENT), ["python3", "-c", SENDER, lab.topology.server_address, str(PORT),
                                             str(size), str(count), str(seconds), str(pps)]))
    deadline = time.monotonic() + 15
    got: dict[str, Any] = {}
    while time.monotonic() < deadline:
        text = _out(server, ["cat", result_file]).strip()
        if text.startswith("{"):
            got = json.loads(text)
            break
        time.sleep(0.2)
    server.exec_run(["rm", "-f", result_file])
    if not got:
        return {"error": "the receiver reported nothing"}
    seconds_rx = got["seconds"] or 1e-9
    return {"size": size, "sent": sent["sent"], "received": got["packets"],
            "loss_pct": round(100 * (1 - got["packets"] / max(1, sent["sent"])), 3),
            "received_pps": round(got["packets"] / seconds_rx),
            "goodput_mbit": round(got["bytes"] * 8 / seconds_rx / 1e6, 3),
            "wire_mbit": round(got["packets"] * (size + HEADERS) * 8 / seconds_rx / 1e6, 3)}


def measure(lab: Lab, network: str, delay: float, loss: float, rate: int, packets: int, pings: int,
            progress: Any = None) -> dict[str, Any]:
    from lab.control import impair

    def say(text: str) -> None:
        if progress:
            progress(text)

    if lab.route_network is None:
        lab.route_network = network
    lab.set_routes(network)
    impair.reset(lab, network)
    report: dict[str, Any] = {"network": network}
    try:
        say("baseline RTT")
        report["baseline"] = ping(lab, 50)
        base = report["baseline"].get("avg_ms", 0.0)
        say(f"RTT with delay {delay * 1000:g} ms each way")
        try:
            result = impair.apply(lab, network, Impairment(delay=delay))
            report["mode"] = result.detail["mode"]
            measured = ping(lab, pings)
            configured = 2 * delay * 1000
            report["rtt"] = {"configured_rtt_ms": configured, **measured}
            if "avg_ms" in measured:
                report["rtt"]["ratio"] = round(measured["avg_ms"] / configured, 4)
                report["rtt"]["ratio_minus_baseline"] = round((measured["avg_ms"] - base) / configured, 4)
        except ActionError as exc:
            report["rtt"] = {"error": str(exc)}
        say(f"loss {loss:g}% (UDP, {packets} packets)")
        result = impair.apply(lab, network, Impairment(loss=loss))
        report.setdefault("mode", result.detail["mode"])
        flow = udp(lab, 200, packets, 30.0, 5000)
        report["loss"] = {"configured_pct": loss, **flow}
        if "loss_pct" in flow and loss:
            report["loss"]["ratio"] = round(flow["loss_pct"] / loss, 4)
        say(f"rate {rate / 1e6:g} mbit (UDP blast at 2x)")
        impair.apply(lab, network, Impairment(rate=rate))
        size = 1200
        flow = udp(lab, size, 10**9, 4.0, 2 * rate / ((size + HEADERS) * 8))
        report["rate"] = {"configured_mbit": rate / 1e6, **flow}
        if "wire_mbit" in flow:
            report["rate"]["ratio"] = round(flow["wire_mbit"] * 1e6 / rate, 4)
        if report.get("mode") == impair.FALLBACK:
            say("delay line ceiling (unpaced UDP blast, 1200 B)")
            impair.reset(lab, network)
            without = udp(lab, size, 10**9, 2.0, 0)
            try:
                impair.apply(lab, network, Impairment(delay=0.001))
                with_line = udp(lab, size, 10**9, 2.0, 0)
            except ActionError as exc:
                with_line = {"error": str(exc)}
            report["delayline_ceiling"] = {"without": without, "with_1ms": with_line}
    finally:
        impair.reset(lab, network)
    return report


def _line(name: str, configured: str, data: dict[str, Any], measured: str, ratio_key: str = "ratio") -> str:
    if "error" in data:
        return f"  {name:<8} {configured:<18} unavailable: {data['error']}"
    return f"  {name:<8} {configured:<18} {measured:<44} ratio {data.get(ratio_key, float('nan')):.3f}"


def run(args: argparse.Namespace) -> int:
    try:
        delay, loss, rate = parse_duration(args.delay), parse_percent(args.loss), parse_bit_rate(args.rate)
        rtts = [float(r) for r in args.rtts.split(",") if r.strip()]
        delays = [float(d) for d in args.probe_after.split(",") if d.strip()]
        goodput_size = parse_size(args.goodput_size)
    except ValueError as exc:
        raise LabError(f"bench: {exc}") from None
    counts, changes = _scale_options(args)  # before anything touches the lab
    lab = Lab(load_topology())
    if args.network not in lab.topology.gateways:
        raise LabError(f"--network {args.network!r} is not a client network; "
                       f"allowed: {', '.join(lab.topology.gateways)}")
    busy = lab.ctr(CLIENT).exec_run(["pgrep", "-f", "lab.endpoints.client"])[0] == 0
    if busy and not args.force:
        raise LabError("a client workload (scenario run) is active: the bench would disturb it; "
                       "wait for it to end or pass --force")
    bench = BenchRun.start()
    say = (lambda text: None) if args.format == "json" else (lambda text: print(f"... {text}", flush=True))
    if args.part in ("all", "noise"):
        bench.results["noise"] = noise(lab.topology, SCENARIOS / "baseline.yaml", args.noise_runs, say)
        (bench.directory / "noise-histogram.svg").write_text(histogram_svg(bench.results["noise"]))
        if args.format == "text":
            _print_noise(bench.results["noise"])
    if args.part in ("all", "goodput") and args.goodput_runs > 0:
        bench.results["goodput"] = goodput_run.goodput(lab.topology, SCENARIOS / "baseline.yaml", args.goodput_runs,
                                                       goodput_size, bench.directory, say)
        if args.format == "text":
            _print_goodput(bench.results["goodput"])
    if args.part in ("all", "migration") and args.runs > 0:
        found = []
        for name in [n for n in args.scenarios.split(",") if n]:
            for rtt in rtts:
                found.append(migration(lab.topology, resolve_file(name), args.runs, rtt, bench.directory, say))
        bench.results["migration"] = found
        if args.format == "text":
            _print_migration(found)
    if args.part in ("all", "detection") and args.runs > 0:
        bench.results["detection"] = detection(lab.topology, resolve_file("nat-rebinding"), args.runs, delays,
                                               bench.directory, say)
        if args.format == "text":
            _print_detection(bench.results["detection"])
    if args.part in ("all", "impair"):
        if args.network not in lab.client_attachments():
            lab.reset(lab.topology.client_start_networks)
        progress = None if args.format == "json" else (lambda text: print(f"... {text}", flush=True))
        bench.results["impair"] = measure(lab, args.network, delay, loss, rate, args.packets, args.pings, progress)
        if args.format == "text":
            _print_impair(bench.results["impair"], delay, loss, rate)
    if args.part == "scale":
        rounds = scale_run.scale(lab, counts, changes, say)
        bench.results["scale"] = {"method": scale_figures.table([])[0], "rounds": [r.summary() for r in rounds]}
        if args.format == "text":
            print("\n".join(scale_figures.table(rounds)))
    path = bench.write()
    if args.format == "json":
        print(json.dumps(bench.results, indent=2, default=str))
    else:
        print(f"written: {path.relative_to(ROOT)}")
    return 0


def _scale_options(args: argparse.Namespace) -> tuple[list[int], list[str]]:
    counts = []
    for text in args.connections.split(","):
        if not text.strip().isdigit() or not 1 <= int(text) <= 200:
            raise LabError(f"--connections: {text.strip()!r} is not a count; allowed: whole numbers 1-200, "
                           "comma separated")
        counts.append(int(text))
    changes = [c.strip() for c in args.changes.split(",") if c.strip()]
    unknown = [c for c in changes if c not in scale_figures.CHANGES]
    if unknown or not changes:
        raise LabError(f"--changes: {', '.join(unknown) or 'empty'}; allowed: {', '.join(scale_figures.CHANGES)}")
    return counts, changes


def resolve_file(name: str) -> Path:
    path = SCENARIOS / f"{name}.yaml"
    if not path.exists():
        raise LabError(f"--scenarios: no scenario named {name!r}")
    return path


def _print_noise(found: dict[str, Any]) -> None:
    dist = found["noise_floor_ms"]
    print(f"noise floor ({found['runs']} runs of the baseline, captures and qlog on): "
          f"max {dist['maximum']:.1f} ms, median {dist['median']:.1f} ms; {found['within_limit']}/{found['runs']} runs "
          f"<= {found['limit_ms']:g} ms; ratio max/limit {found['ratio_to_limit']:.2f}")
    delivery = found.get("delivery_floor_ms") or {}
    if delivery.get("maximum") is not None:
        print(f"  as the client's application read the data (its own scheduling delay included): max "
              f"{delivery['maximum']:.1f} ms, median {delivery['median']:.1f} ms; {found['delivery_within_limit']}/"
              f"{found['runs']} runs <= {found['limit_ms']:g} ms")
    for entry in found.get("machine_floor", []):
        print(f"  the machine, lab idle, {entry['busy_cores']} busy core(s) for {entry['seconds']:g} s: longest gap "
              f"{entry['longest_gap_ms']:.1f} ms, {entry['gaps_at_limit']} gaps >= {found['limit_ms']:g} ms; "
              f"{entry['stolen_gaps']} stolen by the hypervisor ({entry['stolen_ms']:.0f} ms, "
              f"longest {entry['longest_stolen_ms']:.1f} ms)")
    w = found.get("machine_wakeups")
    if w:
        print(f"  the machine, lab idle, a thread sleeping {w['period_ms']:g} ms at a time for {w['seconds']:g} s: "
              f"woken up to {w['worst_ms']:.1f} ms late ({w['late_3ms']} of {w['sleeps']} sleeps >= 3 ms late): "
              f"a sender paced every {w['tick_ms']:g} ms can have gaps of {w['paced_floor_ms']:.1f} ms "
              "from its wake-ups alone")
        share = found.get("machine_share")
        if share and share["lab_floor_ms"].get("maximum") is not None:
            lab = share["lab_floor_ms"]
            print(f"  beside the runs, a sleeper on each core: {share['gaps_with_machine']} of the "
                  f"{share['gaps_at_limit']} gaps >= {found['limit_ms']:g} ms had the machine holding a core "
                  f"({share['machine_ms_in_gaps']:.1f} ms of them); the lab's floor less that share: max "
                  f"{lab['maximum']:.1f} ms, median {lab['median']:.1f} ms; {share['lab_within_limit']}/"
                  f"{found['runs']} runs <= {found['limit_ms']:g} ms")
        if share and share.get("steal_ms_per_run") is not None:
            steal = ", ".join("?" if v is None else f"{v:.0f}" for v in share["steal_ms_per_run"])
            print(f"  steal during each run's transfer: {steal} ms; in the {share['calm_runs']} calm runs (steal <= "
                  f"{share['calm_steal']:.0%} of the cores' time): {share['calm_within_limit']}/{share['calm_runs']} "
                  f"<= {found['limit_ms']:g} ms")
        if found.get("ratio_to_machine") is not None:
            print(f"  the lab's longest gap over that floor of the machine: {found['ratio_to_machine']:.2f}")
    if found.get("steal_ms_during_runs") is not None:
        print(f"  steal time of the machine during the {found['runs']} runs: {found['steal_ms_during_runs']:.0f} ms "
              "(/proc/stat, 10 ms steps)")
    for name, entry in found.get("stall_causes", {}).items():  # recorded with LAB_LOOP_STALLS
        print(f"  {entry['gaps']:4d} gaps >= 5 ms ({entry['total_ms']:.0f} ms in all): {name}")


def _print_detection(found: dict[str, Any]) -> None:
    print(f"detection delay trade-off on {found['scenario']} (median [min-max] over the runs):")
    for row in found["rows"]:
        d, p = row["disruption_ms"], row["probes"]
        if d["runs"]:
            print(f"  probe_after {row['probe_after_ms']:>4g} ms: disruption {d['median']:.0f} [{d['minimum']:.0f}-"
                  f"{d['maximum']:.0f}] ms, probes {p['median']:g} [{p['minimum']:g}-{p['maximum']:g}], "
                  f"{row['runs']} runs")


def _print_migration(found: list[dict[str, Any]]) -> None:
    print("migration figures: median [min-max] over the runs; limit = the physical floor (docs/references.md)")
    for entry in found:
        for transport, figures in entry["transports"].items():
            parts = []
            for key in ("disruption_ms", "recovery_ms", "validation_ms"):
                d = figures[key]
                if d["runs"]:
                    parts.append(f"{key.removesuffix('_ms')} {d['median']:.0f} [{d['minimum']:.0f}-{d['maximum']:.0f}]")
            limit = figures.get("limit")
            against = ""
            if limit and limit["ratio_of_median"] is not None:
                against = (f"; {limit['figure'].removesuffix('_ms')} / limit {limit['limit_ms']:.0f} ms "
                           f"({limit['rule']}) = {limit['ratio_of_median']:.2f}")
            print(f"  {entry['scenario']:<24} r={entry['rtt_ms']:<3g} {transport:<4} {entry['runs']} runs: "
                  + ", ".join(parts) + " ms" + against)
    pairs: dict[tuple[str, float], dict[str, Any]] = {(e["scenario"], e["rtt_ms"]): e for e in found}
    for (name, rtt), entry in pairs.items():
        quic, tcp = entry["transports"].get("quic"), entry["transports"].get("tcp")
        if quic and tcp:
            for key in ("disruption_ms", "recovery_ms"):
                q, t = quic[key]["median"], tcp[key]["median"]
                if q and t:
                    print(f"  ratio {name} r={rtt:g} {key.removesuffix('_ms')} tcp/quic (medians) = {t / q:.2f}")


def _print_goodput(found: dict[str, Any]) -> None:
    nat, loop, share = found["nat_mbit"], found["loopback_mbit"], found["ratio_of_medians"]
    text = "not measured" if share is None else f"{share:.2f}"
    print(f"goodput, unpaced {found['size'] / 1e6:g} MB ({found['runs']} runs each, alternating): "
          f"NAT path (captures and qlog on) median {nat['median'] or 0:.1f} Mbit/s [{nat['minimum'] or 0:.1f}-"
          f"{nat['maximum'] or 0:.1f}], {nat['runs']} runs; loopback (qlog and tcpdump on) median "
          f"{loop['median'] or 0:.1f} Mbit/s [{loop['minimum'] or 0:.1f}-{loop['maximum'] or 0:.1f}], "
          f"{loop['runs']} runs; ratio of medians {text} "
          f"(limit >= {found['limit']:g}: {'met' if found['within_limit'] else 'NOT met'})")


def _print_impair(report: dict[str, Any], delay: float, loss: float, rate: int) -> None:
    print(f"impairment accuracy on {report['network']} (mode {report.get('mode', '?')}), client -> server")
    base = report["baseline"]
    print(f"  baseline RTT {base.get('avg_ms', float('nan')):.3f} ms (ping x{base.get('count', 0)})")
    rtt = report["rtt"]
    print(_line("rtt", f"{2 * delay * 1000:g} ms RTT", rtt,
                f"avg {rtt.get('avg_ms', 0):.2f} ms (min {rtt.get('min_ms', 0):.2f}, mdev {rtt.get('mdev_ms', 0):.2f})"
                f" x{rtt.get('count', 0)}"))
    lost = report["loss"]
    print(_line("loss", f"{loss:g}% one way", lost,
                f"{lost.get('loss_pct', 0):.2f}% ({lost.get('sent', 0) - lost.get('received', 0)}"
                f"/{lost.get('sent', 0)} UDP)"))
    rated = report["rate"]
    print(_line("rate", f"{rate / 1e6:g} mbit", rated,
                f"{rated.get('wire_mbit', 0):.2f} mbit on wire ({rated.get('goodput_mbit', 0):.2f} goodput)"))
    _print_ceiling(report)


def _print_ceiling(report: dict[str, Any]) -> None:
    ceiling = report.get("delayline_ceiling")
    if ceiling:
        w, d = ceiling["without"], ceiling["with_1ms"]
        if "error" in d:
            print(f"  delay line ceiling: unavailable: {d['error']}")
        else:
            print(f"  delay line ceiling: {d.get('received_pps', 0)} pps, {d.get('goodput_mbit', 0):.0f} mbit "
                  f"(1200 B, 1 ms) vs {w.get('received_pps', 0)} pps, {w.get('goodput_mbit', 0):.0f} mbit without;"
                  f" sender loss {d.get('loss_pct', 0):.1f}%")
