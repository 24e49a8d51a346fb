"""`python -m lab impair set|show|reset`: link quality per client network (netem or the fallback).

    python -m lab impair set home --delay 25ms --jitter 5ms --loss 1% --rate 10mbit
    python -m lab impair set cellular --profile 3g --loss 0
    python -m lab impair show [--format json]
    python -m lab impair reset [NETWORK]

Each `set` replaces every impairment on the network (containerlab semantics). Delay and jitter
are one way, in each direction (RTT grows by 2 x delay); loss is per direction.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from lab.cli.options import teach
from lab.control import impair
from lab.control.actions import Lab
from lab.errors import LabError
from lab.scenario.schema import Impairment
from lab.topology.load import load_topology
from lab.units import parse_bit_rate, parse_duration, parse_percent

HELP = "impair a client network's link (delay, jitter, loss, rate, blackhole), show or reset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="impair_command", metavar="COMMAND", required=True)
    set_parser = sub.add_parser("set", help="replace a network's impairments")
    set_parser.add_argument("network", metavar="NETWORK", help="a client network (home, cellular, office)")
    set_parser.add_argument("--profile", help="a named profile; explicit options override its values")
    set_parser.add_argument("--delay", help="one-way delay, each direction, e.g. 40ms")
    set_parser.add_argument("--jitter", help="+/- jitter, each direction, e.g. 5ms")
    set_parser.add_argument("--loss", help="random loss per direction, e.g. 3%%")
    set_parser.add_argument("--rate", help="rate limit per direction, e.g. 10mbit")
    set_parser.add_argument("--blackhole", action="store_true", help="drop every packet (links stay up)")
    set_parser.add_argument("--format", choices=("text", "json"), default="text")
    show_parser = sub.add_parser("show", help="the active mode and each network's impairments (read back)")
    show_parser.add_argument("--format", choices=("table", "json"), default="table")
    reset_parser = sub.add_parser("reset", help="remove impairments (one network, or all)")
    reset_parser.add_argument("network", metavar="NETWORK", nargs="?")


MAX_DELAY = 10.0  # seconds, as a scenario's impairment (lab.scenario.rules)

# option -> (parser, what it takes); rate also takes 0/none/off for no limit.
VALUES: dict[str, tuple[Callable[[str], Any], str]] = {
    "delay": (parse_duration, f"a one-way delay such as 40ms, at most {MAX_DELAY:g}s"),
    "jitter": (parse_duration, f"a jitter such as 5ms, at most {MAX_DELAY:g}s, with a delay to vary around"),
    "loss": (parse_percent, "a loss from 0 to 100, e.g. 3%"),
    "rate": (parse_bit_rate, "a link rate such as 500kbit or 10mbit, or 0/none/off for no limit"),
}
NO_RATE = ("0", "none", "off")


def impairment_from_args(args: argparse.Namespace) -> Impairment:
    """Options -> Impairment; a LabError naming the option and what it accepts (before anything changes)."""
    if args.profile is not None and args.profile not in impair.PROFILES:
        raise LabError(f"--profile {args.profile!r} is not known; allowed: {', '.join(impair.PROFILES)}")
    values: dict[str, Any] = {}
    for option, (parse, allowed) in VALUES.items():
        text = getattr(args, option)
        if text is None or (option == "rate" and str(text).strip() in NO_RATE):
            continue
        try:
            values[option] = parse(text)
        except ValueError as exc:
            raise LabError(f"--{option}: {teach(str(exc), allowed)}") from None
        if parse is parse_duration and values[option] > MAX_DELAY:
            raise LabError(f"--{option} {text!r}: too long; allowed: {allowed}")
    profile_delay = impair.PROFILES[args.profile].delay if args.profile else None
    if "jitter" in values and values.get("delay") is None and not profile_delay:
        raise LabError(f"--jitter {args.jitter!r}: needs a delay to vary around (add --delay, or a --profile "
                       "with one); allowed: " + VALUES["jitter"][1])
    return Impairment(profile=args.profile, blackhole=bool(args.blackhole), **values)


def _check_network(lab: Lab, network: str) -> None:
    if network not in lab.topology.gateways:
        allowed = ", ".join(sorted(lab.topology.gateways))
        raise LabError(f"NETWORK {network!r} is not a client network; allowed: {allowed}")


def describe(found: dict[str, Any]) -> str:
    parts = []
    if found.get("blackhole"):
        parts.append("blackhole")
    if found.get("delay_ms") or found.get("jitter_ms"):
        jitter = f" ±{found['jitter_ms']:g}ms" if found.get("jitter_ms") else ""
        parts.append(f"delay {found['delay_ms']:g}ms{jitter}")
    if found.get("loss_pct"):
        parts.append(f"loss {found['loss_pct']:g}%")
    if found.get("rate_bit"):
        parts.append(f"rate {found['rate_bit'] / 1e6:g}mbit")
    return ", ".join(parts) or "none"


def run(args: argparse.Namespace) -> int:
    impairment = impairment_from_args(args) if args.impair_command == "set" else None  # needs no lab
    lab = Lab(load_topology())
    if impairment is not None:
        _check_network(lab, args.network)
        result = impair.apply(lab, args.network, impairment)
        if args.format == "json":
            print(json.dumps({"action": result.action, "target": result.target, "ok": result.ok, **result.detail},
                             indent=2))
        else:
            applied = result.detail["applied"]
            print(f"{args.network}: {describe(applied)} (mode {result.detail['mode']}, router "
                  f"{result.detail['router']}: {', '.join(result.detail['mechanisms']) or 'no mechanism'})"
                  f"{'' if result.ok else '  MISMATCH with the request: ' + describe(result.detail['requested'])}")
        return 0 if result.ok else 1
    if args.impair_command == "reset":
        networks = [args.network] if args.network else list(lab.topology.gateways)
        for network in networks:
            _check_network(lab, network)
        failed = [n for n in networks if not impair.reset(lab, n).ok]
        print(f"reset {', '.join(networks)}" + (f"; still impaired: {', '.join(failed)}" if failed else ""))
        return 1 if failed else 0
    state = impair.show(lab)
    if args.format == "json":
        print(json.dumps(state, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"impairments (mode: {state['mode']}{', forced' if state['forced'] else ''})")
    for column in ("network", "router", "impairment", "mechanisms"):
        table.add_column(column)
    for network, found in state["networks"].items():
        mechanisms = []
        for name, info in found["mechanisms"].items():
            if name == "delayline":
                mechanisms.append(f"delayline pid {info['pid']} {'alive' if info['alive'] else 'DEAD'}, "
                                  f"{info['packets']} packets")
            else:
                mechanisms.append(name)
        table.add_row(network, found["router"], describe(found), "; ".join(mechanisms) or "-")
    Console().print(table)
    return 0
