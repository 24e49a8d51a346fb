"""Overrides of compose.yaml's ``${VAR:-default}`` variables, from the environment or a ``.env`` file.

Pure. ``compose_variables`` reads from compose.yaml's own text which field each variable fills (so
nothing is repeated here), and gives each variable the kind of that field; ``read_dotenv`` parses
``.env`` as Compose does, keeping line numbers; ``check_overrides`` checks every value given against
its variable's kind, before Compose resolves anything. Each problem is one line naming the variable
(and ``.env:LINE``) and what is allowed. The rules between values (an address inside its subnet,
overlaps, duplicates) are ``lab.topology.model.validate``'s, on the resolved topology.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from lab import nat_behaviour

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Docker's image reference grammar (distribution/reference), without the rarely used IPv6 registry form.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE = re.compile(rf"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
                   r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
# Variables Compose itself reads from .env (COMPOSE_PROJECT_NAME, DOCKER_HOST, ...): not compose.yaml's.
COMPOSE_PREFIXES = ("COMPOSE_", "DOCKER_")


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    kind: str  # a key of KINDS
    fields: tuple[str, ...]  # the dotted paths it fills, e.g. x-lab.server.address


@dataclass(frozen=True)
class Setting:
    """A value given for a variable, and where: ``.env:LINE`` or the environment."""

    name: str
    value: str
    where: str


def _subnet(value: str, version: int = 4) -> str | None:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        network = None
    if network is None or "/" not in value:
        return "not a network in CIDR form (address/prefix)"
    if str(network) != value:
        return f"its host bits are set (the network is {network})"
    if network.version != version:
        return f"an IPv{network.version} network in an IPv{version} field" + (
            " (a network's IPv6 subnet is its *_SUBNET6 variable)" if version == 4 else "")
    if network.is_loopback or network.is_link_local or network.is_multicast or network.is_reserved \
            or network.is_unspecified:
        return "a loopback, link-local, multicast or reserved range cannot be a Docker network"
    if version == 4 and network.prefixlen > 29:
        return "too small for a gateway, a router and the client (at most /29)"
    if version == 6 and not (48 <= network.prefixlen <= 64):
        # /64: SLAAC and RFC 8981 temporary addresses assume 64-bit interface identifiers.
        return "an IPv6 lab network is a /48 to /64"
    if version == 6 and not network.subnet_of(ipaddress.IPv6Network("fc00::/7")):
        return "a global prefix would be routed beyond the lab; use a unique local one (fc00::/7)"
    return None


def _subnet6(value: str) -> str | None:
    return _subnet(value, 6)


def _address(value: str, version: int = 4) -> str | None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return "not an IP address"
    if address.version != version:
        return f"an IPv{address.version} address in an IPv{version} field" + (
            " (an IPv6 address is its *_IP6 variable)" if version == 4 else "")
    if address.is_loopback or address.is_link_local or address.is_multicast or address.is_reserved \
            or address.is_unspecified:
        return "not a unicast address"
    return None


def _prefix96(value: str) -> str | None:
    """A NAT64 prefix (RFC 6052): a /96 of unique local space (a private IPv4 host under the
    well-known 64:ff9b::/96 is refused by RFC 6052 §3.1, and the lab's are private)."""
    reason = _subnet(value.replace("/96", "/64"), 6) if value.endswith("/96") else "not a /96"
    if reason:
        return reason
    return None if str(ipaddress.ip_network(value, strict=False)) == value else "its host bits are set"


def _address6(value: str) -> str | None:
    return _address(value, 6)


def _image(value: str) -> str | None:
    return None if IMAGE.match(value) else "not an image reference"


@dataclass(frozen=True)
class Kind:
    check: Callable[[str], str | None]  # the reason a value is refused, or None
    allowed: str


def _one_of(names: tuple[str, ...]) -> Callable[[str], str | None]:
    return lambda value: None if value in names else "not one of them"


def _seconds(value: str) -> str | None:
    return None if value.isdigit() and 1 <= int(value) <= nat_behaviour.MAX_TIMEOUT_S else "not whole seconds"


KINDS: dict[str, Kind] = {
    "subnet": Kind(_subnet, "an IPv4 network in CIDR form with its host bits zero, /29 or larger, "
                            "e.g. 10.203.1.0/24"),
    "address": Kind(_address, "an IPv4 unicast address, e.g. 10.203.1.10"),
    "subnet6": Kind(_subnet6, "a unique local IPv6 network (fc00::/7) in CIDR form with its host bits zero, "
                              "/48 to /64, e.g. fd00:203:1::/64"),
    "address6": Kind(_address6, "an IPv6 unicast address, e.g. fd00:203:1::10"),
    "prefix96": Kind(_prefix96, "a unique local IPv6 /96 with its host bits zero, e.g. fd00:203:64::/96"),
    "image": Kind(_image, "an image reference, lowercase name[:tag], e.g. quic-migration-lab:latest"),
    "nat_mapping": Kind(_one_of(nat_behaviour.MAPPINGS), ", ".join(nat_behaviour.MAPPINGS)),
    "nat_ports": Kind(_one_of(nat_behaviour.PORTS), ", ".join(nat_behaviour.PORTS)),
    "seconds": Kind(_seconds, f"whole seconds 1-{nat_behaviour.MAX_TIMEOUT_S}, e.g. 30"),
}

# Which kind of value a field of compose.yaml takes, by its dotted path (first match wins).
FIELD_KINDS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), k) for p, k in (
    (r"^networks\.[^.]+\.ipam\.config\.0\.subnet$", "subnet"),
    (r"^networks\.[^.]+\.ipam\.config\.[1-9]\d*\.subnet$", "subnet6"),  # the ULA beside the IPv4 subnet
    (r"\.ipv4_address$", "address"),
    (r"\.ipv6_address$", "address6"),
    (r"^x-lab\.client_addresses\.[^.]+$", "address"),
    (r"^x-lab\.client_addresses6\.[^.]+$", "address6"),
    (r"^x-lab\.gateways\.[^.]+\.address$", "address"),
    (r"^x-lab\.gateways\.[^.]+\.address6$", "address6"),
    (r"^x-lab\.server\.(preferred_)?address$", "address"),
    (r"^x-lab\.server\.(preferred_)?address6$", "address6"),
    (r"^x-lab\.nat64\.prefix$", "prefix96"),
    (r"^x-lab\.nat64\.pool$", "subnet"),
    (r"^x-lab\.nat64\.clat_prefix$", "subnet6"),
    (r"(^|\.)image$", "image"),
    (r"\.environment\.NAT_MAPPING$", "nat_mapping"),
    (r"\.environment\.NAT_PORTS$", "nat_ports"),
    (r"\.sysctls\.net\.netfilter\.nf_conntrack_udp_timeout(_stream)?$", "seconds"),
))


def kind_of_field(path: str) -> str | None:
    return next((kind for pattern, kind in FIELD_KINDS if pattern.search(path)), None)


def _scalars(node: Any, path: str = ""):
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _scalars(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _scalars(value, f"{path}.{i}")
    elif isinstance(node, str):
        yield path, node


def compose_variables(text: str) -> dict[str, Variable]:
    """Every ``${VAR:-default}`` of compose.yaml's text, with the fields it fills and their kind.

    A variable's kind is that of the first of its fields with a known kind (its other uses, in a
    command line or an environment, take the same value); ``None`` when no field of it has one.
    """
    fields: dict[str, list[str]] = {}
    defaults: dict[str, str] = {}
    for path, value in _scalars(yaml.safe_load(text)):
        for match in REFERENCE.finditer(value):
            fields.setdefault(match.group(1), []).append(path)
            defaults.setdefault(match.group(1), match.group(2) or "")
    variables = {}
    for name, paths in fields.items():
        kind = next((k for k in map(kind_of_field, paths) if k), "")
        variables[name] = Variable(name, defaults[name], kind, tuple(dict.fromkeys(paths)))
    return variables


def field_variables(variables: Mapping[str, Variable]) -> dict[str, str]:
    """Dotted field path -> the variable that sets it (for naming it in the topology's problems)."""
    return {path: v.name for v in variables.values() for path in v.fields}


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return re.split(r"\s+#", value, maxsplit=1)[0].strip()


def read_dotenv(text: str, file: str = ".env") -> tuple[list[Setting], list[str]]:
    """``.env`` as Compose reads it (``NAME=value``, ``export``, quotes, ``#`` comments): its
    settings and the problems of its lines, each ``file:line: ...``."""
    settings: list[Setting] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, equals, value = line.partition("=")
        name = name.strip()
        if not NAME.match(name):
            problems.append(f"{file}:{number}: {name!r} is not a variable name; a line is NAME=value, "
                            "e.g. HOME_SUBNET=10.203.1.0/24")
            continue
        if equals:  # a bare NAME takes its value from the environment, as in Compose
            settings.append(Setting(name, _unquote(value.strip()), f"{file}:{number}"))
    return settings, problems


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_overrides(variables: Mapping[str, Variable], environ: Mapping[str, str],
                    dotenv: list[Setting] = ()) -> list[str]:
    """Every problem with the overrides given, one line each (empty: the values are well formed).

    The environment wins over .env (as in Compose); an empty value means the default. A name in
    .env that compose.yaml does not use is refused: Compose would ignore it without a word.
    """
    problems: list[str] = []
    known = sorted(variables)
    given: dict[str, Setting] = {}
    for setting in dotenv:
        if setting.name in variables:
            given[setting.name] = setting
        elif not setting.name.startswith(COMPOSE_PREFIXES):
            problems.append(f"{setting.where}: {setting.name}: not a variable of compose.yaml; allowed: "
                            f"{', '.join(known)}, or COMPOSE_*/DOCKER_*{_did_you_mean(setting.name, known)}")
    for name in known:
        if name in environ:
            given[name] = Setting(name, environ[name], "environment")
    for name, setting in given.items():
        kind = KINDS.get(variables[name].kind)
        if kind is None or setting.value == "":
            continue
        reason = kind.check(setting.value)
        if reason:
            where = f"{setting.where}: " if setting.where != "environment" else ""
            source = " (from the environment)" if setting.where == "environment" else ""
            problems.append(f"{where}{name}={setting.value!r}{source}: {reason}; allowed: {kind.allowed}")
    return problems
