"""Checks of the verbs' option values (pure), made before a verb touches anything.

Each refusal is a :class:`LabError` (one line, exit 2) that names the option and what it takes.
argparse's own errors (an unknown option, a choice not offered) are argparse's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from lab.errors import LabError
from lab.scenario import stacks
from lab.units import parse_byte_rate, parse_size

T = TypeVar("T")


@dataclass(frozen=True)
class Bounds:
    """The whole numbers an option takes, and the unit it counts in."""

    low: int
    high: int
    unit: str

    def allowed(self) -> str:
        return f"a whole number of {self.unit} from {self.low} to {self.high}"


def whole(option: str, value: int, bounds: Bounds) -> int:
    if not bounds.low <= value <= bounds.high:
        raise LabError(f"{option} {value}: out of range; allowed: {bounds.allowed()}")
    return value


def parsed(option: str, text: str, parse: Callable[[str], T], allowed: str) -> T:
    """``parse(text)``, or a LabError naming the option, the parser's reason and what is allowed."""
    try:
        return parse(text)
    except ValueError as exc:
        raise LabError(f"{option}: {teach(str(exc), allowed)}") from None


def teach(reason: str, allowed: str) -> str:
    """A parser's reason, with what is allowed unless the reason already shows it (lab.units' "write e.g.")."""
    return reason if "e.g." in reason else f"{reason}; allowed: {allowed}"


def size(option: str, text: str) -> int:
    """A size in bytes larger than 0 (8MB, 512KB, 1MiB)."""
    value = parsed(option, text, parse_size, "a size such as 512KB, 3MB or 1MiB")
    if value <= 0:
        raise LabError(f"{option} {text!r}: must be larger than 0; allowed: a size such as 512KB, 3MB or 1MiB")
    return value


def byte_rate(option: str, text: str) -> int:
    """A pacing rate in bytes per second; 0 means unpaced."""
    return parsed(option, text, lambda t: parse_byte_rate(t, bare=True),
                  "a rate such as 500KB/s or 3MB/s, or 0 for unpaced")


def stack(option: str, value: str | None, role: str) -> stacks.Stack:
    """A stack name or image for ``role``; None is the lab's own, an empty value is refused."""
    allowed = f"{', '.join(stacks.STACKS)} or an image reference such as name:tag"
    if value is not None and not value.strip():
        raise LabError(f"{option}: empty; allowed: {allowed}")
    try:
        return stacks.resolve(value, role)
    except stacks.StackError as exc:  # its text names the role and the value; here it gets the option's name
        raise LabError(f"{option}: {exc}") from None
