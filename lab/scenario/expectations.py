"""The expectations a scenario may state: each check's name, argument and transports (pure).

This is the scenario language's vocabulary; :mod:`lab.verify.checks` judges each one with the
function of the same name. The scenario validator uses it to reject a bad argument when the YAML
is loaded, not after a 30-second run.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lab.addresses import ip_or_ip_port
from lab.control.attacks import CHECKS as ATTACK_CHECKS

# Where a check's observations come from; a scenario may list some under ``optional_evidence``.
EVIDENCE_SOURCES = ("events", "qlog", "captures")


# --- arguments ------------------------------------------------------------------------------

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
}
COMPARISON_TEXT = re.compile(r"^\s*(>=|<=|==|!=|>|<|=)?\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Comparison:
    """``>= 2``, ``<= 1500``, ``== 1``: what a count or a duration must satisfy."""

    op: str
    value: float

    def holds(self, observed: float) -> bool:
        return _OPS[self.op](observed, self.value)

    def __str__(self) -> str:
        value = int(self.value) if float(self.value).is_integer() else self.value
        return f"{self.op} {value}"


def comparison_parser(default_op: str) -> Callable[[Any], Comparison]:
    """A parser for ``2`` (meaning ``<default_op> 2``) or a string such as ``">= 2"``."""

    def parse(argument: Any) -> Comparison:
        if isinstance(argument, bool) or argument is None:
            raise ValueError(f"needs a number or a comparison such as '{default_op} 2'")
        if isinstance(argument, int | float):
            if argument < 0:
                raise ValueError(f"must not be negative: {argument}")
            return Comparison(default_op, float(argument))
        match = COMPARISON_TEXT.match(str(argument))
        if not match:
            raise ValueError(f"not a comparison: {argument!r}; use a number or e.g. '>= 2', '<= 1500', '== 1'")
        op, value = match.groups()
        return Comparison("==" if op == "=" else (op or default_op), float(value))

    return parse


def no_argument(argument: Any) -> None:
    if argument is not None:
        raise ValueError(f"takes no argument (got {argument!r}); write it as a plain list item")
    return None


def optional_comparison(default_op: str) -> Callable[[Any], Comparison | None]:
    inner = comparison_parser(default_op)

    def parse(argument: Any) -> Comparison | None:
        return None if argument is None else inner(argument)

    return parse


def optional_address(argument: Any) -> str | None:
    """An IP or ``ip:port`` string, or nothing."""
    return None if argument is None else ip_or_ip_port(argument)


# What a check's argument is, for the editors' JSON Schema (lab.scenario.reference); ``parse`` decides.
NO_ARGUMENT, COMPARISON, OPTIONAL_COMPARISON, OPTIONAL_ADDRESS = (
    "none", "comparison", "optional comparison", "optional address")


@dataclass(frozen=True)
class ExpectationSpec:
    """How a check is written in a scenario: its argument's parser and the transports it applies to."""

    parse: Callable[[Any], Any]
    transports: frozenset[str]
    argument_help: str = ""
    argument: str = NO_ARGUMENT  # the kind of argument ``parse`` takes


_BOTH = frozenset({"quic", "tcp"})
_QUIC = frozenset({"quic"})

EXPECTATIONS: dict[str, ExpectationSpec] = {
    "connection_survived": ExpectationSpec(no_argument, _BOTH),
    "single_handshake": ExpectationSpec(no_argument, _BOTH),
    "transfer_complete": ExpectationSpec(no_argument, _BOTH),
    "paths_validated": ExpectationSpec(comparison_parser(">="), _QUIC, "count, default >=", COMPARISON),
    "server_saw_addresses": ExpectationSpec(comparison_parser(">="), _BOTH, "count, default >=", COMPARISON),
    "server_saw_ips": ExpectationSpec(comparison_parser(">="), _BOTH, "count, default >=", COMPARISON),
    "cid_changed": ExpectationSpec(optional_comparison(">="), _QUIC, "optional count, default >= 1",
                                   OPTIONAL_COMPARISON),
    "cid_unchanged": ExpectationSpec(no_argument, _QUIC),
    "max_disruption_ms": ExpectationSpec(comparison_parser("<="), _BOTH, "ms, default <=", COMPARISON),
    "validation_ms": ExpectationSpec(comparison_parser("<="), _QUIC, "ms, default <=", COMPARISON),
    "amplification_respected": ExpectationSpec(no_argument, _QUIC),
    "migrated_to_preferred": ExpectationSpec(optional_address, _QUIC, "optional address", OPTIONAL_ADDRESS),
    "tcp_reconnected": ExpectationSpec(no_argument, frozenset({"tcp"})),
    "reconnects": ExpectationSpec(comparison_parser("=="), _BOTH, "count, default ==", COMPARISON),
    # What a person notices (the video and call workloads).
    "rebuffer_events": ExpectationSpec(comparison_parser("=="), _BOTH, "count, default ==", COMPARISON),
    "max_rebuffer_ms": ExpectationSpec(comparison_parser("<="), _BOTH, "ms, default <=", COMPARISON),
    "startup_ms": ExpectationSpec(comparison_parser("<="), _BOTH, "ms, default <=", COMPARISON),
    "freeze_ms": ExpectationSpec(comparison_parser("<="), _BOTH, "ms, default <=", COMPARISON),
}

# Checks a scenario may record as a known failure of the stack under test (``known_failures:``),
# each with its reason: the scenario's own expectations, and the checks of every attack.
KNOWN_FAILURE_CHECKS = (*EXPECTATIONS, *(f"capture_{name}" for name in ATTACK_CHECKS))
