"""The client's CLAT (464XLAT, RFC 6877) on an IPv6-only network: `python -m lab.endpoints.clat up
--subnet6 S` flushes the client's IPv4 address on the interface in S (Docker's bridge driver
insists on one) and starts tayga on the TUN device ``clat`` (lab.endpoints.shared.tayga), so the
client's IPv4 sockets go on working over IPv6 through the carrier's NAT64. `... down` stops it.
The controller (lab.control.actions) runs both and routes IPv4 via the device.

Environment (compose.yaml): NAT64_PREFIX, CLAT_PREFIX.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from lab.endpoints.shared import netconf, tayga


def translator() -> tayga.Translator:
    return tayga.clat(os.environ["NAT64_PREFIX"], os.environ["CLAT_PREFIX"])


def up(subnet6: str) -> dict[str, str]:
    interface = netconf.interface_in(subnet6)
    if interface is None:
        raise SystemExit(f"clat: no interface in {subnet6}: {netconf.interfaces(6)}")
    flushed = [i.address for i in netconf.interfaces() if i.name == interface.name]
    netconf.run("ip", "-4", "addr", "flush", "dev", interface.name)
    clat = translator()
    directory = Path(clat.setup[0].split()[-1])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{clat.device}.conf").write_text(clat.config)
    netconf.run("sh", "-ec", "; ".join(clat.setup[1:]))
    return {"interface": interface.name, "ipv4_flushed": ",".join(flushed), "device": clat.device}


def down() -> dict[str, str]:
    clat = translator()
    pidfile = Path(clat.setup[0].split()[-1]) / f"{clat.device}.pid"
    stopped = ""
    if pidfile.is_file():
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
            stopped = pidfile.read_text().strip()
        except (ProcessLookupError, ValueError):
            pass
        pidfile.unlink(missing_ok=True)
    netconf.run("ip", "link", "del", clat.device, check=False)
    return {"stopped": stopped, "device": clat.device}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.endpoints.clat")
    parser.add_argument("command", choices=("up", "down"))
    parser.add_argument("--subnet6", help="up: the IPv6-only network's subnet")
    args = parser.parse_args(argv)
    if args.command == "up" and not args.subnet6:
        parser.error("up needs --subnet6")
    print(json.dumps(up(args.subnet6) if args.command == "up" else down()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
