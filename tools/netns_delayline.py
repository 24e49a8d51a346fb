"""Measure the NFQUEUE delay line on the host, in three scratch network namespaces (root only).

    client (10.250.1.10) ── router (NAT, delay line) ── server (10.250.2.10)

The namespaces are created here and removed at the end; no packet leaves them. Prints JSON:
RTT with no delay line, RTT with the configured one-way delay each way (expected 2 x delay),
and the delay line's throughput ceiling (UDP blast through the queue, counted at the receiver).

    sudo .venv/bin/python tools/netns_delayline.py --delay-ms 25 --jitter-ms 0
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NS = {"cl": "qml-dl-cl", "rt": "qml-dl-rt", "sv": "qml-dl-sv"}
QUEUE = 7
TAG = "lab-impair"

RECEIVER = r"""
import socket, sys, time, json
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
s.bind(("0.0.0.0", 5201)); s.settimeout(float(sys.argv[1]))
n = b = 0; first = last = None
try:
    while True:
        data = s.recv(65535); now = time.monotonic()
        if first is None: first = now
        n += 1; b += len(data); last = now
except socket.timeout:
    pass
print(json.dumps({"packets": n, "bytes": b, "seconds": (last - first) if n > 1 else 0.0}))
"""

SENDER = r"""
import socket, sys, time, json
dest, size, seconds, pps = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"x" * size; n = 0; start = time.monotonic(); end = start + seconds
gap = 1.0 / pps if pps > 0 else 0.0
while True:
    now = time.monotonic()
    if now >= end: break
    if gap:
        due = start + n * gap
        if due > now: time.sleep(due - now)
    try:
        s.sendto(payload, (dest, 5201)); n += 1
    except OSError:
        pass
print(json.dumps({"sent": n, "seconds": time.monotonic() - start}))
"""


def sh(*args: str, check: bool = True) -> str:
    result = subprocess.run(list(args), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def nsx(ns: str, *args: str, check: bool = True) -> str:
    return sh("ip", "netns", "exec", NS[ns], *args, check=check)


def setup() -> None:
    teardown()
    for name in NS.values():
        sh("ip", "netns", "add", name)
    sh("ip", "link", "add", "cl0", "netns", NS["cl"], "type", "veth", "peer", "rt0", "netns", NS["rt"])
    sh("ip", "link", "add", "rt1", "netns", NS["rt"], "type", "veth", "peer", "sv0", "netns", NS["sv"])
    for ns, dev, addr in (("cl", "cl0", "10.250.1.10/24"), ("rt", "rt0", "10.250.1.2/24"),
                          ("rt", "rt1", "10.250.2.2/24"), ("sv", "sv0", "10.250.2.10/24")):
        nsx(ns, "ip", "addr", "add", addr, "dev", dev)
        nsx(ns, "ip", "link", "set", dev, "up")
        nsx(ns, "ip", "link", "set", "lo", "up")
    nsx("cl", "ip", "route", "add", "default", "via", "10.250.1.2")
    nsx("rt", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    # The lab router's rules (lab/endpoints/router/nat.py): forward LAN -> WAN, replies back, NAT.
    for rule in (["-P", "FORWARD", "DROP"],
                 ["-A", "FORWARD", "-i", "rt0", "-o", "rt1", "-s", "10.250.1.0/24", "-j", "ACCEPT"],
                 ["-A", "FORWARD", "-i", "rt1", "-o", "rt0", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED",
                  "-j", "ACCEPT"],
                 ["-t", "nat", "-A", "POSTROUTING", "-o", "rt1", "-s", "10.250.1.0/24", "-j", "MASQUERADE",
                  "--random"]):
        nsx("rt", "iptables", "-w", *rule)


def teardown() -> None:
    for name in NS.values():
        sh("ip", "netns", "del", name, check=False)


def start_delayline(delay_ms: float, jitter_ms: float) -> subprocess.Popen:
    state = Path(f"/tmp/qml-delayline-{QUEUE}.json")
    state.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(["ip", "netns", "exec", NS["rt"], sys.executable, "-m", "lab.endpoints.router.delayline",
                             "--queue", str(QUEUE), "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms),
                             "--state", str(state)], env=env)
    deadline = time.monotonic() + 5
    while not state.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"delay line did not start (exit {proc.poll()})")
        time.sleep(0.02)
    for dev in ("rt0", "rt1"):
        nsx("rt", "iptables", "-w", "-t", "raw", "-A", "PREROUTING", "-i", dev, "-m", "comment", "--comment", TAG,
            "-j", "NFQUEUE", "--queue-num", str(QUEUE), "--queue-bypass")
    return proc


def stop_delayline(proc: subprocess.Popen) -> dict:
    nsx("rt", "iptables", "-w", "-t", "raw", "-F", "PREROUTING")
    proc.terminate()
    proc.wait(timeout=5)
    return json.loads(Path(f"/tmp/qml-delayline-{QUEUE}.json").read_text())


def ping_rtt(count: int, interval: float) -> dict:
    out = nsx("cl", "ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", "2", "10.250.2.10", check=False)
    stats = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", out)
    loss = re.search(r"([\d.]+)% packet loss", out)
    if not stats:
        return {"error": out.strip()[-200:]}
    low, avg, high, mdev = (float(x) for x in stats.groups())
    return {"count": count, "min_ms": low, "avg_ms": avg, "max_ms": high, "mdev_ms": mdev,
            "loss_pct": float(loss.group(1)) if loss else None}


def blast(size: int, seconds: float, pps: float) -> dict:
    receiver = subprocess.Popen(["ip", "netns", "exec", NS["sv"], sys.executable, "-c", RECEIVER, "1.5"],
                                stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    sent = json.loads(nsx("cl", sys.executable, "-c", SENDER, "10.250.2.10", str(size), str(seconds), str(pps)))
    got = json.loads(receiver.communicate(timeout=seconds + 10)[0])
    secs = got["seconds"] or seconds
    return {"size": size, "sent": sent["sent"], "sent_pps": round(sent["sent"] / sent["seconds"]),
            "received": got["packets"], "received_pps": round(got["packets"] / secs),
            "received_mbit": round(got["bytes"] * 8 / secs / 1e6, 1),
            "loss_pct": round(100 * (1 - got["packets"] / max(1, sent["sent"])), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay-ms", type=float, default=25.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--pings", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=1200)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    report: dict = {"delay_ms": args.delay_ms, "jitter_ms": args.jitter_ms}
    setup()
    try:
        report["rtt_without"] = ping_rtt(args.pings, 0.02)
        report["blast_without"] = blast(args.size, args.seconds, 0)
        proc = start_delayline(args.delay_ms, args.jitter_ms)
        try:
            report["rtt_with"] = ping_rtt(args.pings, 0.02)
            report["blast_with"] = blast(args.size, args.seconds, 0)
        finally:
            report["delayline_state"] = stop_delayline(proc)
        report["rtt_after_removal"] = ping_rtt(20, 0.02)
        expected = 2 * args.delay_ms + report["rtt_without"].get("avg_ms", 0)
        if "avg_ms" in report["rtt_with"]:
            report["rtt_ratio"] = round(report["rtt_with"]["avg_ms"] / expected, 3)
    finally:
        teardown()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
