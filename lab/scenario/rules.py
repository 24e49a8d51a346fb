"""The scenario language's rules, on the generic YAML-node validator (pure: no Docker, no I/O).

What a scenario file may say, section by section: its name (the file's), its teaching description,
``initial`` (networks and impairments), ``workload`` (and the combinations that make no sense, such
as ``migration: active`` over TCP), ``steps`` (each checked by its action's spec in
:mod:`lab.scenario.steps`, and played in order on the client's attachments) and ``expect`` (the
check vocabulary of :mod:`lab.scenario.expectations`). Topology names are parameters
(:class:`TopologyNames`), read by the caller from compose.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode

from lab.events import EVENT_TYPES, family_of
from lab.scenario.expectations import EVIDENCE_SOURCES, KNOWN_FAILURE_CHECKS
from lab.scenario.expectations import EXPECTATIONS as CHECKS
from lab.scenario.model import (
    DEFAULT_TIMEOUT,
    FARM_MODES,
    FARM_OUTCOMES,
    KINDS,
    MAX_TIMEOUT,
    MIGRATIONS,
    NAME_PATTERN,
    ROLES,
    TRANSPORTS,
    TRIGGERS,
    Expectation,
    FarmSpec,
    Impairment,
    InitialState,
    Scenario,
    Step,
    TopologyNames,
    Trigger,
    Workload,
)
from lab.scenario.nodes import NodeValidator, not_allowed
from lab.scenario.stacks import ROLES as STACK_ROLES
from lab.scenario.stacks import StackError
from lab.scenario.stacks import resolve as resolve_stack
from lab.scenario.steps import ACTIONS, ActionSpec, Attachment
from lab.units import human_bytes, human_seconds, parse_bit_rate, parse_byte_rate, parse_percent, parse_size

TOP_KEYS = ("name", "description", "timeout", "tags", "initial", "workload", "steps", "expect", "optional_evidence",
            "stacks", "known_failures", "farm")
WORKLOAD_KEYS = ("transport", "kind", "size", "rate", "interval", "duration", "migration", "rotate_cid", "port",
                 "probe_after", "bitrate", "segment", "segments", "startup", "buffer", "datagrams", "family")
# Which kinds a workload key applies to (keys not listed apply to every kind).
KIND_KEYS = {"size": ("download",), "rate": ("download",), "interval": ("echo", "call"),
             "duration": ("echo", "call"), "bitrate": ("video",), "segment": ("video",), "segments": ("video",),
             "startup": ("video",), "buffer": ("video",), "datagrams": ("call",)}
FARM_KEYS = ("mode", "connection")
IMPAIRMENT_KEYS = ("delay", "jitter", "loss", "rate", "blackhole", "profile")
STEP_KEYS = ("action", *TRIGGERS, "delay", "description")  # every step may have these, whatever its action


class ScenarioValidator(NodeValidator):
    """Walks a scenario's composed node tree; collects errors; builds the dataclasses of :mod:`model`."""

    def __init__(self, file: str, topology: TopologyNames) -> None:
        super().__init__(file)
        self.topology = topology
        self.farm: FarmSpec | None = None  # the scenario's, once read: what farm steps check against
        self.farm_declared = False  # a farm block, even a wrong one (its own error says what is wrong)

    def network(self, node: Node, path: str, client_only: bool = True) -> str | None:
        names = self.topology.client_networks if client_only else self.topology.networks
        return self.choice(node, path, names)

    # -- sections --

    def scenario(self, root: Node) -> Scenario | None:
        top = self.mapping(root, "", TOP_KEYS, required=("name", "description", "workload", "expect"))
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
        if "farm" in top:
            self.farm_declared = True
            self.farm = self.farm_spec(top["farm"][1], workload, "stacks" in top)
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
        stacks: dict[str, str] = {}
        if "stacks" in top:
            sides = self.mapping(top["stacks"][1], "stacks", STACK_ROLES) or {}
            for role, (_, node) in sides.items():
                value = self.string(node, f"stacks.{role}")
                if value is None:
                    continue
                try:
                    resolve_stack(value, role)
                except StackError as exc:
                    self.error(node, f"stacks.{role}", str(exc).removeprefix("stack: "))
                    continue
                stacks[role] = value
        known: dict[str, str] = {}
        if "known_failures" in top:
            checks = self.mapping(top["known_failures"][1], "known_failures", KNOWN_FAILURE_CHECKS) or {}
            for check, (_, node) in checks.items():
                reason = self.string(node, f"known_failures.{check}")  # the reason: a non-empty string
                if reason is not None:
                    known[check] = " ".join(reason.split())
        if self.errors or name is None or description is None or workload is None or initial is None:
            return None
        return Scenario(name=name, description=description.strip(), workload=workload, initial=initial, steps=steps,
                        expect=expect, timeout=timeout, tags=tags, file=self.file,
                        optional_evidence=tuple(optional), stacks=stacks, known_failures=known, farm=self.farm)

    def farm_spec(self, node: Node, workload: Workload | None, stacks: bool) -> FarmSpec | None:
        """``farm: {mode: hash|cid, connection: breaks|survives}``: the run targets the farm's address."""
        keys = self.mapping(node, "farm", FARM_KEYS, required=("mode",))
        if keys is None or "mode" not in keys:
            return None
        mode = self.choice(keys["mode"][1], "farm.mode", FARM_MODES)
        connection = self.choice(keys["connection"][1], "farm.connection", FARM_OUTCOMES) \
            if "connection" in keys else FarmSpec.connection
        if stacks:
            self.error(node, "farm", "the farm's replicas are the lab's own server; drop stacks or farm")
            return None
        if workload is not None and workload.transport != "quic":
            self.error(node, "farm", f"the farm serves QUIC only (its replicas run no TCP); workload.transport "
                                     f"is {workload.transport}")
            return None
        if mode is None or connection is None:
            return None
        return FarmSpec(mode, connection)

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
        keys = self.mapping(node, path, IMPAIRMENT_KEYS)
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
        keys = self.mapping(node, "initial", ("networks", "impair", "nat"))
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
        nat = self.initial_nat(keys["nat"][1]) if "nat" in keys else ()
        return InitialState(networks=tuple(networks), impair=impair, nat=nat)

    def initial_nat(self, node: Node) -> tuple[Step, ...]:
        """``initial.nat``: router -> the fields of a ``nat`` step, validated as that step is."""
        spec = ACTIONS["nat"]
        fields = tuple(f for f in spec.fields if f.name != "router")
        steps: list[Step] = []
        for router, (_, value) in (self.mapping(node, "initial.nat", self.topology.routers) or {}).items():
            path = f"initial.nat.{router}"
            keys = self.mapping(value, path, tuple(f.name for f in fields))
            if keys is None:
                continue
            start = len(self.errors)
            got = {f.name: f.kind.read(self, keys[f.name][1], f"{path}.{f.name}") for f in fields if f.name in keys}
            got = spec.play(_StepCheck(self, keys, path, value, Attachment([], None), Workload()), got)
            if len(self.errors) == start:
                steps.append(Step(action="nat", router=router, description=f"initial NAT behaviour of {router}",
                                  line=value.start_mark.line + 1, **got))
        return tuple(steps)

    def workload(self, node: Node, timeout: float) -> Workload | None:
        keys = self.mapping(node, "workload", WORKLOAD_KEYS)
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
        probe_after = get("probe_after", self.duration, True, 10.0)

        bitrate = get("bitrate", self.convert, parse_bit_rate)
        segment = get("segment", self.duration, True, 60.0)
        segments = get("segments", self.integer, 1, 10_000)
        startup = get("startup", self.duration, True, 60.0)
        buffer = get("buffer", self.duration, True, MAX_TIMEOUT)
        datagrams = get("datagrams", self.boolean)
        family = get("family", self.integer, 4, 6)
        if family == 5:
            self.error(keys["family"][1], "workload.family", "allowed: 4 or 6 (the server's IPv4 or IPv6 address)")

        for key, kinds in KIND_KEYS.items():
            if key in keys and kind not in kinds:
                self.error(keys[key][0], f"workload.{key}",
                           f"only applies to kind {' or '.join(kinds)} (kind is {kind})")
        if kind == "download":
            self.require(keys, node, "workload.size", "is required for a download (e.g. size: 8MB)")
            if size == 0:
                self.error(keys["size"][1], "workload.size", "must be larger than 0")
            if rate == 0:
                self.error(keys["rate"][1], "workload.rate", "must be larger than 0 (omit it for an unpaced download)")
            if size and rate and size / rate >= timeout:
                self.error(keys["rate"][1], "workload.rate",
                           f"{human_bytes(size)} at {human_bytes(rate)}/s takes {size / rate:g}s, not less than "
                           f"the timeout {human_seconds(timeout)}")
        elif kind == "video":
            self.require(keys, node, "workload.segments", "is required for a video (e.g. segments: 10)")
            if bitrate == 0:
                self.error(keys["bitrate"][1], "workload.bitrate", "must be larger than 0")
            plays = (segments or 0) * (segment or Workload.segment)
            if segments and plays >= timeout:
                self.error(keys["segments"][1], "workload.segments",
                           f"{segments} segments of {human_seconds(segment or Workload.segment)} play for "
                           f"{plays:g}s, not less than the timeout {human_seconds(timeout)}")
            if segments and startup is not None and startup > plays:
                self.error(keys["startup"][1], "workload.startup",
                           f"{human_seconds(startup)} is more than the whole video ({plays:g}s)")
        else:
            article = "an echo" if kind == "echo" else "a call"
            self.require(keys, node, "workload.duration", f"is required for {article} (e.g. duration: 6s)")
            if duration is not None and duration >= timeout:
                self.error(keys["duration"][1], "workload.duration",
                           f"must be shorter than the timeout {human_seconds(timeout)}")
            if datagrams and transport == "tcp":
                self.error(keys["datagrams"][1], "workload.datagrams",
                           "DATAGRAM frames are QUIC's (RFC 9221); TCP carries a call on its stream")
        if transport == "tcp" and migration in ("active", "preferred"):
            self.error(keys["migration"][1], "workload.migration",
                       f"{migration!r} is QUIC-only (RFC 9000 §9); with transport tcp use none or passive")
        if transport == "strategies" and (kind != "download" or migration != "passive"):
            self.error(keys["transport"][1], "workload.transport",
                       "strategies reconnect a download after a passive client's detection delay: "
                       "use kind download and migration passive")
        if transport == "both" and migration == "preferred":
            self.error(keys["migration"][1], "workload.migration",
                       "'preferred' is a QUIC transport parameter (RFC 9000 §18.2) with no TCP equivalent; "
                       "use transport quic")
        if rotate and (transport == "tcp" or migration in ("none", "passive")):
            self.error(keys["rotate_cid"][1], "workload.rotate_cid",
                       "needs a client that knows it migrates (migration active or preferred, transport quic)")
        served = (self.topology.port, self.topology.preferred_port)
        if port is not None and port not in served:  # anything else met a closed port mid-run
            self.error(keys["port"][1], "workload.port",
                       f"the server listens on no port {port}; allowed: {', '.join(map(str, served))}")
        elif migration == "preferred" and port is not None and port != self.topology.preferred_port:
            self.error(keys["port"][1], "workload.port",
                       f"migration preferred needs the server port that advertises a preferred address "
                       f"({self.topology.preferred_port}); omit port")
        if len(self.errors) > start:
            return None
        if rotate is None:
            rotate = migration in ("active", "preferred")
        if port is None:
            port = self.topology.preferred_port if migration == "preferred" else self.topology.port
        video = {"bitrate": bitrate, "segment": segment, "segments": segments, "startup": startup, "buffer": buffer}
        return Workload(transport=transport, kind=kind, size=size if kind == "download" else None,
                        rate=rate, interval=interval if interval is not None else 0.02, duration=duration,
                        migration=migration, rotate_cid=rotate, port=port,
                        probe_after=probe_after if probe_after is not None else Workload.probe_after,
                        datagrams=datagrams if datagrams is not None else transport != "tcp", family=family or 4,
                        **{key: value for key, value in video.items() if value is not None})

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
            if workload.kind not in ("download", "video"):
                self.error(node, where, "needs a download or video workload (progress is counted in bytes)")
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
            self.error(node, where, f"role {not_allowed(role, ROLES)}")
            return None
        if event not in EVENT_TYPES:
            self.error(node, where, not_allowed(event, sorted(EVENT_TYPES), "unknown event type {value!r}; known"))
            return None
        return Trigger(kind="after", event=event, role=role or None)

    def steps(self, node: Node, initial: InitialState, workload: Workload, timeout: float) -> tuple[Step, ...]:
        """Every step, validated by its action's spec and played in order on the client's attachments.

        Playing the steps in order is what catches "route via a network the client has left".
        """
        items = self.sequence(node, "steps")
        if items is None:
            return ()
        state = Attachment(list(initial.networks), initial.networks[0] if initial.networks else None)
        last_at: tuple[float, str] | None = None
        clock, late = 0.0, False
        steps: list[Step] = []
        every_field = sorted({name for spec in ACTIONS.values() for name in spec.field_names})
        for index, item in enumerate(items):
            path = f"steps[{index}]"
            if not isinstance(item, MappingNode):
                self.error(item, path, f"must be a mapping with an action, got {self.kind_of(item)}")
                continue
            start = len(self.errors)
            action = None
            for key_node, value_node in item.value:
                if isinstance(key_node, ScalarNode) and key_node.value == "action":
                    action = self.choice(value_node, f"{path}.action", ACTIONS)
            spec = ACTIONS[action] if action else None
            allowed = (*STEP_KEYS, *(spec.field_names if spec else every_field))
            keys = self.mapping(item, path, allowed, required=("action",) + (spec.required if spec else ()))
            if keys is None or spec is None or any(k not in keys for k in spec.required):
                continue
            trigger = self.trigger(keys, path, workload)
            delay = self.duration(keys["delay"][1], f"{path}.delay") if "delay" in keys else 0.0
            description = self.string(keys["description"][1], f"{path}.description") if "description" in keys \
                else None
            if trigger is not None and trigger.at is not None:
                if last_at is not None and trigger.at < last_at[0]:
                    self.error(keys["at"][1], f"{path}.at",
                               f"{human_seconds(trigger.at)} is earlier than {last_at[1]}; steps run in order")
                last_at = (trigger.at, f"at: {human_seconds(trigger.at)} of steps[{index}]")
                clock = max(clock, trigger.at)
            fields = self.action_fields(spec, keys, path, item, state, workload)
            # The earliest time this step can end; `after` triggers only make it later.
            clock += (delay or 0.0) + (fields.get("duration") or 0.0)
            if fields.get("flap") is not None:
                clock += (fields["flap"].times - 1) * fields["flap"].interval
            if clock >= timeout and not late:
                late = True
                where = keys["at"][1] if "at" in keys else item
                self.error(where, f"{path}.at" if "at" in keys else path,
                           f"runs until {human_seconds(clock)} or later; {human_seconds(clock)} is not before the "
                           f"timeout {human_seconds(timeout)}")
            if len(self.errors) > start or trigger is None:
                continue
            steps.append(Step(action=spec.name, trigger=trigger, delay=delay or 0.0, description=description,
                              line=item.start_mark.line + 1, index=index, **fields))
        return tuple(steps)

    def action_fields(self, spec: ActionSpec, keys: dict[str, tuple[Node, Node]], path: str, item: Node,
                      state: Attachment, workload: Workload) -> dict[str, Any]:
        """Read the action's own fields by their kinds, then let the action play them (its ``play``)."""
        got = {f.name: f.kind.read(self, keys[f.name][1], f"{path}.{f.name}") for f in spec.fields if f.name in keys}
        return spec.play(_StepCheck(self, keys, path, item, state, workload), got)

    def router(self, node: Node, path: str) -> str | None:
        return self.choice(node, path, self.topology.routers)

    def network_list(self, node: Node, path: str) -> list[str | None] | None:
        """Client networks, each listed once: one entry per item (None where an item is wrong)."""
        items = self.sequence(node, path)
        if items is None:
            return None
        names: list[str | None] = []
        for i, item in enumerate(items):
            name = self.network(item, f"{path}[{i}]")
            if name is not None and name in names:
                self.error(item, f"{path}[{i}]", f"{name!r} is listed twice")
            names.append(name)
        return names

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
                                                           f"{self.kind_of(arg_node)}")
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
                self.error(item, path, not_allowed(check, CHECKS, "unknown check {value!r}; known"))
                continue
            spec = CHECKS[check]
            if scope and scope not in transports:
                self.error(item, path, f"transport prefix {scope!r} is not a transport of this workload "
                                       f"({', '.join(transports)})")
                continue
            applicable = [t for t in ((scope,) if scope else transports) if family_of(t) in spec.transports]
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


class _StepCheck:
    """What an action's ``play`` sees: the attachments, the workload, and errors located in the step."""

    def __init__(self, validator: ScenarioValidator, keys: dict[str, tuple[Node, Node]], path: str, item: Node,
                 state: Attachment, workload: Workload) -> None:
        self._validator, self._keys, self._path, self._item = validator, keys, path, item
        self.state, self.workload = state, workload
        self.farm = validator.farm or (validator.farm_declared or None)

    def error(self, key: str | None, message: str, index: int | None = None) -> None:
        if key is None:
            self._validator.error(self._item, self._path, message)
            return
        node = self._keys[key][1]
        if index is not None:
            self._validator.error(node.value[index], f"{self._path}.{key}[{index}]", message)
        else:
            self._validator.error(node, f"{self._path}.{key}", message)


__all__ = ["FARM_KEYS", "IMPAIRMENT_KEYS", "STEP_KEYS", "TOP_KEYS", "WORKLOAD_KEYS", "ScenarioValidator"]
