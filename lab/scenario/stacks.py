"""Which QUIC implementation plays each end of a run (pure).

``lab`` is the lab's own instrumented aioquic endpoints (white-box: every decision is an event).
Any other stack is a black box reached through the quic-interop-runner endpoint contract
(ROLE, TESTCASE, REQUESTS, SSLKEYLOGFILE, QLOGDIR; /certs, /www, /downloads; exit 127 for an
unsupported test case), in its own container joined to the network namespace of the lab's client
or server container, so the interfaces, routes and NAT stay the lab's. Such a run is judged from
what any stack leaves: the captures (decrypted with the key log it writes), its qlog when it writes
one, the downloaded files' sha256 and its exit code (see :mod:`lab.verify.blackbox`).

The lab's server speaks hq-interop and h3 as well as its own protocol, so a foreign client is
served by the instrumented server; for a foreign server the lab's server yields UDP port 443.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.errors import LabError

LAB = "lab"
AIOQUIC = "aioquic"
QH3 = "qh3"
QH3_IMAGE = "quic-migration-lab-qh3:latest"
ROLES = ("client", "server")
UNSUPPORTED_EXIT = 127  # the runner's "test case not supported"
STACK_FAILURE = "stack"  # how a run error caused by a foreign stack begins (a failed cell, not a lab error)

# A Docker image reference: [registry/]name[:tag][@digest], lower-case name components.
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$")


class StackError(LabError):
    prefix = "error: stack: "  # printed before the message by lab.cli.main


@dataclass(frozen=True)
class Stack:
    """One end's implementation: its name, the image it runs in, and whether it is the lab's own."""

    name: str
    image: str | None = None  # None: the lab's image (LAB_IMAGE)
    command: tuple[str, ...] = ()  # empty: the image's own entry point
    white_box: bool = False

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "image": self.image, "white_box": self.white_box}


# The stacks known by name; anything else must be an image reference.
STACKS: dict[str, Stack] = {
    # The lab's instrumented endpoints: the scenario's own workload, events from both ends.
    LAB: Stack(LAB, white_box=True),
    # aioquic 1.7.2 as a black box: the lab image's interop-contract program (lab.endpoints.interop).
    AIOQUIC: Stack(AIOQUIC, None, ("python", "-m", "lab.endpoints.interop")),
    # qh3, an independent fork of aioquic with its own TLS stack (stacks/qh3, images/qh3).
    QH3: Stack(QH3, QH3_IMAGE),
}


def resolve(spec: str | None, role: str) -> Stack:
    """A stack from a name in STACKS or a Docker image reference; ``None`` is the lab's own."""
    if role not in ROLES:
        raise StackError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if spec is None or spec == "":
        return STACKS[LAB]
    if spec in STACKS:
        return STACKS[spec]
    if not _IMAGE.match(spec) or (":" not in spec and "/" not in spec and "@" not in spec):
        raise StackError(f"{role} {spec!r}: not a known stack ({', '.join(STACKS)}) nor an image reference "
                         "such as name:tag")
    return Stack(spec, spec)


@dataclass(frozen=True)
class Endpoints:
    """The client's and the server's stacks for one run."""

    client: Stack = STACKS[LAB]
    server: Stack = STACKS[LAB]

    @property
    def black_box(self) -> bool:
        return not (self.client.white_box and self.server.white_box)

    @property
    def label(self) -> str:
        return f"{self.client.name} -> {self.server.name}"

    def to_dict(self) -> dict[str, object]:
        return {"client": self.client.to_dict(), "server": self.server.to_dict(), "black_box": self.black_box}

    @classmethod
    def from_dict(cls, data: dict | None) -> Endpoints:
        if not data:
            return cls()
        sides = {}
        for role in ROLES:
            side = data.get(role) or {}
            name = side.get("name") or LAB
            sides[role] = STACKS.get(name) or Stack(name, side.get("image") or name)
        return cls(**sides)


def endpoints(client: str | None = None, server: str | None = None) -> Endpoints:
    """The endpoints of a run. One foreign end makes both ends speak the interop contract: the
    client is then at least the black-box aioquic (the lab's white-box client speaks only the lab's
    own protocol); the server stays the lab's instrumented one, which serves hq-interop too."""
    client_stack, server_stack = resolve(client, "client"), resolve(server, "server")
    if not (client_stack.white_box and server_stack.white_box) and client_stack.white_box:
        client_stack = STACKS[AIOQUIC]
    return Endpoints(client_stack, server_stack)


# --- the interop contract for one run (pure) --------------------------------------------------

TESTCASE = "transfer"  # the runner's rebind-port / rebind-addr give both ends this test case too
PREFERRED_TESTCASE = "connectionmigration"  # the runner's name for a server's preferred address
CLIENT_KEYLOG = "keys-quic.log"  # under the run's client/ directory, where the judge looks for it


@dataclass(frozen=True)
class ServedFile:
    name: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


def served_file_name(size: int) -> str:
    return f"transfer-{size}.bin"


@dataclass(frozen=True)
class InteropPlan:
    """One foreign end's environment and mounts (run-directory paths relative to the run directory)."""

    role: str
    environment: dict[str, str]
    mounts: dict[str, tuple[str, str]]  # run-dir relative path, or "@certs" -> (container path, mode)


CERTS = "@certs"


def testcase_for(migration: str) -> str:
    """The runner's test case for a workload's migration mode: a preferred address is its
    connectionmigration; every other move is a transfer the network changes under."""
    return PREFERRED_TESTCASE if migration == "preferred" else TESTCASE


def interop_plan(role: str, server_url: str, files: tuple[ServedFile, ...], probe_after_ms: float,
                 testcase: str = TESTCASE) -> InteropPlan:
    """What the interop contract gives ``role``'s container in a lab run."""
    if role == "client":
        return InteropPlan(role, {
            "ROLE": "client", "TESTCASE": testcase,
            "REQUESTS": " ".join(f"{server_url}/{f.name}" for f in files),
            "SSLKEYLOGFILE": f"/logs/{CLIENT_KEYLOG}", "QLOGDIR": "/logs/qlog",
            "PROBE_AFTER_MS": f"{probe_after_ms:g}",
        }, {"client": ("/logs", "rw"), "client/downloads": ("/downloads", "rw"), CERTS: ("/certs", "ro")})
    return InteropPlan(role, {
        "ROLE": "server", "TESTCASE": testcase, "SSLKEYLOGFILE": "/logs/keys.log", "QLOGDIR": "/logs/qlog",
    }, {"www": ("/www", "ro"), "server": ("/logs", "rw"), CERTS: ("/certs", "ro")})
