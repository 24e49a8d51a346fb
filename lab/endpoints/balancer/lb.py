"""`python -m lab.endpoints.balancer.lb`: the farm's load balancer (iptables DNAT per conntrack flow).

Run as the container's program (after ``lab.endpoints.node``, which removed Docker's default
route), it installs the mode named by ``LB_MODE`` (``hash`` unless set), writes
/run/lab/balancer-ready for the healthcheck and idles: the kernel does the balancing.
``--apply MODE`` (the controller, through ``docker exec``) replaces the rules with another mode's
and forgets every flow (``conntrack -F``), so the next packet of every client is a new decision.

Environment (from compose.yaml's ``x-lab.farm``): ``LB_VIP``, ``LB_PORT``, ``LB_PREFERRED_PORT``
(optional, balanced alike) and ``LB_BACKENDS``, a space-separated list of ``name=address=server_id``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from lab.endpoints.balancer.rules import MODES, Backend, Balancer, commands, hooks

READY = Path("/run/lab/balancer-ready")


def parse_backends(text: str) -> tuple[Backend, ...]:
    """``name=address=server_id ...`` -> backends, in order (mark K is the K-th)."""
    backends = []
    for item in text.split():
        name, address, server_id = item.split("=")
        backends.append(Backend(name, address, int(server_id, 0)))
    return tuple(backends)


def balancer_from_env(env: dict[str, str]) -> Balancer:
    preferred = int(env.get("LB_PREFERRED_PORT") or 0) or None
    return Balancer(vip=env["LB_VIP"], port=int(env.get("LB_PORT", "443")), backends=parse_backends(env["LB_BACKENDS"]),
                    preferred_port=preferred)


def _iptables(args: list[str], check: bool = True) -> int:
    return subprocess.run(["iptables", "-w", *args], check=check, capture_output=True).returncode


def apply(balancer: Balancer, mode: str) -> None:
    for args in commands(balancer, mode):
        _iptables(args, check=args[2] != "-N")  # -N fails when the chain exists: it is flushed next
    for table, chain, *rest in ([a[1], a[2], *a[3:]] for a in hooks(balancer)):
        if _iptables(["-t", table, "-C", chain, *rest], check=False) != 0:
            _iptables(["-t", table, "-A", chain, *rest])
    subprocess.run(["sh", "-c", "conntrack -F >/dev/null 2>&1; true"], check=True)
    Path("/run/lab").mkdir(parents=True, exist_ok=True)
    Path("/run/lab/balancer-mode").write_text(mode + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.endpoints.balancer.lb", description=__doc__.splitlines()[0])
    parser.add_argument("--apply", choices=MODES, help="install this mode and exit (default: run as the program)")
    args = parser.parse_args(argv)
    balancer = balancer_from_env(dict(os.environ))
    if args.apply:
        apply(balancer, args.apply)
        line = f"balancer: mode {args.apply} (rules replaced, every flow forgotten)"
        print(line, flush=True)
        try:  # also into the container's log, which a run follows (logs/balancer.log)
            with open("/proc/1/fd/1", "w") as log:
                print(line, file=log)
        except OSError:
            pass
        return 0
    mode = os.environ.get("LB_MODE", "hash")
    apply(balancer, mode)
    READY.write_text(mode + "\n")
    print(f"balancer: {balancer.vip}:{balancer.port} -> "
          + ", ".join(f"{b.name} {b.address} (server ID {b.server_id})" for b in balancer.backends)
          + f", mode {mode}", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
