"""A generic validator of YAML nodes: every problem located, every problem collected (no scenario rules).

A file is read with PyYAML's *compose* API, which keeps the line of every node; this class walks
those nodes, turns each value it reads into a Python value with a check (a choice, a whole number in
a range, a duration, a parser of :mod:`lab.units` ...), and records each problem as a
:class:`ScenarioError` (``file:line: field: message``) instead of stopping at the first. A method
returns ``None`` when its node is wrong, so that a caller can go on and find the next problem.
:mod:`lab.scenario.rules` builds the scenario language on it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from lab.scenario.errors import ScenarioError
from lab.units import human_seconds, parse_duration

MISSING = object()  # what scalar() returns for a node that is not a single value


def not_allowed(value: Any, allowed: Iterable[str], head: str = "{value!r} is not allowed; allowed") -> str:
    """``'conect' is not allowed; allowed: connect, ... (did you mean 'connect'?)``."""
    allowed = list(allowed)
    message = f"{head.format(value=value)}: {', '.join(allowed)}"
    close = difflib.get_close_matches(str(value), allowed, n=1)
    return message + (f" (did you mean {close[0]!r}?)" if close else "")


class NodeValidator:
    """Reads YAML nodes of one file into values; collects a located error for each bad node."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[ScenarioError] = []
        self._constructor = SafeConstructor()
        self._misspelt: set[str] = set()  # paths of allowed keys an unknown key probably meant

    def error(self, node: Node | int, field: str, message: str) -> None:
        line = node if isinstance(node, int) else node.start_mark.line + 1
        self.errors.append(ScenarioError(self.file, line, field, message))

    def value(self, node: Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def mapping(self, node: Node, path: str, allowed: Sequence[str], required: Sequence[str] = ()
                ) -> dict[str, tuple[Node, Node]] | None:
        """The keys of a mapping node, after rejecting unknown, duplicate and missing keys."""
        if not isinstance(node, MappingNode):
            self.error(node, path or "<document>", f"must be a mapping (key: value), got {self.kind_of(node)}")
            return None
        found: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = str(self.value(key_node)) if isinstance(key_node, ScalarNode) else "?"
            where = f"{path}.{key}" if path else key
            if key in found:
                self.error(key_node, where, "duplicate key")
            elif key not in allowed:
                self.error(key_node, where, not_allowed(key, allowed, "unknown key {value!r}; allowed"))
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
    def kind_of(node: Node) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        return f"{node.value!r}"

    def scalar(self, node: Node, path: str) -> Any:
        if not isinstance(node, ScalarNode):
            self.error(node, path, f"must be a single value, got {self.kind_of(node)}")
            return MISSING
        return self.value(node)

    def convert(self, node: Node, path: str, parse: Callable[[Any], Any]) -> Any:
        """Apply a value parser; its ValueError becomes a ScenarioError. None on failure."""
        raw = self.scalar(node, path)
        if raw is MISSING:
            return None
        try:
            return parse(raw)
        except ValueError as exc:
            self.error(node, path, str(exc))
            return None

    def string(self, node: Node, path: str, pattern: re.Pattern[str] | None = None, what: str = "") -> str | None:
        raw = self.scalar(node, path)
        if raw is MISSING:
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
        if raw is MISSING:
            return None
        allowed = sorted(allowed) if isinstance(allowed, set | frozenset) else list(allowed)
        if raw not in allowed:
            self.error(node, path, not_allowed(raw, allowed))
            return None
        return str(raw)

    def boolean(self, node: Node, path: str) -> bool | None:
        raw = self.scalar(node, path)
        if raw is MISSING:
            return None
        if not isinstance(raw, bool):
            self.error(node, path, f"must be true or false, got {raw!r}")
            return None
        return raw

    def integer(self, node: Node, path: str, low: int, high: int) -> int | None:
        raw = self.scalar(node, path)
        if raw is MISSING:
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
            self.error(node, path, f"{human_seconds(seconds)} is too long; at most {human_seconds(maximum)}")
            return None
        return seconds

    def sequence(self, node: Node, path: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.error(node, path, f"must be a list, got {self.kind_of(node)}")
            return None
        return list(node.value)


__all__ = ["MISSING", "NodeValidator", "not_allowed"]
