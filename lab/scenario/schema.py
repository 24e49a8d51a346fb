"""Scenario files: schema, validation and typed result.

A scenario is a YAML file in ``scenarios/`` (documented in ``scenarios/README.md``): a workload
(a paced download or an echo over QUIC, TCP or both), an ordered list of steps that change the
network under it, and the checks that judge the run from observed events.

Why the care: a typo in a scenario should cost a second at load time, not a 30-second run that
"fails" for the wrong reason. So the file is parsed with PyYAML's *compose* API, which keeps the
line of every node, and every problem becomes a one-line :class:`ScenarioError`
(``scenarios/x.yaml:12: steps[1].action: 'conect' is not allowed; allowed: connect, ...``).
All errors of a file are collected, not only the first.

Topology names (networks, routers) are parameters (:class:`TopologyNames`), read by the caller
from compose.yaml; nothing about the lab's topology is hard-coded here. Pure: no Docker, no I/O
except reading the file in :func:`load_scenario`.

Units: durations are float seconds, sizes are int bytes, byte rates int bytes per second,
impairment rates int bits per second, loss a float percent.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from lab.addresses import host_number_or_ipv4
from lab.errors import LabError
from lab.events import EVENT_TYPES
from lab.scenario.expectations import EVIDENCE_SOURCES
from lab.scenario.expectations import EXPECTATIONS as CHECKS
from lab.units import human_bytes as _human_bytes
from lab.units import human_seconds as _human_seconds
from lab.units import parse_bit_rate, parse_byte_rate, parse_duration, parse_percent, parse_size

ROLES = ("server", "client", "router", "controller")
TRANSPORTS = ("quic", "tcp", "both")
KINDS = ("download", "echo")
MIGRATIONS = ("none", "passive", "active", "preferred")
ACTIONS = ("connect", "disconnect", "route", "migrate", "rebind", "renumber", "blackhole", "impair", "wait", "flap")
TRIGGERS = ("at", "after", "after_bytes")
MAX_TIMEOUT = 300.0
DEFAULT_TIMEOUT = 30.0
NAME_PATTERN = re.compile(r"^[a-z0-9-]+$")


# --- errors ---------------------------------------------------------------------------------


class ScenarioError(LabError, ValueError):
    """One problem in a scenario file, located by file, line (1-based) and field path.

    Its text locates itself (``file:line: field: message``), so ``lab.cli.main`` prints it as it is,
    without the ``error:`` of other errors (``prefix``).
    """

    prefix = ""

    def __init__(self, file: str, line: int, field: str, message: str) -> None:
        super().__init__(file, line, field, message)
        self.file = file
        self.line = line
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class ScenarioInvalid(ScenarioError):
    """All problems of one file. Located at the first; ``str`` gives one line per problem."""

    def __init__(self, errors: Sequence[ScenarioError]) -> None:
        first = errors[0]
        super().__init__(first.file, first.line, first.field, first.message)
        self.errors = list(errors)

    def __str__(self) -> str:
        return "\n".join(ScenarioError.__str__(e) for e in self.errors)


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


@dataclass(frozen=True)
class Workload:
    """What the client does while the network changes under it."""

    transport: str = "quic"  # quic | tcp | both (both: a QUIC and a TCP client run side by side through the same steps)
    kind: str = "download"  # download | echo
    size: int | None = None  # bytes (download)
    rate: int | None = None  # bytes per second the server paces the download at; None = unpaced
    interval: float = 0.02  # seconds between echo requests
    duration: float | None = None  # seconds (echo)
    migration: str = "passive"  # none | passive | active | preferred
    rotate_cid: bool = False  # move to a new connection ID when migrating (RFC 9000 §9.5)
    port: int = 443

    @property
    def transports(self) -> tuple[str, ...]:
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
    flap: Flap | None = None
    description: str | None = None
    line: int = 0
    index: int = 0
    origin: str | None = None  # for steps expanded from a flap: "steps[3] flap 2/10"


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

    @property
    def transports(self) -> tuple[str, ...]:
        return self.workload.transports

    def plan(self) -> tuple[Step, ...]:
        """The steps with every flap expanded into primitive route (and migrate) steps."""
        return expand_steps(self.steps)


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


def _not_allowed(value: Any, allowed: Iterable[str], head: str = "{value!r} is not allowed; allowed") -> str:
    """``'conect' is not allowed; allowed: connect, ... (did you mean 'connect'?)``."""
    allowed = list(allowed)
    message = f"{head.format(value=value)}: {', '.join(allowed)}"
    close = difflib.get_close_matches(str(value), allowed, n=1)
    return message + (f" (did you mean {close[0]!r}?)" if close else "")


# --- the validator --------------------------------------------------------------------------

_MISSING = object()


@dataclass
class _Attachment:
    """The client's networks while the steps are played in order during validation."""

    attached: list[str]
    default: str | None


class _Validator:
    """Walks the composed node tree; collects errors; builds the dataclasses."""

    def __init__(self, file: str, topology: TopologyNames) -> None:
        self.file = file
        self.topology = topology
        self.errors: list[ScenarioError] = []
        self._constructor = SafeConstructor()
        self._misspelt: set[str] = set()  # paths of allowed keys an unknown key probably meant

    # -- plumbing --

    def error(self, node: Node | int, field: str, message: str) -> None:
        line = node if isinstance(node, int) else node.start_mark.line + 1
        self.errors.append(ScenarioError(self.file, line, field, message))

    def value(self, node: Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def mapping(self, node: Node, path: str, allowed: Sequence[str], required: Sequence[str] = ()
                ) -> dict[str, tuple[Node, Node]] | None:
        """The keys of a mapping node, after rejecting unknown, duplicate and missing keys."""
        if not isinstance(node, MappingNode):
            self.error(node, path or "<document>", f"must be a mapping (key: value), got {self._kind(node)}")
            return None
        found: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = str(self.value(key_node)) if isinstance(key_node, ScalarNode) else "?"
            where = f"{path}.{key}" if path else key
            if key in found:
                self.error(key_node, where, "duplicate key")
            elif key not in allowed:
                self.error(key_node, where, _not_allowed(key, allowed, "unknown key {value!r}; allowed"))
                for meant in difflib.get_close_matches(key, allowed, n=1):
                    self._misspelt.add(f"{path}.{meant}" if path else meant)
            else:
                found[key] = (key_node, value_node)
        for key in required:
            self.require(found, node, f"{path}.{key}" if path else key, "is required")
        return found

    def require(self, found: dict[str, tuple[Node, Node]], node: Node, path: str, message: str) -> None:
        """Report a missing key, unless an unknown key next to it was already reported as its misspelling."""
        key = path.rsplit(".", 1)[-1]
        if key not in found and path not in self._misspelt:
            self.error(node, path, message)

    @staticmethod
    def _kind(node: Node) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        return f"{node.value!r}"

    def scalar(self, node: Node, path: str) -> Any:
        if not isinstance(node, ScalarNode):
            self.error(node, path, f"must be a single value, got {self._kind(node)}")
            return _MISSING
        return self.value(node)

    def convert(self, node: Node, path: str, parse: Any) -> Any:
        """Apply a value parser; its ValueError becomes a ScenarioError. None on failure."""
        raw = self.scalar(node, path)
        if raw is _MISSING:
            return None
        try:
            return parse(raw)
        except ValueError as exc:
            self.error(node, path, str(exc))
            return None

    def string(self, node: Node, path: str, pattern: re.Pattern[str] | None = None, what: str = "") -> str | None:
        raw = self.scalar(node, path)
        if raw is _MISSING:
            return None
        if not isinstance(raw, str) or not raw.strip():
            self.error(node, path, f"must be a non-empty string, got {raw!r}")
            return None
        if pattern is not None and not pattern.match(raw):
            self.error(node, path, f"{raw!r} is not a valid {what or 'value'}")
            return None
        return raw

    def choice(self, node: Node, path: str, allowed: Iterable[str]) -> str | None:
        raw = self.scalar(node, path)
        if raw is _MISSING:
            return None
        allowed = sorted(allowed) if isinstance(allowed, set | frozenset) else list(allowed)
        if raw not in allowed:
            self.error(node, path, _not_allowed(raw, allowed))
            return None
        return str(raw)

    def boolean(self, node: Node, path: str) -> bool | None:
        raw = self.scalar(node, path)
        if raw is _MISSING:
            return None
        if not isinstance(raw, bool):
            self.error(node, path, f"must be true or false, got {raw!r}")
            return None
        return raw

    def integer(self, node: Node, path: str, low: int, high: int) -> int | None:
        raw = self.scalar(node, path)
        if raw is _MISSING:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            self.error(node, path, f"must be a whole number from {low} to {high}, got {raw!r}")
            return None
        return raw

    def duration(self, node: Node, path: str, positive: bool = False, maximum: float | None = None) -> float | None:
        seconds = self.convert(node, path, parse_duration)
        if seconds is None:
            return None
        if positive and seconds <= 0:
            self.error(node, path, "must be longer than 0")
            return None
        if maximum is not None and seconds > maximum:
            self.error(node, path, f"{_human_seconds(seconds)} is too long; at most {_human_seconds(maximum)}")
            return None
        return seconds

    def sequence(self, node: Node, path: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.error(node, path, f"must be a list, got {self._kind(node)}")
            return None
        return list(node.value)

    def network(self, node: Node, path: str, client_only: bool = True) -> str | None:
        names = self.topology.client_networks if client_only else self.topology.networks
        return self.choice(node, path, names)

    # -- sections --

    def scenario(self, root: Node) -> Scenario | None:
        top = self.mapping(root, "", ("name", "description", "timeout", "tags", "initial", "workload", "steps",
                                      "expect", "optional_evidence"), required=("name", "description", "workload",
                                                                                "expect"))
        if top is None:
            return None
        name = self._name(top)
        description = None
        if "description" in top:
            description = self.string(top["description"][1], "description")
        timeout = DEFAULT_TIMEOUT
        if "timeout" in top:
            timeout = self.duration(top["timeout"][1], "timeout", positive=True, maximum=MAX_TIMEOUT) or timeout
        tags: tuple[str, ...] = ()
        if "tags" in top:
            items = self.sequence(top["tags"][1], "tags") or []
            tags = tuple(t for i, n in enumerate(items) if (t := self.string(n, f"tags[{i}]")) is not None)
        workload = self.workload(top["workload"][1], timeout) if "workload" in top else None
        initial = self.initial(top["initial"][1] if "initial" in top else None, root)
        steps: tuple[Step, ...] = ()
        if "steps" in top and initial is not None:
            steps = self.steps(top["steps"][1], initial, workload or Workload(), timeout)
        expect: tuple[Expectation, ...] = ()
        if "expect" in top:
            expect = self.expectations(top["expect"][1], workload)
        optional: list[str] = []
        if "optional_evidence" in top:
            items = self.sequence(top["optional_evidence"][1], "optional_evidence") or []
            for i, node in enumerate(items):
                source = self.choice(node, f"optional_evidence[{i}]", EVIDENCE_SOURCES)
                if source is not None:
                    optional.append(source)
        if self.errors or name is None or description is None or workload is None or initial is None:
            return None
        return Scenario(name=name, description=description.strip(), workload=workload, initial=initial, steps=steps,
                        expect=expect, timeout=timeout, tags=tags, file=self.file,
                        optional_evidence=tuple(optional))

    def _name(self, top: dict[str, tuple[Node, Node]]) -> str | None:
        if "name" not in top:
            return None
        node = top["name"][1]
        name = self.string(node, "name", NAME_PATTERN, "name (lower-case letters, digits and '-')")
        stem = Path(self.file).stem
        if name is not None and Path(self.file).suffix in (".yaml", ".yml") and name != stem:
            self.error(node, "name", f"{name!r} does not match the file name {Path(self.file).name!r}")
        return name

    def impairment(self, node: Node, path: str) -> Impairment | None:
        """A mapping of impairment fields, or a bare profile name."""
        if isinstance(node, ScalarNode):
            profile = self._profile(node, path)
            return Impairment(profile=profile) if profile else None
        keys = self.mapping(node, path, ("delay", "jitter", "loss", "rate", "blackhole", "profile"))
        if keys is None:
            return None
        if not keys:
            self.error(node, path, "needs at least one of delay, jitter, loss, rate, blackhole, profile")
            return None
        got: dict[str, Any] = {}
        for key, parse in (("delay", None), ("jitter", None), ("loss", parse_percent), ("rate", parse_bit_rate)):
            if key in keys:
                sub = keys[key][1]
                if parse is None:
                    got[key] = self.duration(sub, f"{path}.{key}", maximum=10.0)
                else:
                    got[key] = self.convert(sub, f"{path}.{key}", parse)
        if "blackhole" in keys:
            got["blackhole"] = bool(self.boolean(keys["blackhole"][1], f"{path}.blackhole"))
        if "profile" in keys:
            got["profile"] = self._profile(keys["profile"][1], f"{path}.profile")
        if "jitter" in keys and "delay" not in keys and "profile" not in keys:
            self.error(keys["jitter"][0], f"{path}.jitter", "needs a delay to vary around (add delay: ...)")
        return Impairment(**{k: v for k, v in got.items() if v is not None})

    def _profile(self, node: Node, path: str) -> str | None:
        if self.topology.profiles:
            return self.choice(node, path, self.topology.profiles)
        return self.string(node, path, NAME_PATTERN, "profile name")

    def initial(self, node: Node | None, root: Node) -> InitialState | None:
        default = self.topology.default_network
        if node is None:
            if default is None:
                self.error(root, "initial.networks", "is required (the topology names no default network)")
                return None
            return InitialState(networks=(default,))
        keys = self.mapping(node, "initial", ("networks", "impair"))
        if keys is None:
            return None
        networks: list[str] = []
        if "networks" in keys:
            items = self.sequence(keys["networks"][1], "initial.networks")
            if items is not None and not items:
                self.error(keys["networks"][1], "initial.networks", "must name at least one network")
            for i, item in enumerate(items or []):
                name = self.network(item, f"initial.networks[{i}]")
                if name in networks:
                    self.error(item, f"initial.networks[{i}]", f"{name!r} is listed twice")
                elif name is not None:
                    networks.append(name)
        elif default is not None:
            networks = [default]
        else:
            self.error(node, "initial.networks", "is required (the topology names no default network)")
        impair: dict[str, Impairment] = {}
        if "impair" in keys:
            entries = self.mapping(keys["impair"][1], "initial.impair", sorted(self.topology.networks))
            for name, (_, value) in (entries or {}).items():
                found = self.impairment(value, f"initial.impair.{name}")
                if found is not None:
                    impair[name] = found
        return InitialState(networks=tuple(networks), impair=impair)

    def workload(self, node: Node, timeout: float) -> Workload | None:
        keys = self.mapping(node, "workload", ("transport", "kind", "size", "rate", "interval", "duration",
                                               "migration", "rotate_cid", "port"))
        if keys is None:
            return None
        start = len(self.errors)

        def get(key: str, conv: Any, *extra: Any) -> Any:
            return conv(keys[key][1], f"workload.{key}", *extra) if key in keys else None

        transport = get("transport", self.choice, TRANSPORTS) or "quic"
        kind = get("kind", self.choice, KINDS) or "download"
        migration = get("migration", self.choice, MIGRATIONS) or "passive"
        size = get("size", self.convert, parse_size)
        rate = get("rate", self.convert, parse_byte_rate)
        interval = get("interval", self.duration, True, 10.0)
        duration = get("duration", self.duration, True, MAX_TIMEOUT)
        rotate = get("rotate_cid", self.boolean)
        port = get("port", self.integer, 1, 65535)

        def only_for(key: str, wanted: str) -> None:
            if key in keys:
                self.error(keys[key][0], f"workload.{key}", f"only applies to kind {wanted} (kind is {kind})")

        if kind == "download":
            only_for("interval", "echo")
            only_for("duration", "echo")
            self.require(keys, node, "workload.size", "is required for a download (e.g. size: 8MB)")
            if size == 0:
                self.error(keys["size"][1], "workload.size", "must be larger than 0")
            if rate == 0:
                self.error(keys["rate"][1], "workload.rate", "must be larger than 0 (omit it for an unpaced download)")
            if size and rate and size / rate >= timeout:
                self.error(keys["rate"][1], "workload.rate",
                           f"{_human_bytes(size)} at {_human_bytes(rate)}/s takes {size / rate:g}s, not less than "
                           f"the timeout {_human_seconds(timeout)}")
        else:
            only_for("size", "download")
            only_for("rate", "download")
            self.require(keys, node, "workload.duration", "is required for an echo (e.g. duration: 6s)")
            if duration is not None and duration >= timeout:
                self.error(keys["duration"][1], "workload.duration",
                           f"must be shorter than the timeout {_human_seconds(timeout)}")
        if transport == "tcp" and migration in ("active", "preferred"):
            self.error(keys["migration"][1], "workload.migration",
                       f"{migration!r} is QUIC-only (RFC 9000 §9); with transport tcp use none or passive")
        if transport == "both" and migration == "preferred":
            self.error(keys["migration"][1], "workload.migration",
                       "'preferred' is a QUIC transport parameter (RFC 9000 §18.2) with no TCP equivalent; "
                       "use transport quic")
        if rotate and (transport == "tcp" or migration in ("none", "passive")):
            self.error(keys["rotate_cid"][1], "workload.rotate_cid",
                       "needs a client that knows it migrates (migration active or preferred, transport quic)")
        if migration == "preferred" and port is not None and port != self.topology.preferred_port:
            self.error(keys["port"][1], "workload.port",
                       f"migration preferred needs the server port that advertises a preferred address "
                       f"({self.topology.preferred_port}); omit port")
        if len(self.errors) > start:
            return None
        if rotate is None:
            rotate = migration in ("active", "preferred")
        if port is None:
            port = self.topology.preferred_port if migration == "preferred" else self.topology.port
        return Workload(transport=transport, kind=kind, size=size if kind == "download" else None,
                        rate=rate, interval=interval if interval is not None else 0.02, duration=duration,
                        migration=migration, rotate_cid=rotate, port=port)

    def trigger(self, keys: dict[str, tuple[Node, Node]], path: str, workload: Workload) -> Trigger | None:
        present = [k for k in TRIGGERS if k in keys]
        if len(present) > 1:
            second = keys[present[1]][0]
            self.error(second, path, f"{' and '.join(repr(p) for p in present)} both given; "
                                     "a step has one trigger (at, after or after_bytes) or none")
            return None
        if not present:
            return Trigger()
        kind = present[0]
        key_node, node = keys[kind]
        where = f"{path}.{kind}"
        if kind == "at":
            at = self.duration(node, where)
            return Trigger(kind="at", at=at) if at is not None else None
        if kind == "after_bytes":
            count = self.convert(node, where, parse_size)
            if count is None:
                return None
            if workload.kind != "download":
                self.error(node, where, "needs a download workload (progress is counted in bytes)")
                return None
            if workload.size is not None and count >= workload.size:
                self.error(node, where, f"{count} bytes is not less than the download size {workload.size}")
                return None
            return Trigger(kind="after_bytes", bytes=count)
        text = self.string(node, where)
        if text is None:
            return None
        role, _, event = text.rpartition(":")
        if role and role not in ROLES:
            self.error(node, where, f"role {_not_allowed(role, ROLES)}")
            return None
        if event not in EVENT_TYPES:
            self.error(node, where, _not_allowed(event, sorted(EVENT_TYPES), "unknown event type {value!r}; known"))
            return None
        return Trigger(kind="after", event=event, role=role or None)

    def steps(self, node: Node, initial: InitialState, workload: Workload, timeout: float) -> tuple[Step, ...]:
        items = self.sequence(node, "steps")
        if items is None:
            return ()
        state = _Attachment(list(initial.networks), initial.networks[0] if initial.networks else None)
        last_at: tuple[float, str] | None = None
        clock, late = 0.0, False
        steps: list[Step] = []
        action_fields = {
            "connect": ("network", "address"), "disconnect": ("network",), "route": ("network",),
            "migrate": ("network",), "rebind": ("router",), "renumber": ("network", "address"),
            "blackhole": ("network", "state"), "impair": ("network", "impair", "reset"), "wait": ("duration",),
            "flap": ("networks", "times", "interval"),
        }
        required = {"connect": ("network",), "disconnect": ("network",), "route": ("network",),
                    "migrate": ("network",), "rebind": ("router",), "renumber": ("network",),
                    "blackhole": ("network", "state"), "impair": ("network",), "wait": ("duration",),
                    "flap": ("networks", "times", "interval")}
        common = ("action", *TRIGGERS, "delay", "description")
        every_field = sorted({f for fields in action_fields.values() for f in fields})
        for index, item in enumerate(items):
            path = f"steps[{index}]"
            if not isinstance(item, MappingNode):
                self.error(item, path, f"must be a mapping with an action, got {self._kind(item)}")
                continue
            start = len(self.errors)
            action = None
            for key_node, value_node in item.value:
                if isinstance(key_node, ScalarNode) and key_node.value == "action":
                    action = self.choice(value_node, f"{path}.action", ACTIONS)
            allowed = (*common, *(action_fields[action] if action else every_field))
            keys = self.mapping(item, path, allowed, required=("action",) + (required[action] if action else ()))
            if keys is None or action is None or any(k not in keys for k in required[action]):
                continue
            trigger = self.trigger(keys, path, workload)
            delay = self.duration(keys["delay"][1], f"{path}.delay") if "delay" in keys else 0.0
            description = self.string(keys["description"][1], f"{path}.description") if "description" in keys \
                else None
            if trigger is not None and trigger.at is not None:
                if last_at is not None and trigger.at < last_at[0]:
                    self.error(keys["at"][1], f"{path}.at",
                               f"{_human_seconds(trigger.at)} is earlier than {last_at[1]}; steps run in order")
                last_at = (trigger.at, f"at: {_human_seconds(trigger.at)} of steps[{index}]")
                clock = max(clock, trigger.at)
            fields = self.action_fields(action, keys, path, item, state, workload)
            # The earliest time this step can end; `after` triggers only make it later.
            clock += (delay or 0.0) + (fields.get("duration") or 0.0)
            if fields.get("flap") is not None:
                clock += (fields["flap"].times - 1) * fields["flap"].interval
            if clock >= timeout and not late:
                late = True
                where = keys["at"][1] if "at" in keys else item
                self.error(where, f"{path}.at" if "at" in keys else path,
                           f"runs until {_human_seconds(clock)} or later; {_human_seconds(clock)} is not before the "
                           f"timeout {_human_seconds(timeout)}")
            if len(self.errors) > start or trigger is None:
                continue
            steps.append(Step(action=action, trigger=trigger, delay=delay or 0.0, description=description,
                              line=item.start_mark.line + 1, index=index, **fields))
        return tuple(steps)

    def action_fields(self, action: str, keys: dict[str, tuple[Node, Node]], path: str, item: Node,
                      state: _Attachment, workload: Workload) -> dict[str, Any]:
        """Validate one action's own fields and play it on the client's attachment state.

        Playing the steps in order is what catches "route via a network the client has left".
        """
        fields: dict[str, Any] = {}

        def net(client_only: bool = True) -> str | None:
            return self.network(keys["network"][1], f"{path}.network", client_only) if "network" in keys else None

        def need_attached(name: str | None, verb: str) -> bool:
            if name is not None and name not in state.attached:
                self.error(keys["network"][1], f"{path}.network",
                           f"cannot {verb} {name!r}: the client is not attached to it at this step "
                           f"(attached: {', '.join(state.attached) or 'none'})")
                return False
            return name is not None

        if action == "connect":
            name = net()
            if name is not None and name in state.attached:
                self.error(keys["network"][1], f"{path}.network", f"the client is already attached to {name!r}")
            elif name is not None:
                state.attached.append(name)
            fields["network"] = name
            if "address" in keys:
                fields["address"] = self.convert(keys["address"][1], f"{path}.address", host_number_or_ipv4)
        elif action == "disconnect":
            name = net()
            if need_attached(name, "disconnect"):
                state.attached.remove(name)  # type: ignore[arg-type]
                state.default = None if state.default == name else state.default
            fields["network"] = name
        elif action in ("route", "migrate", "renumber"):
            name = net()
            if need_attached(name, action) and action == "route":
                state.default = name
            if action == "migrate" and workload.migration != "active":
                self.error(keys["action"][1], f"{path}.action",
                           f"migrate needs workload.migration: active (it is {workload.migration})")
            fields["network"] = name
            if action == "renumber" and "address" in keys:
                fields["address"] = self.convert(keys["address"][1], f"{path}.address", host_number_or_ipv4)
        elif action == "rebind":
            fields["router"] = self.choice(keys["router"][1], f"{path}.router", self.topology.routers)
        elif action == "blackhole":
            fields["network"] = net(client_only=False)
            fields["state"] = self.convert(keys["state"][1], f"{path}.state", _on_off)
        elif action == "impair":
            fields["network"] = net(client_only=False)
            if "reset" in keys:
                fields["reset"] = bool(self.boolean(keys["reset"][1], f"{path}.reset"))
            if "impair" in keys:
                fields["impairment"] = self.impairment(keys["impair"][1], f"{path}.impair")
            if ("impair" in keys) == bool(fields.get("reset")):
                self.error(item, path, "impair needs either impair: {delay: ..., loss: ...} (or a profile name), "
                                       "or reset: true; not both")
        elif action == "wait":
            fields["duration"] = self.duration(keys["duration"][1], f"{path}.duration", positive=True)
        elif action == "flap":
            flap = self.flap(keys, path, state.attached, state.default, workload)
            if flap is not None:
                fields["flap"] = flap
                state.default = flap.sequence[-1]
        return fields

    def flap(self, keys: dict[str, tuple[Node, Node]], path: str, attached: list[str], default: str | None,
             workload: Workload) -> Flap | None:
        items = self.sequence(keys["networks"][1], f"{path}.networks") or []
        networks: list[str] = []
        for i, item in enumerate(items):
            name = self.network(item, f"{path}.networks[{i}]")
            if name is None:
                continue
            if name in networks:
                self.error(item, f"{path}.networks[{i}]", f"{name!r} is listed twice")
            elif name not in attached:
                self.error(item, f"{path}.networks[{i}]",
                           f"the client is not attached to {name!r} at this step; flap switches the default "
                           f"route between attached networks (attached: {', '.join(attached) or 'none'})")
            networks.append(name)
        if items and len(items) < 2:
            self.error(keys["networks"][1], f"{path}.networks", "needs at least two networks to switch between")
        times = self.integer(keys["times"][1], f"{path}.times", 1, 1000)
        interval = self.duration(keys["interval"][1], f"{path}.interval", positive=True)
        if times is None or interval is None or len(networks) < 2:
            return None
        first = (networks.index(default) + 1) if default in networks else 0
        sequence = tuple(networks[(first + k) % len(networks)] for k in range(times))
        return Flap(networks=tuple(networks), times=times, interval=interval, sequence=sequence,
                    migrate=workload.migration == "active")

    def expectations(self, node: Node, workload: Workload | None) -> tuple[Expectation, ...]:
        items = self.sequence(node, "expect")
        if items is None:
            return ()
        if not items:
            self.error(node, "expect", "must list at least one check: a scenario that judges nothing teaches nothing")
        transports = workload.transports if workload else ("quic", "tcp")
        found: list[Expectation] = []
        for index, item in enumerate(items):
            path = f"expect[{index}]"
            argument: Any = None
            arg_node: Node = item
            if isinstance(item, ScalarNode):
                name = self.value(item)
            elif isinstance(item, MappingNode) and len(item.value) == 1:
                key_node, arg_node = item.value[0]
                name = self.value(key_node)
                if not isinstance(arg_node, ScalarNode):
                    self.error(arg_node, f"{path}.{name}", f"argument must be a single value, got "
                                                           f"{self._kind(arg_node)}")
                    continue
                argument = self.value(arg_node)
            else:
                self.error(item, path, "must be a check name or a single-key mapping {check: argument}")
                continue
            if not isinstance(name, str):
                self.error(item, path, f"not a check name: {name!r}")
                continue
            scope, _, check = name.rpartition(":")
            if check not in CHECKS:
                self.error(item, path, _not_allowed(check, CHECKS, "unknown check {value!r}; known"))
                continue
            spec = CHECKS[check]
            if scope and scope not in transports:
                self.error(item, path, f"transport prefix {scope!r} is not a transport of this workload "
                                       f"({', '.join(transports)})")
                continue
            applicable = [t for t in ((scope,) if scope else transports) if t in spec.transports]
            if not applicable:
                self.error(item, path, f"{check} applies to {', '.join(sorted(spec.transports))} only; "
                                       f"this workload runs {', '.join(transports)}")
                continue
            try:
                parsed = spec.parse(argument)
            except ValueError as exc:
                self.error(arg_node, f"{path}.{check}", str(exc))
                continue
            found.append(Expectation(check=check, argument=parsed, transport=scope or None,
                                     line=item.start_mark.line + 1))
        return tuple(found)


def _on_off(value: Any) -> bool:
    """YAML 1.1 reads on/off as booleans; accept those and the strings."""
    if isinstance(value, bool):
        return value
    if value in ("on", "off"):
        return value == "on"
    raise ValueError(f"{value!r} is not allowed; allowed: on, off")


# --- entry points ---------------------------------------------------------------------------


def check_scenario_text(text: str, file: str, topology: TopologyNames) -> tuple[Scenario | None, list[ScenarioError]]:
    """Validate scenario text; return the scenario (None if invalid) and every error found."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = str(exc.problem or exc.context or "invalid YAML")
        if exc.context and exc.problem:
            started = f" started on line {exc.context_mark.line + 1}" if exc.context_mark is not None else ""
            problem += f" ({exc.context}{started})"
        return None, [ScenarioError(file, line, "<yaml>", f"YAML syntax error: {problem}")]
    except yaml.YAMLError as exc:
        return None, [ScenarioError(file, 1, "<yaml>", f"YAML error: {exc}")]
    if root is None:
        return None, [ScenarioError(file, 1, "<document>", "the file is empty")]
    validator = _Validator(file, topology)
    scenario = validator.scenario(root)
    return (scenario if not validator.errors else None), validator.errors


def parse_scenario(text: str, file: str, topology: TopologyNames) -> Scenario:
    """Validate scenario text; raise :class:`ScenarioInvalid` listing every error."""
    scenario, errors = check_scenario_text(text, file, topology)
    if errors or scenario is None:
        raise ScenarioInvalid(errors or [ScenarioError(file, 1, "<document>", "invalid scenario")])
    return scenario


def load_scenario(path: str | Path, topology: TopologyNames) -> Scenario:
    """Read and validate one scenario file; errors name ``path`` as given."""
    path = Path(path)
    return parse_scenario(path.read_text(encoding="utf-8"), str(path), topology)


def load_catalogue(directory: str | Path, topology: TopologyNames) -> dict[str, Scenario]:
    """Every ``*.yaml`` in ``directory`` by name; raise :class:`ScenarioInvalid` with all errors of all files."""
    scenarios: dict[str, Scenario] = {}
    errors: list[ScenarioError] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        scenario, found = check_scenario_text(path.read_text(encoding="utf-8"), str(path), topology)
        errors.extend(found)
        if scenario is not None:
            scenarios[scenario.name] = scenario
    if errors:
        raise ScenarioInvalid(errors)
    return scenarios


__all__ = [
    "ACTIONS", "Expectation", "Flap", "Impairment", "InitialState", "Scenario", "ScenarioError", "ScenarioInvalid",
    "Step", "TopologyNames", "Trigger", "Workload", "check_scenario_text", "expand_steps", "load_catalogue",
    "load_scenario", "parse_bit_rate", "parse_byte_rate", "parse_duration", "parse_percent", "parse_scenario",
    "parse_size",
]
