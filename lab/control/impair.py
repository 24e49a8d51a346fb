"""Link impairments per client network: delay, jitter, random loss, rate limit, blackhole.

Each impairment sits on the network's NAT router and acts on both directions of that LAN's
traffic. Semantics are netem's: ``delay`` is one way and applies in each direction, so the RTT
grows by 2 x delay; ``jitter`` is +/- (uniform), each way; ``loss`` is a per-direction
probability; ``rate`` caps each direction. Every `apply` replaces all of a network's impairments
(containerlab's `tools netem set`), including its blackhole state.

Two modes, chosen at run time by probing the router's kernel for ``sch_netem``:

* ``netem``: ``tc qdisc replace dev <if> root netem ...`` on the router's LAN and WAN interfaces
  (the egress of each direction), delay/jitter/loss/rate in one qdisc.
* ``fallback`` (no sch_netem): loss with ``iptables -m statistic --mode random`` in FORWARD (one
  rule per direction); rate with ``tbf`` as the root qdisc of both interfaces; delay and jitter
  with the userspace delay line (lab/endpoints/router/delayline.py) fed by ``-j NFQUEUE --queue-bypass``
  rules in ``raw PREROUTING`` for packets arriving on either interface. In the raw table the
  packet has no conntrack entry yet, so it is NATed and filtered only after its delay (a queue
  before conntrack confirmation would let a second packet of a new flow make a second, clashing
  NAT mapping).

Blackhole (both modes) is `Lab.blackhole`: DROP rules in FORWARD, interfaces untouched. Every
rule this module adds carries the comment ``lab-impair`` so it can be removed exactly.
The environment variable LAB_IMPAIR_MODE=netem|fallback forces a mode (e.g. to test the fallback
on a kernel with netem).

Pure core: `PROFILES`, `resolve`, `plan`, `removal_commands`, `parse_qdisc` (``tc -j``),
`parse_readback`. Edge (docker-py): `apply`, `apply_step`, `reset_all`, `show`.

This module imports neither the scenario package nor ``lab.control.actions`` (which imports it):
an impairment is anything with the fields of `ImpairmentSpec` (``lab.scenario.model.Impairment``
is one), and the lab is anything with the methods of `LabHandle` (``lab.control.actions.Lab``).
"""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from lab.control.base import BLACKHOLE_TAG, ActionError, ActionResult, interface_in
from lab.control.docker_api import exec_checked
from lab.topology.model import Topology

NETEM = "netem"
FALLBACK = "fallback"
MODES = (NETEM, FALLBACK)
TAG = "lab-impair"
MODE_ENV = "LAB_IMPAIR_MODE"
DELAYLINE = ["python", "-m", "lab.endpoints.router.delayline"]
STATE_DIR = "/run/lab"
NETEM_LIMIT = 10000  # packets (containerlab's netem limit)
TBF_LATENCY_MS = 100  # longest a packet may wait in the tbf queue
QUEUE_BASE = 1


class ImpairmentSpec(Protocol):
    """A requested impairment, as ``lab.scenario.model.Impairment`` holds it (read-only fields).

    ``delay`` and ``jitter`` in seconds, ``loss`` in percent, ``rate`` in bits per second; None
    takes the profile's value (or none). ``profile`` names an entry of `PROFILES`.
    """

    @property
    def delay(self) -> float | None: ...

    @property
    def jitter(self) -> float | None: ...

    @property
    def loss(self) -> float | None: ...

    @property
    def rate(self) -> int | None: ...

    @property
    def blackhole(self) -> bool: ...

    @property
    def profile(self) -> str | None: ...


class LabHandle(Protocol):
    """What this module needs of the live lab (``lab.control.actions.Lab``)."""

    topology: Topology

    def ctr(self, service: str) -> Any: ...
    def require_client_network(self, network: str) -> None: ...
    def blackhole(self, network: str, on: bool) -> ActionResult: ...


@dataclass(frozen=True)
class LinkParams:
    """Effective parameters of one link, per direction: what is applied after profile resolution."""

    delay: float = 0.0  # seconds, one way, each direction
    jitter: float = 0.0  # seconds, +/- (uniform), each direction
    loss: float = 0.0  # percent, each direction
    rate: int | None = None  # bits per second, each direction
    blackhole: bool = False
    profile: str | None = None

    @property
    def shaped(self) -> bool:
        return bool(self.delay or self.jitter or self.loss or self.rate)

    @property
    def clear(self) -> bool:
        return not self.shaped and not self.blackhole

    def summary(self) -> dict[str, Any]:
        return {"delay_ms": round(self.delay * 1000, 3), "jitter_ms": round(self.jitter * 1000, 3),
                "loss_pct": self.loss, "rate_bit": self.rate, "blackhole": self.blackhole, "profile": self.profile}


# --- profiles -------------------------------------------------------------------------------
# Per direction. Comcast's presets (github.com/tylertreat/comcast README) are one-sided (netem on
# one egress), so their latency and loss are split in half across the two directions: the RTT and
# the round-trip loss then match the preset. Sources and reasoning: docs/impairment.md.

PROFILES: dict[str, LinkParams] = {
    "wifi": LinkParams(delay=0.020, loss=0.1, rate=30_000_000),  # Comcast "WIFI (good)" 40 ms, 30000 kbit, 0.2 %
    "lte": LinkParams(delay=0.035, rate=12_000_000),  # WebPageTest "LTE": RTT 70 ms, 12 Mbit/s
    "4g": LinkParams(delay=0.085, rate=9_000_000),  # WebPageTest "4G": RTT 170 ms, 9 Mbit/s
    "3g": LinkParams(delay=0.125, loss=0.75, rate=750_000),  # Comcast "3G/HSDPA (good)" 250 ms, 750 kbit, 1.5 %
    "edge": LinkParams(delay=0.150, loss=0.75, rate=250_000),  # Comcast "EDGE (good)" 300 ms, 250 kbit, 1.5 %
    "gprs": LinkParams(delay=0.250, loss=1.0, rate=50_000),  # Comcast "GPRS (good)" 500 ms, 50 kbit, 2 %
    "satellite": LinkParams(delay=0.300, jitter=0.010, loss=0.1, rate=10_000_000),  # GEO: ~600 ms RTT (lab's choice)
    "lossy-cellular": LinkParams(delay=0.040, jitter=0.010, loss=5.0, rate=10_000_000),  # lab's choice: loss tests
}


def resolve(impairment: ImpairmentSpec | None) -> LinkParams:
    """Profile values, overridden by every explicit field; validated. ValueError names the problem.

    None is no impairment at all.
    """
    base = LinkParams()
    if impairment is None:
        return base
    if impairment.profile:
        if impairment.profile not in PROFILES:
            raise ValueError(f"profile {impairment.profile!r} is not known; allowed: {', '.join(PROFILES)}")
        base = replace(PROFILES[impairment.profile], profile=impairment.profile)
    params = LinkParams(
        delay=base.delay if impairment.delay is None else float(impairment.delay),
        jitter=base.jitter if impairment.jitter is None else float(impairment.jitter),
        loss=base.loss if impairment.loss is None else float(impairment.loss),
        rate=base.rate if impairment.rate is None else int(impairment.rate),
        blackhole=bool(impairment.blackhole or base.blackhole),
        profile=base.profile,
    )
    if params.delay < 0 or params.jitter < 0:
        raise ValueError("delay and jitter must not be negative")
    if params.delay > 10 or params.jitter > 10:
        raise ValueError("delay and jitter must be at most 10 s")
    if not 0 <= params.loss <= 100:
        raise ValueError(f"loss must be between 0 and 100 percent, not {params.loss}")
    if params.rate is not None and params.rate < 8000:
        raise ValueError(f"rate must be at least 8kbit, not {params.rate} bit/s")
    return params


def queue_number(networks: list[str], network: str) -> int:
    """The NFQUEUE number of a network's delay line (stable: sorted network names)."""
    return QUEUE_BASE + sorted(networks).index(network)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}".rstrip("0").rstrip(".") + "ms"


def tbf_burst(rate: int) -> int:
    """Bytes: 10 ms at the rate, at least 4000 (above an MTU, and above rate/HZ for HZ >= 100)."""
    return max(4000, rate // 8 // 100)


def plan(mode: str, params: LinkParams, lan_if: str, wan_if: str, lan_subnet: str, queue: int = QUEUE_BASE) \
        -> list[list[str]]:
    """Commands (argv lists) that apply `params` to a router whose impairments are already removed.

    The blackhole is not in the plan (`Lab.blackhole` owns it). A command starting with
    ``python -m lab.endpoints.router.delayline`` is a long-running process to start in the background.
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not known; allowed: {', '.join(MODES)}")
    commands: list[list[str]] = []
    if mode == NETEM:
        if not params.shaped:
            return commands
        options = ["limit", str(NETEM_LIMIT)]
        if params.delay or params.jitter:
            options += ["delay", _ms(params.delay)] + ([_ms(params.jitter)] if params.jitter else [])
        if params.loss:
            options += ["loss", f"{params.loss:g}%"]
        if params.rate:
            options += ["rate", f"{params.rate}bit"]
        for dev in (lan_if, wan_if):
            commands.append(["tc", "qdisc", "replace", "dev", dev, "root", "netem", *options])
        return commands
    comment = ["-m", "comment", "--comment", TAG]
    if params.delay or params.jitter:
        commands.append([*DELAYLINE, "--queue", str(queue), "--delay-ms", f"{params.delay * 1000:g}",
                         "--jitter-ms", f"{params.jitter * 1000:g}"])
        for dev in (lan_if, wan_if):
            commands.append(["iptables", "-w", "-t", "raw", "-A", "PREROUTING", "-i", dev, *comment,
                             "-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass"])
    if params.loss:
        probability = f"{params.loss / 100:.6f}".rstrip("0").rstrip(".")
        for direction in (["-i", lan_if, "-s", lan_subnet], ["-o", lan_if]):
            commands.append(["iptables", "-w", "-I", "FORWARD", *direction, "-m", "statistic", "--mode", "random",
                             "--probability", probability, *comment, "-j", "DROP"])
    if params.rate:
        for dev in (lan_if, wan_if):
            commands.append(["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{params.rate}bit",
                             "burst", str(tbf_burst(params.rate)), "latency", f"{TBF_LATENCY_MS}ms"])
    return commands


def removal_commands(filter_rules: str, raw_rules: str, lan_if: str, wan_if: str) -> list[list[str]]:
    """Commands that undo this module's rules (from `iptables -S` of filter and raw) and qdiscs."""
    commands = []
    for table, text in (("filter", filter_rules), ("raw", raw_rules)):
        for line in text.splitlines():
            words = shlex.split(line)
            if len(words) > 2 and words[0] == "-A" and TAG in words:
                commands.append(["iptables", "-w", "-t", table, "-D", *words[1:]])
    for dev in (lan_if, wan_if):
        commands.append(["tc", "qdisc", "del", "dev", dev, "root"])
    return commands


def parse_qdisc(text: str) -> dict[str, Any]:
    """The root qdisc from `tc -j qdisc show dev X` -> {"kind", "delay", "jitter", "loss", "rate"}.

    Units as `LinkParams`: seconds, percent, bits per second; only what the qdisc sets. tc's JSON
    (iproute2 ``tc/q_netem.c``, ``q_tbf.c``) gives netem's delay and jitter in seconds under
    ``options.delay``, its loss as a fraction under ``options["loss-random"]``, and every rate in
    bytes per second.
    """
    try:
        qdiscs = json.loads(text) if text.strip() else []
    except ValueError:
        raise ActionError(f"not the output of tc -j qdisc show: {text.strip()[:200]!r}") from None
    for qdisc in qdiscs:
        if not qdisc.get("root"):
            continue
        found: dict[str, Any] = {"kind": qdisc.get("kind")}
        options = qdisc.get("options") or {}
        delay = options.get("delay")
        if isinstance(delay, dict):
            found["delay"] = float(delay.get("delay", 0.0))
            if delay.get("jitter"):
                found["jitter"] = float(delay["jitter"])
        loss = options.get("loss-random")
        if isinstance(loss, dict) and "loss" in loss:
            found["loss"] = round(float(loss["loss"]) * 100, 6)
        rate = options.get("rate")
        if isinstance(rate, dict):  # netem: {"rate": bytes/s, "packetoverhead": ...}
            rate = rate.get("rate")
        if rate:
            found["rate"] = int(rate) * 8
        return found
    return {"kind": None}


def parse_readback(mode: str, lan_qdisc: str, wan_qdisc: str, filter_rules: str, raw_rules: str,
                   delayline_state: dict[str, Any] | None, lan_if: str) -> dict[str, Any]:
    """What a router actually has, from its tc (JSON)/iptables listings and the delay line's state file."""
    lan, wan = parse_qdisc(lan_qdisc), parse_qdisc(wan_qdisc)
    tagged = [shlex.split(line) for line in filter_rules.splitlines() if TAG in line]
    queued = [shlex.split(line) for line in raw_rules.splitlines() if TAG in line and "NFQUEUE" in line]
    blackhole = sum(1 for line in filter_rules.splitlines() if BLACKHOLE_TAG in line) >= 2
    result: dict[str, Any] = {"delay_ms": 0.0, "jitter_ms": 0.0, "loss_pct": 0.0, "rate_bit": None,
                              "blackhole": blackhole, "mechanisms": {}}
    mechanisms = result["mechanisms"]
    if lan["kind"] == "netem" or wan["kind"] == "netem":
        result["delay_ms"] = round(lan.get("delay", 0.0) * 1000, 3)
        result["jitter_ms"] = round(lan.get("jitter", 0.0) * 1000, 3)
        result["loss_pct"] = lan.get("loss", 0.0)
        result["rate_bit"] = lan.get("rate")
        mechanisms["netem"] = {"lan": lan, "wan": wan}
    if lan["kind"] == "tbf" or wan["kind"] == "tbf":
        result["rate_bit"] = lan.get("rate")
        mechanisms["tbf"] = {"lan_rate_bit": lan.get("rate"), "wan_rate_bit": wan.get("rate")}
    probabilities = []
    for words in tagged:
        if "--probability" in words:
            probabilities.append(float(words[words.index("--probability") + 1]))
    if probabilities:
        result["loss_pct"] = round(probabilities[0] * 100, 6)
        mechanisms["iptables_statistic"] = {"rules": len(probabilities),
                                            "per_direction_pct": [round(p * 100, 6) for p in probabilities]}
    if queued:
        state = delayline_state or {}
        result["delay_ms"] = float(state.get("delay_ms", 0.0))
        result["jitter_ms"] = float(state.get("jitter_ms", 0.0))
        mechanisms["delayline"] = {"rules": len(queued), "alive": bool(state.get("alive")),
                                   "pid": state.get("pid"), "packets": state.get("packets"),
                                   "queue": state.get("queue")}
    result["mode"] = mode
    return result


# --- the edge: the live lab -------------------------------------------------------------------

_MODE_CACHE: dict[str, str] = {}


def detect_mode(target: Any) -> str:
    """netem when the router's kernel has sch_netem (probe on its loopback), else fallback."""
    forced = os.environ.get(MODE_ENV)
    if forced:
        if forced not in MODES:
            raise ActionError(f"{MODE_ENV}={forced!r} is not allowed; allowed: {', '.join(MODES)}")
        return forced
    if target.id not in _MODE_CACHE:
        code, _ = target.exec_run(["sh", "-c", "tc qdisc add dev lo root netem delay 0ms && tc qdisc del dev lo root"])
        _MODE_CACHE[target.id] = NETEM if code == 0 else FALLBACK
    return _MODE_CACHE[target.id]


@dataclass
class _Link:
    network: str
    router: str
    target: Any
    lan_if: str
    wan_if: str
    lan_subnet: str
    queue: int


def _link(lab: LabHandle, network: str) -> _Link:
    lab.require_client_network(network)
    router = lab.topology.gateways[network].router
    target = lab.ctr(router)
    subnet = lab.topology.networks[network].subnet
    lan_if = interface_in(target, subnet)
    wan_if = interface_in(target, lab.topology.networks["internet"].subnet)
    return _Link(network, router, target, lan_if, wan_if, subnet, queue_number(list(lab.topology.gateways), network))


def _state_file(queue: int) -> str:
    return f"{STATE_DIR}/delayline-{queue}.json"


def _delayline_state(link: _Link) -> dict[str, Any] | None:
    code, output = link.target.exec_run(["cat", _state_file(link.queue)])
    if code != 0:
        return None
    try:
        state = json.loads(output.decode())
    except ValueError:
        return None
    alive = link.target.exec_run(["kill", "-0", str(state.get("pid", 0))])[0] == 0
    state["alive"] = alive and bool(state.get("running", True))
    return state


def _stop_delayline(link: _Link) -> None:
    state = _delayline_state(link)
    if state and state.get("alive"):
        pid = str(state["pid"])
        link.target.exec_run(["kill", "-TERM", pid])
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and link.target.exec_run(["kill", "-0", pid])[0] == 0:
            time.sleep(0.05)
    link.target.exec_run(["rm", "-f", _state_file(link.queue)])


def _start_delayline(link: _Link, command: list[str]) -> None:
    log = f"{STATE_DIR}/delayline-{link.queue}.log"
    state = _state_file(link.queue)
    if link.target.exec_run(["python", "-c", "import lab.endpoints.router.delayline"])[0] != 0:
        # An image older than the controller: run the controller's own delay line source instead.
        from lab.endpoints.router import delayline

        source = Path(delayline.__file__).read_text()
        command = ["python", "-c", source, *command[len(DELAYLINE):]]
    link.target.exec_run(["sh", "-c", f"mkdir -p {STATE_DIR}; rm -f {state}; "
                          f"exec {shlex.join(command)} >{log} 2>&1"], detach=True)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if link.target.exec_run(["test", "-s", state])[0] == 0:
            return
        time.sleep(0.05)
    output = link.target.exec_run(["cat", log])[1].decode(errors="replace").strip()
    hint = " (add libnetfilter-queue1 to images/base/packages.txt and rebuild)" if "unsupported" in output else ""
    raise ActionError(f"{link.router}: the delay line did not start: {output[-300:] or 'no output'}{hint}")


def _clear(link: _Link) -> None:
    """Remove this module's rules, qdiscs and delay line (not the blackhole)."""
    filter_rules = exec_checked(link.target, ["iptables", "-w", "-S", "FORWARD"])
    raw_rules = exec_checked(link.target, ["iptables", "-w", "-t", "raw", "-S", "PREROUTING"])
    for command in removal_commands(filter_rules, raw_rules, link.lan_if, link.wan_if):
        link.target.exec_run(command)  # "tc qdisc del" fails harmlessly when there is none
    _stop_delayline(link)


def _readback(link: _Link, mode: str) -> dict[str, Any]:
    def out(command: list[str]) -> str:
        return exec_checked(link.target, command)

    found = parse_readback(mode, out(["tc", "-j", "qdisc", "show", "dev", link.lan_if]),
                           out(["tc", "-j", "qdisc", "show", "dev", link.wan_if]),
                           out(["iptables", "-w", "-S", "FORWARD"]),
                           out(["iptables", "-w", "-t", "raw", "-S", "PREROUTING"]),
                           _delayline_state(link), link.lan_if)
    found.update(router=link.router, lan_if=link.lan_if, wan_if=link.wan_if)
    return found


def _matches(params: LinkParams, found: dict[str, Any]) -> bool:
    def near(a: float, b: float) -> bool:
        return abs(a - b) <= max(1e-3, 1e-3 * abs(b))

    return (near(found["delay_ms"], params.delay * 1000) and near(found["jitter_ms"], params.jitter * 1000)
            and near(found["loss_pct"], params.loss) and found["blackhole"] == params.blackhole
            and (found["rate_bit"] is None if not params.rate
                 else abs(found["rate_bit"] - params.rate) <= 0.01 * params.rate))


def apply(lab: LabHandle, network: str, impairment: ImpairmentSpec | None) -> ActionResult:
    """Replace every impairment on `network` with `impairment` (containerlab semantics)."""
    try:
        params = resolve(impairment)
    except ValueError as exc:
        raise ActionError(f"impair {network}: {exc}") from None
    link = _link(lab, network)
    mode = detect_mode(link.target)
    _clear(link)
    try:
        for command in plan(mode, params, link.lan_if, link.wan_if, link.lan_subnet, link.queue):
            if command[:3] == DELAYLINE:
                _start_delayline(link, command)
            else:
                exec_checked(link.target, command)
    except (ActionError, RuntimeError) as exc:
        _clear(link)
        raise ActionError(f"impair {network} ({mode}): {exc}") from None
    lab.blackhole(network, params.blackhole)
    found = _readback(link, mode)
    return ActionResult("impair", network, {"mode": mode, "router": link.router, "requested": params.summary(),
                                            "applied": {k: v for k, v in found.items() if k != "mechanisms"},
                                            "mechanisms": sorted(found["mechanisms"])},
                        ok=_matches(params, found))


def _untouched(link: _Link) -> bool:
    """True when nothing of this module or a blackhole is on the link (one exec, so that resetting
    a clean lab before every run stays cheap)."""
    probe = (f"iptables -w -S FORWARD; iptables -w -t raw -S PREROUTING; tc qdisc show dev {link.lan_if}; "
             f"tc qdisc show dev {link.wan_if}; test -e {_state_file(link.queue)} && echo delayline-state")
    output = link.target.exec_run(["sh", "-c", probe])[1].decode(errors="replace")
    markers = (TAG, BLACKHOLE_TAG, "NFQUEUE", "netem", "tbf", "delayline-state")
    return not any(marker in output for marker in markers)


def reset(lab: LabHandle, network: str) -> ActionResult:
    """No impairment on `network`: rules, qdiscs, delay line and blackhole removed."""
    link = _link(lab, network)
    if _untouched(link):
        return ActionResult("impair", network, {"reset": True, "mode": detect_mode(link.target),
                                                "router": link.router, "note": "nothing to remove"})
    _clear(link)
    lab.blackhole(network, False)
    found = _readback(link, detect_mode(link.target))
    return ActionResult("impair", network, {"reset": True, "mode": found["mode"], "router": link.router},
                        ok=_matches(LinkParams(), found))


def apply_step(lab: LabHandle, step: Any) -> ActionResult:
    """A scenario's `impair` step: `reset: true` clears the network, else `impairment` replaces."""
    if not step.network:
        raise ActionError("impair step needs a network")
    if step.reset:
        return reset(lab, step.network)
    return apply(lab, step.network, step.impairment)


def reset_all(lab: LabHandle) -> None:
    """Every client network back to no impairment."""
    for network in lab.topology.gateways:
        reset(lab, network)


def show(lab: LabHandle) -> dict[str, Any]:
    """The active mode and each network's parameters, read back from the routers."""
    networks = {}
    modes = set()
    for network in lab.topology.gateways:
        link = _link(lab, network)
        mode = detect_mode(link.target)
        modes.add(mode)
        networks[network] = _readback(link, mode)
    mode = modes.pop() if len(modes) == 1 else "mixed"
    return {"mode": mode, "forced": bool(os.environ.get(MODE_ENV)), "networks": networks}


__all__ = ["FALLBACK", "MODES", "NETEM", "PROFILES", "ImpairmentSpec", "LabHandle", "LinkParams", "apply",
           "apply_step", "detect_mode", "parse_qdisc", "parse_readback", "plan", "removal_commands",
           "reset", "reset_all", "resolve", "show", "tbf_burst"]
