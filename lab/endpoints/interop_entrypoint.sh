#!/bin/sh
# Entry point of the lab's image inside the quic-interop-runner (see docs/interop.md).
#
# Does what the runner's own endpoint image does (quic-network-simulator endpoint/setup.sh and
# run_endpoint.sh) -- valid checksums, routes through the simulator, wait for it -- but only when
# the container really sits on the runner's networks (193.167.0.0/16, fd00:cafe:cafe::/48), so
# the same image is harmless elsewhere. Then hands over to `python -m lab.endpoints.interop`,
# whose exit code (0, 1, or 127 for an unsupported test case) is the container's.
set -u

in_runner=""
v4=""
v6=""
if [ -z "${LAB_INTEROP_NO_SETUP:-}" ]; then  # set by tests: never touch the host's routes
    v4=$(ip -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | grep '^193\.167\.' | head -n1)
    v6=$(ip -6 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | grep -i '^fd00:cafe:cafe:' | head -n1)
fi

if [ -n "$v4" ]; then
    in_runner=1
    addr=${v4%/*}
    net=${addr%.*}
    ip route add 193.167.0.0/16 via "$net.2" dev eth0 2>/dev/null || true
    ip route del "$net.0/24" dev eth0 2>/dev/null || true
fi
if [ -n "$v6" ]; then
    in_runner=1
    prefix=$(echo "${v6%/*}" | awk -F: '{print $1":"$2":"$3":"$4}')
    ip -6 route add fd00:cafe:cafe::/48 via "$prefix::2" dev eth0 2>/dev/null || true
    ip -6 route del "$prefix::/64" dev eth0 2>/dev/null || true
fi
if [ -n "$in_runner" ]; then
    # ns-3 drops packets with the zero checksums of Docker's checksum offload.
    ethtool -K eth0 tx off >/dev/null 2>&1 || echo "warning: ethtool -K eth0 tx off failed" >&2
fi

if [ -n "${QLOGDIR:-}" ]; then
    mkdir -p "$QLOGDIR"
fi

if [ -n "$in_runner" ] && [ "${ROLE:-}" = "client" ]; then
    # The simulator listens on TCP 57832 once ns-3 is up (the runner's /wait-for-it.sh sim:57832).
    python - <<'EOF'
import socket, sys, time
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        socket.create_connection(("sim", 57832), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
print("warning: the simulator did not answer on sim:57832 within 30 s", file=sys.stderr)
EOF
fi

exec python -m lab.endpoints.interop
