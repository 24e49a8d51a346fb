"""The step actions of the scenario language: one spec per action, the one table everything reads.

Each :class:`ActionSpec` says what a step with that ``action:`` takes (its fields, which are
required, what kind of value each is), what validation beyond the fields it needs (``play``: the
replay of which networks the client is attached to, step by step), and how the runner applies it
to the live lab (``apply``: a callable taking the ``Lab`` and the ``Step``). From this table come:

- the validator's rules for ``steps:`` (:mod:`lab.scenario.rules`);
- ``ScenarioRunner._apply`` (:mod:`lab.scenario.runner`);
- the actions table of ``scenarios/README.md`` and the editors' JSON Schema
  ``scenarios/scenario.schema.json`` (:mod:`lab.scenario.reference`, checked current by a test).

Adding an action is adding one entry here (and its method on ``lab.control.actions.Lab``).
Pure at import: the ``apply`` callables import the Docker side only when they run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lab import nat_behaviour
from lab.addresses import host_number_or_ipv4
from lab.control.attacks import KINDS as ATTACK_KINDS
from lab.scenario.model import Flap, Step, Workload
from lab.units import parse_duration

if TYPE_CHECKING:
    from yaml.nodes import Node

    from lab.control.actions import Lab
    from lab.control.base import ActionResult


# --- what a field holds ------------------------------------------------------------------------


class FieldReader(Protocol):
    """What a field kind needs from the validator (:class:`lab.scenario.rules.ScenarioValidator`)."""

    def network(self, node: Node, path: str, client_only: bool = True) -> str | None: ...
    def network_list(self, node: Node, path: str) -> list[str | None] | None: ...
    def router(self, node: Node, path: str) -> str | None: ...
    def impairment(self, node: Node, path: str) -> Any: ...
    def convert(self, node: Node, path: str, parse: Callable[[Any], Any]) -> Any: ...
    def boolean(self, node: Node, path: str) -> bool | None: ...
    def integer(self, node: Node, path: str, low: int, high: int) -> int | None: ...
    def duration(self, node: Node, path: str, positive: bool = False, maximum: float | None = None) -> float | None: ...


def on_off(value: Any) -> bool:
    """YAML 1.1 reads on/off as booleans; accept those and the strings."""
    if isinstance(value, bool):
        return value
    if value in ("on", "off"):
        return value == "on"
    raise ValueError(f"{value!r} is not allowed; allowed: on, off")


def attack_kind(value: Any) -> str:
    if value not in ATTACK_KINDS:
        raise ValueError(f"{value!r} is not allowed; allowed: {', '.join(ATTACK_KINDS)}")
    return str(value)


def whole_seconds(value: Any) -> float:
    """A duration conntrack can keep: whole seconds (``5s``, ``1min``)."""
    return float(nat_behaviour.seconds(parse_duration(value)))


@dataclass(frozen=True)
class Kind:
    """A kind of field value: how the validator reads it, its JSON Schema, how the README names it.

    ``json`` refers to a definition of :func:`lab.scenario.reference.json_schema` by name.
    """

    read: Callable[[FieldReader, Node, str], Any]
    json: str
    doc: str = ""


FLAP_TIMES = (1, 1000)

CLIENT_NETWORK = Kind(lambda v, node, path: v.network(node, path), "client_network")
ANY_NETWORK = Kind(lambda v, node, path: v.network(node, path, client_only=False), "network", "any")
CLIENT_NETWORKS = Kind(lambda v, node, path: v.network_list(node, path), "flap_networks", "≥2, attached")
ROUTER = Kind(lambda v, node, path: v.router(node, path), "router")
ADDRESS = Kind(lambda v, node, path: v.convert(node, path, host_number_or_ipv4), "address",
               "host number 2-254 or IPv4")
ON_OFF = Kind(lambda v, node, path: v.convert(node, path, on_off), "on_off", "on/off")
IMPAIRMENT = Kind(lambda v, node, path: v.impairment(node, path), "impairment_or_profile",
                  "{delay: ..., loss: ...} or a profile name")
ATTACK = Kind(lambda v, node, path: v.convert(node, path, attack_kind), "attack_kind", "/".join(ATTACK_KINDS))
FLAG = Kind(lambda v, node, path: v.boolean(node, path), "boolean")
POSITIVE_DURATION = Kind(lambda v, node, path: v.duration(node, path, positive=True), "duration")
TIMES = Kind(lambda v, node, path: v.integer(node, path, *FLAP_TIMES), "flap_times", "1-1000")
NAT_MAPPING = Kind(lambda v, node, path: v.convert(node, path, nat_behaviour.mapping_name), "nat_mapping",
                   "/".join(nat_behaviour.MAPPINGS))
NAT_PORTS = Kind(lambda v, node, path: v.convert(node, path, nat_behaviour.ports_name), "nat_ports",
                 "/".join(nat_behaviour.PORTS))
FARM_TRIES = (1, 32)
TRIES = Kind(lambda v, node, path: v.integer(node, path, *FARM_TRIES), "farm_tries", "1-32, default 16")
WHOLE_SECONDS = Kind(lambda v, node, path: v.convert(node, path, whole_seconds), "duration", "whole seconds")


@dataclass(frozen=True)
class Field:
    """One key of a step besides the common ones (action, trigger, delay, description).

    ``doc``, when given, is how the README writes the field (e.g. ``reset: true``).
    """

    name: str
    kind: Kind
    required: bool = True
    doc: str = ""


# --- the replay: what a step does to the client's attachments -----------------------------------


@dataclass
class Attachment:
    """The client's networks while the steps are played in order during validation."""

    attached: list[str]
    default: str | None  # the network the default route is on
    attacks: set[tuple[str, str]] = field(default_factory=set)  # (network, kind) switched on


class StepCheck(Protocol):
    """What ``play`` sees of the step being validated (:class:`lab.scenario.rules.ScenarioValidator`)."""

    state: Attachment
    workload: Workload
    farm: Any  # the scenario's FarmSpec, or None when it runs against the lab's one server

    def error(self, key: str | None, message: str, index: int | None = None) -> None:
        """A problem located at the step's ``key`` (its item ``index`` in a list), or at the step."""
        ...


Play = Callable[[StepCheck, dict[str, Any]], dict[str, Any]]


def _need_attached(check: StepCheck, name: str | None, verb: str) -> bool:
    if name is not None and name not in check.state.attached:
        check.error("network", f"cannot {verb} {name!r}: the client is not attached to it at this step "
                               f"(attached: {', '.join(check.state.attached) or 'none'})")
        return False
    return name is not None


def _play_connect(check: StepCheck, got: dict[str, Any]) -> dict[str, Any]:
    name = got.get("network")
    if name is not None and name in check.state.attached:
        check.error("network", f"the client is already attached to {name!r}")
    elif name is not None:
        check.state.attached.append(name)
    return got


def _play_disconnect(check: StepCheck, got: dict[str, Any]) -> dict[str, Any]:
    name = got.get("network")
    if _need_attached(check, name, "disconnect"):
        check.state.attached.remove(name)
        check.state.default = None if check.state.default == name else check.state.default
    return got


def _play_temporary(check: StepCheck, got: dict[str, Any]) -> dict[str, Any]:
    _need_attached(check, got.get("network"), "add a temporary address on")
    return got


def _play_route(check: StepCheck, got: dict[str, Any]) -> dict[str, Any]:
    if _need_attached(check, got.get("network"), "route"):
        check.state.default = got["network"]
    return got


def _play_migrate(check: StepCheck, got: dict[str, Any]) -> dict[str, Any]:
    _need_attached(check, got.get("network"), "migrate")
    if check.workload.migration != "active":
        check.error("action", f"migrate needs workload.migration: active (it is {check.workload.migration})")
    return got


def _play_renumber(check: StepCheck, got: dict[str, Any]) -> dict[str, Any]:
    _need_attached(check, got.get("network"), "renumber")
    return got


def _play_impair(check: StepCheck, got: dict[str, Any]) -> dict[str, Any]:
    reset = bool(got.get("reset"))
    if ("impair" in got) == reset:
        check.error(None, "impair needs either impair: {delay: ..., loss: ...} (or a profile name), "
                          "or reset: true; not both")
    fields: dict[str, Any] = {"network": got.get("network"), "reset": reset}
    if got.get("impair") is not None:
        fields["impairment"] = got["impair"]
    return fields


def _play_flap(check: StepCheck, got: dict[str, Any]) -> dict[str, Any]:
    """Validate the switches against the attachments, and resolve them (starting after the default)."""
    listed = got.get("networks") or []
    attached = check.state.attached
    if listed and len(listed) < 2:
        check.error("networks", "needs at least two networks to switch between")
    for index, name in enumerate(listed):
        if name is not None and name not in listed[:index] and name not in attached:
            check.error("networks", f"the client is not attached to {name!r} at this step; flap switches the "
                                    f"default route between attached networks (attached: "
                                    f"{', '.join(attached) or 'none'})", index)
    networks = [name for name in listed if name is not None]
    times, interval = got.get("times"), got.get("interval")
    if times is None or interval is None or len(networks) < 2:
        return {}
    default = check.state.default
    first = (networks.index(default) + 1) if default in networks else 0
    sequence = tuple(networks[(first + k) % len(networks)] for k in range(times))
    check.state.default = sequence[-1]
    return {"flap": Flap(networks=tuple(networks), times=times, interval=interval, sequence=sequence,
                         migrate=check.workload.migration == "active")}


def _play_attack(check: StepCheck, got: dict[str, Any]) -> dict[str, Any]:
    """An attack is switched off only where it is on, and on only once; the network must be attached."""
    network, kind, state = got.get("network"), got.get("kind"), got.get("state")
    if network is None or kind is None or state is None:
        return got
    key = (network, kind)
    if state and key in check.state.attacks:
        check.error("state", f"attack {kind} on {network} is already on")
    elif not state and key not in check.state.attacks:
        check.error("state", f"attack {kind} on {network} is not on at this step")
    elif state:
        _need_attached(check, network, "attack the client on")
        check.state.attacks.add(key)
    else:
        check.state.attacks.discard(key)
    return got


def _play_nat(check: StepCheck, got: dict[str, Any]) -> dict[str, Any]:
    """Something to change, and a mapping/ports pair Linux can give (a half alone implies the other)."""
    if not {"mapping", "ports", "udp_timeout"} & got.keys():
        check.error(None, "nat needs at least one of mapping, ports, udp_timeout")
    elif got.get("mapping") is not None and got.get("ports") is not None:
        try:
            nat_behaviour.masquerade_flags(got["mapping"], got["ports"])
        except ValueError as exc:
            check.error("ports", str(exc))
    return got


def _play_idle(check: StepCheck, got: dict[str, Any]) -> dict[str, Any]:
    if check.workload.kind != "echo" or "quic" not in check.workload.transports:
        check.error("action", f"idle pauses the QUIC echo: it needs workload.kind: echo over quic or both "
                              f"(it is {check.workload.kind} over {check.workload.transport})")
    return got


def _play_farm(check: StepCheck, got: dict[str, Any]) -> dict[str, Any]:
    if check.farm is None:
        check.error("action", "farm_rebind needs the scenario to run against the farm (farm: {mode: hash|cid})")
    return got


def _as_given(check: StepCheck, got: dict[str, Any]) -> dict[str, Any]:
    return got


# --- how the runner applies it ------------------------------------------------------------------

Apply = Callable[["Lab", Step], "ActionResult"]


def _apply_impair(lab: Lab, step: Step) -> ActionResult:
    from lab.control import impair

    return impair.apply_step(lab, step)


def _apply_farm_rebind(lab: Lab, step: Step) -> ActionResult:
    from lab.control import farm

    return farm.rebind_until_moved(lab, step.router or "", step.tries or farm.DEFAULT_TRIES, step.give_up)


def _apply_wait(lab: Lab, step: Step) -> ActionResult:
    from lab.control.base import ActionResult

    return ActionResult("wait", f"{step.duration or 0:g}s")  # the runner holds the next step for the duration


# --- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionSpec:
    """One action of the scenario language.

    ``one_of``: fields of which exactly one must be given (``impair`` or ``reset: true``).
    ``apply`` is None for an action the plan expands into others before the runner sees it (``flap``).
    ``changes_network``: the action changes addresses or reachability (a run's disruption is measured
    from the first such action); ``moves_client``: it gives the server a new client path to validate.
    """

    name: str
    fields: tuple[Field, ...]
    does: str
    play: Play = _as_given
    apply: Apply | None = None
    one_of: tuple[str, ...] = ()
    changes_network: bool = True
    moves_client: bool = False
    commands_client: bool = False  # it tells the lab's own client what to do (nothing a black box obeys)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


_SPECS = (
    ActionSpec("connect", (Field("network", CLIENT_NETWORK), Field("address", ADDRESS, required=False)),
               "attach the client to a client network; the default route stays where it was",
               _play_connect, lambda lab, step: lab.connect(step.network, step.address)),  # type: ignore[arg-type]
    ActionSpec("disconnect", (Field("network", CLIENT_NETWORK),),
               "detach the client; packets in flight are lost; if it carried the default route there is none "
               "until a `route`",
               _play_disconnect, lambda lab, step: lab.disconnect(step.network)),  # type: ignore[arg-type]
    ActionSpec("route", (Field("network", CLIENT_NETWORK),),
               "send the client's default route via that network's router",
               _play_route, lambda lab, step: lab.route(step.network), moves_client=True),  # type: ignore[arg-type]
    ActionSpec("migrate", (Field("network", CLIENT_NETWORK),),
               "tell an active client to move the connection to its address on that network (needs "
               "`migration: active`)",
               _play_migrate, lambda lab, step: lab.migrate(step.network),  # type: ignore[arg-type]
               moves_client=True, commands_client=True),
    ActionSpec("rebind", (Field("router", ROUTER),),
               "the router forgets its NAT mappings: a new outside port (NAT rebinding)",
               _as_given, lambda lab, step: lab.rebind(step.router), moves_client=True),  # type: ignore[arg-type]
    ActionSpec("renumber", (Field("network", CLIENT_NETWORK), Field("address", ADDRESS, required=False)),
               "give the client a new address on the same network",
               _play_renumber, lambda lab, step: lab.renumber(step.network, step.address),  # type: ignore[arg-type]
               moves_client=True),
    ActionSpec("temporary_address", (Field("network", CLIENT_NETWORK),),
               "give the client a new temporary IPv6 address on that network (RFC 8981: a random interface "
               "identifier) and deprecate its current one, so its next packets leave from the new address",
               _play_temporary, lambda lab, step: lab.temporary_address(step.network),  # type: ignore[arg-type]
               moves_client=True),
    ActionSpec("blackhole", (Field("network", ANY_NETWORK), Field("state", ON_OFF, doc="`state: on/off`")),
               "drop everything on that network",
               _as_given, lambda lab, step: lab.blackhole(step.network, bool(step.state))),  # type: ignore[arg-type]
    ActionSpec("impair", (Field("network", ANY_NETWORK), Field("impair", IMPAIRMENT, required=False),
                          Field("reset", FLAG, required=False, doc="`reset: true`")),
               "change link quality (`reset: true` removes every impairment on the network)",
               _play_impair, _apply_impair, one_of=("impair", "reset"), changes_network=False),
    ActionSpec("attack", (Field("network", CLIENT_NETWORK), Field("kind", ATTACK, doc="`kind: " +
                                                                         "/".join(ATTACK_KINDS) + "`"),
                          Field("state", ON_OFF, doc="`state: on/off`")),
               "switch an attack on the client's traffic on or off: `rewrite` (on-path, to the victim's "
               "address), `forward` (off-path copies from the attacker's address), `spoof` (off-path copies "
               "from the victim's address); starts the victim and the attacker (compose profile adversary)",
               # Not a client move: the paths it makes are the attacker's, which the server must not adopt.
               _play_attack, lambda lab, step: lab.attack(step.network, step.kind, bool(step.state))),  # type: ignore[arg-type]
    ActionSpec("nat", (Field("router", ROUTER), Field("mapping", NAT_MAPPING, required=False),
                       Field("ports", NAT_PORTS, required=False), Field("udp_timeout", WHOLE_SECONDS, required=False)),
               "change the router's NAT behaviour (RFC 4787): `mapping` endpoint-independent (with `ports: "
               "preserve`) or address-and-port-dependent (with `ports: random`) for the mappings made from then on; "
               "`udp_timeout`, the binding's idle timeout, for every binding from its next packet on; the reset "
               "restores compose.yaml's",
               _play_nat, lambda lab, step: lab.nat(step.router, step.mapping, step.ports, step.udp_timeout),  # type: ignore[arg-type]
               changes_network=False),
    ActionSpec("idle", (Field("duration", POSITIVE_DURATION), Field("keepalive", POSITIVE_DURATION, required=False)),
               "the QUIC echo client sends nothing for `duration` (the echo's duration must outlast it), except a "
               "PING every `keepalive` if given (aioquic sends none by itself)",
               _play_idle, lambda lab, step: lab.idle(step.duration, step.keepalive),  # type: ignore[arg-type]
               changes_network=False, commands_client=True),
    ActionSpec("farm_rebind", (Field("router", ROUTER), Field("tries", TRIES, required=False),
                               Field("give_up", POSITIVE_DURATION, required=False)),
               "rebind the router's NAT (as `rebind`) until the farm's balancer sends the connection's new flow to "
               "another replica than the one holding it, at most `tries` times; each new flow and its replica, read "
               "from the balancer's conntrack, go into the action event; with `give_up`, once the flow moved the "
               "client gets that long, then the controller ends it (SIGTERM), as a user gives up on a dead "
               "connection that aioquic would keep until its 60 s idle timeout (needs `farm:`)",
               _play_farm, _apply_farm_rebind, moves_client=True),
    ActionSpec("wait", (Field("duration", POSITIVE_DURATION),), "do nothing for a while",
               _as_given, _apply_wait, changes_network=False),
    ActionSpec("flap", (Field("networks", CLIENT_NETWORKS), Field("times", TIMES),
                        Field("interval", POSITIVE_DURATION)),
               "switch the default route `times` times, every `interval` (expanded into `route` steps)",
               _play_flap, None),
)

ACTIONS: dict[str, ActionSpec] = {spec.name: spec for spec in _SPECS}

__all__ = ["ACTIONS", "ActionSpec", "Attachment", "Field", "Kind", "StepCheck", "on_off"]
