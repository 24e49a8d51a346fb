"""The quic-interop-runner endpoint contract for the lab's image (``python -m lab.endpoints.interop``).

Environment (set by the runner): ``ROLE`` (server | client), ``TESTCASE``, ``REQUESTS``
(space-separated URLs), ``SSLKEYLOGFILE``, ``QLOGDIR``, ``SERVER_PARAMS`` / ``CLIENT_PARAMS``.
Mounts: ``/certs`` (cert.pem, priv.key), ``/www`` (served), ``/downloads`` (client output).
Exit codes: 0 success, 1 failure, 127 unsupported test case (also for the runner's random
compliance probe). See docs/interop.md.

Server: exec ``python -m lab.endpoints.server`` with the flags of the test case
(``server_command``). Client: download every URL with hq-interop, or h3 for ``http3``
(``client_plan`` + ``lab.endpoints.quic.http_files.fetch_files``).

Overrides for tests and local runs (not used by the runner): ``LAB_INTEROP_ROOT`` (prefix of
/certs, /www, /downloads), ``LAB_INTEROP_PORT`` (443), ``LAB_INTEROP_LISTEN`` (::),
``LAB_INTEROP_SPARE_PORT`` (8443), ``LAB_PREFERRED_HOST`` and ``LAB_PREFERRED_PORT`` (4443),
``LAB_INTEROP_CA`` (verify the server; default: no verification, as interop clients do),
``PROBE_AFTER_MS`` (the client PINGs after this long without a datagram; default 200, 0 = never).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

UNSUPPORTED = 127

# Test cases per role. In the runner, rebind-port/rebind-addr give both endpoints TESTCASE=transfer
# and connectionmigration gives the client "transfer"; the names are accepted anyway, so that the
# lab can run them by name.
SERVER_TESTCASES = frozenset({"handshake", "transfer", "http3", "rebind-port", "rebind-addr", "connectionmigration"})
CLIENT_TESTCASES = SERVER_TESTCASES
H3_TESTCASES = frozenset({"http3"})


def _root(env: Mapping[str, str]) -> Path:
    return Path(env.get("LAB_INTEROP_ROOT") or "/")


class EnvError(ValueError):
    """A contract variable that does not hold what it must (one line: the variable and what is allowed)."""


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float, what: str) -> float:
    raw = env.get(name) or ""
    try:
        value = float(raw) if raw else float(default)
    except ValueError:
        raise EnvError(f"{name}={raw!r}: not a number; allowed: {what}") from None
    if not low <= value <= high:
        raise EnvError(f"{name}={raw!r}: out of range; allowed: {what}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _number(env, name, default, 1, 65535, "a port, 1-65535")
    if not value.is_integer():
        raise EnvError(f"{name}={env.get(name)!r}: not a whole number; allowed: a port, 1-65535")
    return int(value)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def server_command(env: Mapping[str, str], python: str = sys.executable) -> list[str] | None:
    """The command line of the lab's server for this environment; None when the test case is unsupported.

    connectionmigration: the runner's client connects to port 443, and the lab's server advertises
    preferred_address to connections arriving on ``--preferred-port``; so 443 becomes the
    preferred-port, the main port moves to a spare port, and the preferred address is
    ``LAB_PREFERRED_HOST:LAB_PREFERRED_PORT`` (same server IP, port 4443: the runner's pcap filters
    only know the server's original IPs). Without a LAB_PREFERRED_HOST the case is unsupported.
    """
    testcase = env.get("TESTCASE", "")
    if testcase not in SERVER_TESTCASES:
        return None
    root = _root(env)
    port = _port(env, "LAB_INTEROP_PORT", 443)
    command = [python, "-m", "lab.endpoints.server", "--listen", env.get("LAB_INTEROP_LISTEN") or "::",
               "--cert", str(root / "certs" / "cert.pem"), "--key", str(root / "certs" / "priv.key"),
               "--www", str(root / "www"), "--tcp-port", "0"]
    if testcase == "connectionmigration":
        host = env.get("LAB_PREFERRED_HOST")
        if not host:
            return None
        command += ["--port", str(_port(env, "LAB_INTEROP_SPARE_PORT", 8443)), "--preferred-port", str(port),
                    "--preferred-address", _host_port(host, _port(env, "LAB_PREFERRED_PORT", 4443))]
    else:
        command += ["--port", str(port)]
    if env.get("SSLKEYLOGFILE"):
        command += ["--keylog", env["SSLKEYLOGFILE"]]
    if env.get("QLOGDIR"):
        command += ["--qlog-dir", env["QLOGDIR"]]
    command += shlex.split(env.get("SERVER_PARAMS", ""))
    return command


@dataclass(frozen=True)
class ClientPlan:
    testcase: str
    alpn: str
    urls: tuple[str, ...]
    downloads: Path
    keylog: str | None = None
    qlog_dir: str | None = None
    cafile: str | None = None


def client_plan(env: Mapping[str, str]) -> ClientPlan | None:
    """What the client does for this environment; None when the test case is unsupported."""
    from lab.endpoints.quic.http_files import H3, HQ_ALPN

    testcase = env.get("TESTCASE", "")
    if testcase not in CLIENT_TESTCASES:
        return None
    return ClientPlan(
        testcase=testcase,
        alpn=H3 if testcase in H3_TESTCASES else HQ_ALPN,
        urls=tuple(env.get("REQUESTS", "").split()),
        downloads=_root(env) / "downloads",
        keylog=env.get("SSLKEYLOGFILE") or None,
        qlog_dir=env.get("QLOGDIR") or None,
        cafile=env.get("LAB_INTEROP_CA") or None,
    )


def discover_preferred_host(env: Mapping[str, str]) -> str | None:
    """The server's own IPv4 address for connectionmigration: LAB_PREFERRED_HOST, else server4, else hostname.

    Name resolution only (/etc/hosts in the runner); no packet is sent.
    """
    if env.get("LAB_PREFERRED_HOST"):
        return env["LAB_PREFERRED_HOST"]
    for name in ("server4", socket.gethostname()):
        try:
            infos = socket.getaddrinfo(name, None, socket.AF_INET)
        except OSError:
            continue
        for info in infos:
            address = info[4][0]
            if not address.startswith("127."):
                return address
    return None


def run_server(env: Mapping[str, str]) -> int:
    env = dict(env)
    if env.get("TESTCASE") == "connectionmigration" and not env.get("LAB_PREFERRED_HOST"):
        host = discover_preferred_host(env)
        if host:
            env["LAB_PREFERRED_HOST"] = host
    command = server_command(env)
    if command is None:
        print(f"unsupported test case {env.get('TESTCASE')!r}", file=sys.stderr)
        return UNSUPPORTED
    print("exec " + shlex.join(command), file=sys.stderr, flush=True)
    os.execvpe(command[0], command, env)
    return 1  # not reached


def run_client(env: Mapping[str, str]) -> int:
    from lab.endpoints.quic.http_files import FetchError, fetch_files

    plan = client_plan(env)
    if plan is None:
        print(f"unsupported test case {env.get('TESTCASE')!r}", file=sys.stderr)
        return UNSUPPORTED
    if not plan.urls:
        print("REQUESTS is empty: nothing to download", file=sys.stderr)
        return 0
    timeout = _number(env, "LAB_INTEROP_TIMEOUT", 120, 0.001, 3600, "seconds, more than 0 and at most 3600")
    probe_after = _number(env, "PROBE_AFTER_MS", 200, 0, 60_000, "milliseconds, 0 (never) to 60000") / 1000

    def report(client) -> None:
        print(f"server address at the end: {client.server_address}", file=sys.stderr)

    try:
        saved = asyncio.run(fetch_files(plan.urls, plan.alpn, plan.downloads, cafile=plan.cafile,
                                        keylog=plan.keylog, qlog_dir=plan.qlog_dir, timeout=timeout,
                                        on_done=report, probe_after=probe_after))
    except (FetchError, OSError, ConnectionError, TimeoutError, ValueError) as exc:
        print(f"client failed: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    for path in saved:
        print(f"saved {path} ({path.stat().st_size} bytes)", file=sys.stderr)
    return 0


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    role = env.get("ROLE", "")
    try:
        if role == "server":
            return run_server(env)
        if role == "client":
            return run_client(env)
    except EnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"ROLE must be server or client, not {role!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
