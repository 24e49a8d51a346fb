"""`python -m lab.endpoints.balancer.replica -- COMMAND...`: a farm replica's routes, then COMMAND.

The balancer DNATs without SNAT, so a replica sees the client's (post-NAT) address; its replies
must go back through the balancer, whose conntrack entry turns their source back into the VIP.
Hence a route to the internet network via the balancer's farm address (``LB_GATEWAY``,
``INTERNET_SUBNET``), set before ``lab.endpoints.node`` removes Docker's default route.
"""

from __future__ import annotations

import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    command = argv[argv.index("--") + 1:] if "--" in argv else argv
    subprocess.run(["ip", "route", "replace", os.environ["INTERNET_SUBNET"], "via", os.environ["LB_GATEWAY"]],
                   check=True)
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
