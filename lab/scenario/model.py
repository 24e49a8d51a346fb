"""The scenario language's typed result: frozen dataclasses, and the names a scenario may use (pure).

What :mod:`lab.scenario.rules` builds from a valid file, and what the runner and the judge read.
Units: durations are float seconds, sizes int bytes, byte rates int bytes per second, impairment
rates int bits per second, loss a float percent (:mod:`lab.units`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ROLES = ("server", "client", "router", "controller")
TRANSPORTS = ("quic", "tcp", "both", "strategies")
# transport: strategies (reconnect-vs-migrate): QUIC migration beside four ways of reconnecting
# instead, each a client of its own through the same change (docs/reconnect-vs-migrate.md).
STRATEGIES = ("quic", "quic-0rtt", "quic-full", "tcp-resume", "tcp")
KINDS = ("download", "echo", "video", "call")
MIGRATIONS = ("none", "passive", "active", "preferred")
TRIGGERS = ("at", "after", "after_bytes")
# The server farm's balancer modes (lab.endpoints.balancer.rules.MODES) and what a scenario expects
# of the connection behind it.
FARM_MODES = ("hash", "cid")
FARM_OUTCOMES = ("breaks", "survives")
MAX_TIMEOUT = 300.0
DEFAULT_TIMEOUT = 30.0
NAME_PATTERN = re.compile(r"^[a-z0-9-]+$")


# --- topology -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopologyNames:
    """The names a scenario may refer to, read by the caller from compose.yaml.

    ``networks`` holds every network (client-side, server-side, preferred-address); the client may
    only attach to ``client_networks``. ``default_network`` is where the client starts when a
    scenario says nothing (None: ``initial.networks`` is then required). ``profiles`` lists the
    impairment profile names; empty means any ``[a-z0-9-]+`` name is accepted.
    """

    networks: frozenset[str]
    client_networks: frozenset[str]
    routers: frozenset[str]
    default_network: str | None = None
    port: int = 443
    preferred_port: int = 4443
    profiles: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.client_networks <= self.networks:
            raise ValueError(f"client networks {sorted(self.client_networks - self.networks)} are not networks")
        if self.default_network is not None and self.default_network not in self.client_networks:
            raise ValueError(f"default network {self.default_network!r} is not a client network")


# --- the typed result -----------------------------------------------------------------------


@dataclass(frozen=True)
class Impairment:
    """Link quality on one network. Generic fields; the controller maps them to tc/netem or a fallback."""

    delay: float | None = None  # seconds, one way
    jitter: float | None = None  # seconds
    loss: float | None = None  # percent, 0-100
    rate: int | None = None  # bits per second
    blackhole: bool = False
    profile: str | None = None  # a named profile; explicit fields override it


@dataclass(frozen=True)
class InitialState:
    """Where the client starts. ``networks[0]`` carries the default route."""

    networks: tuple[str, ...]
    impair: dict[str, Impairment] = field(default_factory=dict)
    # ``nat`` steps (one per router) played before the client starts, so a mapping change cannot race
    # the handshake as a first step would.
    nat: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Workload:
    """What the client does while the network changes under it."""

    # quic | tcp | both | strategies (both: a QUIC and a TCP client side by side; strategies: STRATEGIES)
    transport: str = "quic"
    kind: str = "download"  # download | echo | video | call
    size: int | None = None  # bytes (download)
    rate: int | None = None  # bytes per second the server paces the download at; None = unpaced
    interval: float = 0.02  # seconds between echo requests (call: between messages, each way)
    duration: float | None = None  # seconds (echo, call)
    # video: a DASH/HLS player fetching ``segments`` segments of ``segment`` seconds at ``bitrate`` bits/s
    # over HTTP/3 (TCP: HTTP/1.1); it starts (and resumes after a stall) with ``startup`` seconds
    # buffered and asks for the next segment while less than ``buffer`` seconds are buffered.
    bitrate: int = 2_500_000
    segment: float = 2.0
    segments: int | None = None
    startup: float = 2.0
    buffer: float = 4.0
    datagrams: bool = True  # call over QUIC: DATAGRAM frames (RFC 9221); false: one stream
    migration: str = "passive"  # none | passive | active | preferred
    rotate_cid: bool = False  # move to a new connection ID when migrating (RFC 9000 §9.5)
    port: int = 443
    # The client's detection delay: how long it waits without data before it sends a PING (QUIC; a
    # passive client's only way to show the server its new address). Reported in every run.
    probe_after: float = 0.2
    family: int = 4  # the server address the client connects to: 4, or 6 (x-lab.server.address6; docs/ipv6.md)

    @property
    def transports(self) -> tuple[str, ...]:
        if self.transport == "strategies":
            return STRATEGIES
        return ("quic", "tcp") if self.transport == "both" else (self.transport,)


@dataclass(frozen=True)
class Trigger:
    """When a step runs. ``kind``: at | after | after_bytes | after_step (the implicit default)."""

    kind: str = "after_step"
    at: float | None = None  # seconds since the workload started
    event: str | None = None  # an event type (lab.events.EVENT_TYPES)
    role: str | None = None  # optional role the event must come from
    bytes: int | None = None  # client progress in bytes


@dataclass(frozen=True)
class Flap:
    """Switch the default route ``times`` times, every ``interval``, cycling through ``networks``.

    ``sequence`` is the resolved list of destinations (starting after the network the default route
    is on when the flap begins); ``migrate`` adds an active migration after each switch.
    """

    networks: tuple[str, ...]
    times: int
    interval: float
    sequence: tuple[str, ...] = ()
    migrate: bool = False


@dataclass(frozen=True)
class Step:
    """One thing the controller does to the lab, and when."""

    action: str
    trigger: Trigger = field(default_factory=Trigger)
    delay: float = 0.0  # seconds after the trigger
    network: str | None = None
    address: int | str | None = None  # host number (2-254) or IPv4 address
    router: str | None = None
    state: bool | None = None  # blackhole on/off
    impairment: Impairment | None = None
    reset: bool = False  # impair: remove every impairment on the network
    duration: float | None = None  # wait
    kind: str | None = None  # attack: rewrite | forward | spoof (lab.control.attacks)
    # nat: the router's new behaviour (lab.nat_behaviour); None keeps (or implies) what it has
    mapping: str | None = None
    ports: str | None = None
    udp_timeout: float | None = None  # seconds, whole
    keepalive: float | None = None  # idle: seconds between the client's PINGs while quiet; None: none
    tries: int | None = None  # farm_rebind: rebindings at most, until the balancer moves the flow
    give_up: float | None = None  # farm_rebind: seconds after the move until the controller ends the client
    flap: Flap | None = None
    description: str | None = None
    line: int = 0
    index: int = 0
    origin: str | None = None  # for steps expanded from a flap: "steps[3] flap 2/10"


@dataclass(frozen=True)
class FarmSpec:
    """The scenario runs against the server farm (compose profile ``farm``) in this balancer mode.

    ``connection`` is what the scenario expects of the connection once a rebound flow reaches the
    balancer: ``breaks`` (the flow is hashed onto a replica that never saw it) or ``survives``;
    the farm checks (lab.verify.farm_checks) judge it from the events and the captures.
    """

    mode: str
    connection: str = "survives"


@dataclass(frozen=True)
class Expectation:
    """One check and its parsed argument, optionally scoped to one transport (``tcp:reconnects: 1``)."""

    check: str
    argument: Any = None
    transport: str | None = None
    line: int = 0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    workload: Workload
    initial: InitialState
    steps: tuple[Step, ...] = ()
    expect: tuple[Expectation, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    tags: tuple[str, ...] = ()
    file: str = ""
    # Sources of evidence whose checks may end "not verified" without failing the run.
    optional_evidence: tuple[str, ...] = ()
    # role -> a stack name or image (lab.scenario.stacks); absent: the lab's own endpoints.
    stacks: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    # check name -> why the stack under test is known to fail it (a recorded finding, not a pass).
    known_failures: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    farm: FarmSpec | None = None  # against the server farm, not the lab's one server

    @property
    def transports(self) -> tuple[str, ...]:
        return self.workload.transports

    def plan(self) -> tuple[Step, ...]:
        """The steps with every flap expanded into primitive route (and migrate) steps."""
        return expand_steps(self.steps)

    @property
    def attacks(self) -> bool:
        """Whether a step attacks: the run then needs the victim and the attacker, and their captures."""
        return any(step.action == "attack" for step in self.plan())


def expand_steps(steps: Iterable[Step]) -> tuple[Step, ...]:
    """Replace each ``flap`` by its switches, so the controller only plays primitive actions.

    The first switch keeps the flap's trigger and delay; each next one runs ``interval`` after the
    previous switch.
    """
    out: list[Step] = []
    for step in steps:
        if step.flap is None:
            out.append(step)
            continue
        total = len(step.flap.sequence)
        for number, network in enumerate(step.flap.sequence, start=1):
            trigger = step.trigger if number == 1 else Trigger()
            delay = step.delay if number == 1 else step.flap.interval
            origin = f"steps[{step.index}] flap {number}/{total}"
            out.append(Step(action="route", trigger=trigger, delay=delay, network=network,
                            description=step.description if number == 1 else None, line=step.line,
                            index=step.index, origin=origin))
            if step.flap.migrate:
                out.append(Step(action="migrate", network=network, line=step.line, index=step.index, origin=origin))
    return tuple(out)
